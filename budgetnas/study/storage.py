"""Study storages: the URL forms (sqlite:///FILE, postgresql://..., journal:FILE) and
opening them (with retries, SQLite pragmas, trial heartbeats: $BUDGETNAS_HEARTBEAT,
config/env.py); every URL or driver message it shows is redacted (urls.py). Knows
nothing of trials, models or torch.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from ..config import JOURNAL_PREFIX, ConfigError, env
from .urls import redact, scrub

STALE_RETRIES = 2  # a trial whose worker died is queued again at most this many times


def open_storage(url: str, heartbeat: bool = False, create: bool = True) -> optuna.storages.BaseStorage:
    """Open a storage URL: sqlite:///FILE, postgresql://..., or journal:FILE.

    ``heartbeat`` (RDB storages, SQLite included): running trials record heartbeats, and
    a trial whose worker died is failed and queued again with the same parameters
    (config/env.py: heartbeat). ``create=False`` (read-only commands) never creates a file,
    a table or a study: a storage that does not hold one is an error."""
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        if not create and not path.is_file():
            raise ConfigError(f"no study storage at {url}: run 'budgetnas search' first or pass --storage")
        _parent_writable(path, url)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        except Exception as e:  # not a journal (say, another file given by mistake): it is left as it was
            raise ConfigError(f"cannot open storage {url} ({type(e).__name__}: {str(e)[:120]}): "
                              "pass the journal file of a study") from None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not create and not path.is_file():
            raise ConfigError(f"no study storage at {url}: run 'budgetnas search' first or pass --storage")
        _parent_writable(path, url)
        if create:  # read-only commands leave the file exactly as it is
            _sqlite_wal(path)
    elif "://" not in url:
        raise ConfigError(f"malformed storage URL {redact(url)!r}: use sqlite:///FILE.db, "
                          "postgresql://USER@HOST/DB or journal:FILE")
    kwargs: dict = {"skip_table_creation": not create}
    if heartbeat:
        interval, grace = env.heartbeat()
        kwargs.update(heartbeat_interval=interval, grace_period=grace)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat:  # a stale trial is queued again with its params (STALE_RETRIES times at most)
                kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=STALE_RETRIES)
            storage = _rdb_storage(url, kwargs)
        if not create:
            storage.get_all_studies()  # a file that is no optuna storage fails here, unchanged
        if url.startswith("sqlite"):
            _sqlite_fast_commits(storage)
        return storage
    except Exception as e:  # sqlalchemy raises many types; all mean the same to a user
        cause = _root_cause(e)
        if not create and "version_info" in cause:  # a database, but no Optuna tables in it
            raise ConfigError(f"{redact(url)} holds no study storage ({scrub(cause, url)}): "
                              "pass the --storage the study was made in") from None
        raise ConfigError(f"cannot open storage {redact(url)} ({scrub(cause, url)}): "
                          "check the URL and that the database server is running") from None


def _rdb_storage(url: str, kwargs: dict) -> optuna.storages.RDBStorage:
    """Processes that open a brand-new RDB storage at once (a search creating it while
    the dashboard or a leaderboard polls, or workers started together) race: each creates
    the tables it finds missing ("table ... already exists") and stamps the schema
    version if its row is missing (a unique-key error). Opening is idempotent, so the
    loser tries again and finds what the winner made."""
    import sqlalchemy

    def open_it() -> optuna.storages.RDBStorage:
        return optuna.storages.RDBStorage(_driver_url(url), engine_kwargs=_engine_kwargs(url), **kwargs)

    for attempt in range(3):
        try:
            return open_it()
        except sqlalchemy.exc.SQLAlchemyError as e:
            if not isinstance(e, sqlalchemy.exc.IntegrityError) and "already exists" not in str(e):
                raise
            time.sleep(0.2 * (attempt + 1))
    return open_it()  # the last try: its error is reported


def _sqlite_wal(path: Path) -> None:
    """WAL journal: readers (the dashboard, the leaderboard) never block the writer.
    Persistent in the file, so set once."""
    import sqlite3
    try:
        with sqlite3.connect(path, timeout=60) as con:
            con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError:  # not a database: opening it as a storage below says so
        pass


def _sqlite_fast_commits(storage: optuna.storages.RDBStorage) -> None:
    """synchronous=NORMAL in WAL mode: a commit no longer waits for fsync (10x faster
    trial bookkeeping; a power cut may lose the last commits, never corrupt the file)."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    storage.engine.dispose()  # reconnect so every pooled connection gets the pragma


def _root_cause(e: BaseException) -> str:
    """The first line of the innermost error (Optuna wraps the driver's real reason)."""
    while (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return text


def _driver_url(url: str) -> str:
    """postgresql:// means psycopg 3 to SQLAlchemy 2.1 but psycopg2 to older ones: use
    whichever driver is installed (the ``postgres`` extra installs psycopg2)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        import importlib.util
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        if importlib.util.find_spec(driver) is None:
            raise ConfigError("no PostgreSQL driver installed: pip install 'budgetnas[postgres]' (psycopg2-binary)")
        return f"postgresql+{driver}{sep}{rest}"
    return url


def _engine_kwargs(url: str) -> dict:
    if url.startswith("postgres"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {}


def _parent_writable(path: Path, url: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the folder for storage {redact(url)} ({e.strerror}): "
                          "pass a writable --storage") from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"storage folder {path.parent} is not writable: pass a writable --storage")


def check_writable_dir(path: Path, what: str = "--artifacts") -> None:
    """Fail early (before any storage is touched) when a folder cannot be made or written
    to. Creates nothing: it probes the nearest existing folder with a temporary file."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None if existing.is_dir() else f"{existing} is not a folder"
    if problem is None:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as e:
            problem = f"{existing}: {e.strerror}"
    if problem:
        raise ConfigError(f"cannot write the {what} folder {path} ({problem}): pass a writable {what}")
