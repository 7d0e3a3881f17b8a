"""Study storages: the URL forms (sqlite:///FILE, postgresql://..., journal:FILE), the
check that refuses one that cannot hold a study (in memory, a folder, another
application's database or file: left byte-identical) and opening them (with retries,
SQLite pragmas, trial heartbeats: $BUDGETNAS_HEARTBEAT, config/env.py); every URL or
driver message it shows is redacted (urls.py). Knows nothing of trials, models or torch.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path

import optuna

from ..config import JOURNAL_PREFIX, ConfigError, env, storage_file
from .urls import in_memory, redact, scrub

STALE_RETRIES = 2  # a trial whose worker died is queued again at most this many times


def open_storage(url: str, heartbeat: bool = False, create: bool = True) -> optuna.storages.BaseStorage:
    """Open a storage URL: sqlite:///FILE, postgresql://..., or journal:FILE.

    ``heartbeat`` (RDB storages, SQLite included): running trials record heartbeats, and
    a trial whose worker died is failed and queued again with the same parameters
    (config/env.py: heartbeat). ``create=False`` (read-only commands) never creates a file,
    a table or a study: a storage that does not hold one is an error."""
    check_storage(url, create)
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
    storage = None
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
        if storage is not None:  # close its connections: SQLite removes the -wal and -shm files they made
            storage.engine.dispose()
        cause = _root_cause(e)
        if not create and "version_info" in cause:  # a database, but no Optuna tables in it
            raise ConfigError(f"{redact(url)} holds no study storage ({scrub(cause, url)}): "
                              "pass the --storage the study was made in") from None
        raise ConfigError(f"cannot open storage {redact(url)} ({scrub(cause, url)}): "
                          "check the URL and that the database server is running") from None


OPTUNA_TABLES = {"studies", "version_info"}  # tables of every Optuna RDB schema
OPTUNA_ALL = OPTUNA_TABLES | {"alembic_version", "study_directions", "study_system_attributes", "study_user_attributes",
                              "trials", "trial_heartbeats", "trial_intermediate_values", "trial_params",
                              "trial_system_attributes", "trial_user_attributes", "trial_values"}


def check_storage(url: str, create: bool = True) -> None:
    """Refuse a storage that cannot hold a study before anything opens it: an empty URL,
    SQLite in memory, a folder, an existing SQLite file that is no Optuna storage
    (another application's database: Optuna would add its tables and switch it to WAL;
    without ``create``, also an empty one) and (``create``) a file that is no journal
    (Optuna would append to it). Such a file is only read, without locks or side files:
    it stays byte-identical."""
    if not url.strip():
        raise ConfigError("empty storage URL: pass sqlite:///FILE.db, postgresql://USER@HOST/DB or journal:FILE")
    if in_memory(url):
        raise ConfigError(f"storage {redact(url)} is in memory; a study in memory vanishes when the process ends: "
                          "pass sqlite:///FILE.db")
    path = storage_file(url)
    if path is None:
        return
    if str(path) in ("", "."):
        raise ConfigError(f"storage {redact(url)} names no file: pass journal:FILE or sqlite:///FILE.db")
    if path.is_dir():
        raise ConfigError(f"storage {redact(url)} is a folder: pass a file in it, e.g. {url.rstrip('/')}/"
                          f"{'budgetnas.db' if url.startswith('sqlite') else 'budgetnas.journal'}")
    if path.is_file() and url.startswith("sqlite"):
        _check_sqlite_file(path, url, create)
    elif create and path.is_file():
        _check_journal_file(path, url)


def _check_sqlite_file(path: Path, url: str, create: bool) -> None:
    """An existing SQLite file holds no tables but Optuna's (none yet: a new file, or one
    that another process is making a storage of right now) or Optuna's essential ones."""
    try:
        tables = _sqlite_tables(path)
    except sqlite3.Error as e:  # not a database (a text file...), or unreadable
        raise ConfigError(f"cannot open storage {redact(url)} ({e}): pass a new file or the storage of a study; "
                          "budgetnas left it as it is") from None
    if OPTUNA_TABLES <= tables or not tables - OPTUNA_ALL:
        return
    shown = ", ".join(sorted(tables - OPTUNA_ALL)[:5]) + (", ..." if len(tables - OPTUNA_ALL) > 5 else "")
    if not create:  # a read-only command: the words of Optuna's own refusal, and whose file it is
        raise ConfigError(f"{redact(url)} holds no study storage (no such table: version_info): it is another "
                          f"application's SQLite database (tables: {shown}); pass the --storage the study was made in")
    raise ConfigError(f"{redact(url)} is another application's SQLite database (tables: {shown}), not a study "
                      "storage: budgetnas left it as it is; pass a new file, e.g. sqlite:///studies/NAME.db")


def _sqlite_tables(path: Path) -> set[str]:
    """The table names of a SQLite file, read read-only and immutable (no lock, no -wal
    or -shm file made); a read that meets the file changing under it (another process
    making or checkpointing a storage) is made again, with locks."""
    def read(mode: str) -> set[str]:
        con = sqlite3.connect(f"file:{urllib.parse.quote(str(path.resolve()))}?mode={mode}", uri=True, timeout=60)
        try:
            return {name for (name,) in con.execute("select name from sqlite_master where type = 'table'")
                    if not name.startswith("sqlite_")}
        finally:
            con.close()

    try:
        return read("ro&immutable=1")
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise
        return read("ro")


def _check_journal_file(path: Path, url: str) -> None:
    """An existing journal file is empty or starts with an Optuna journal entry."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 16)
    except OSError as e:
        raise ConfigError(f"cannot open storage {redact(url)} ({e.strerror}): pass a readable journal file") from None
    if not first.strip() or (not first.endswith(b"\n") and first.lstrip().startswith(b"{")):
        return  # empty, or a first entry another process is writing right now
    try:
        entry = json.loads(first)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or "op_code" not in entry:
        raise ConfigError(f"{redact(url)} is not an Optuna journal (its first line is no journal entry): budgetnas "
                          "left it as it is; pass a new file, e.g. journal:studies/NAME.journal")


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

