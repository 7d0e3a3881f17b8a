"""Safe defaults: passwords in storage URLs are never printed (also not inside a driver's
error message), weights are only ever loaded with the safe unpickler, the dashboard
binds to 127.0.0.1 unless told otherwise; heartbeat settings; processes opening a new
storage at the same moment all succeed."""
from __future__ import annotations

import importlib.util
import multiprocessing
import os
import re
import time
from pathlib import Path

import pytest

from budgetnas.cli.parser import build_parser
from budgetnas.config import ConfigError
from budgetnas.config.env import heartbeat as heartbeat_settings
from budgetnas.study.storage import _driver_url, open_storage
from budgetnas.study.urls import redact, scrub

PACKAGE = Path(__file__).resolve().parent.parent / "budgetnas"


@pytest.mark.parametrize("url, shown", [
    ("postgresql://ann:pw@db.example:5432/nas", "postgresql://ann:***@db.example:5432/nas"),
    ("postgresql://ann:p@ss:w0rd@db/nas", "postgresql://ann:***@db/nas"),  # '@' and ':' inside the password
    ("postgresql://ann@db/nas?sslmode=require&password=pw", "postgresql://ann@db/nas?sslmode=require&password=***"),
    ("postgresql://ann@db/nas?Password=pw&sslmode=require", "postgresql://ann@db/nas?Password=***&sslmode=require"),
    ("postgresql://ann@db/nas", "postgresql://ann@db/nas"),
    ("sqlite:///studies/x.db", "sqlite:///studies/x.db"),
    ("journal:studies/x.journal", "journal:studies/x.journal"),
])
def test_redact_hides_every_password(url, shown):
    assert redact(url) == shown


def test_scrub_removes_the_password_in_any_form():
    url = "postgresql://ann:p%40ss@db/nas"
    msg = f"could not connect to {url}: password authentication failed (tried 'p%40ss' = 'p@ss')"
    out = scrub(msg, url)
    assert "p%40ss" not in out and "p@ss" not in out
    assert "postgresql://ann:***@db/nas" in out


@pytest.mark.parametrize("url", [
    "postgresql://ann:hunter2-secret@127.0.0.1:1/nas",  # nothing listens on port 1
    "postgresql://ann:hunter2-secret@db:notaport/nas",
    "postgresql://ann@127.0.0.1:1/nas?password=hunter2-secret",
    "mysql://ann:hunter2-secret@127.0.0.1:1/nas",  # no driver installed
])
def test_storage_errors_never_show_the_password(url):
    with pytest.raises(ConfigError) as e:
        open_storage(url)
    assert "hunter2-secret" not in str(e.value)
    assert "***" in str(e.value) and "\n" not in str(e.value)


def test_postgres_urls_use_the_installed_driver():
    for url in ("postgresql://ann@db/nas", "postgres://ann@db/nas"):
        driver_url = _driver_url(url)
        driver = driver_url.split("://")[0].split("+")[1]
        assert driver_url == f"postgresql+{driver}://ann@db/nas"
        assert importlib.util.find_spec(driver) is not None
    assert _driver_url("sqlite:///x.db") == "sqlite:///x.db"


def _calls(source: str, name: str) -> list[str]:
    """The text of every call `name(...)` in source, parentheses balanced."""
    found = []
    for m in re.finditer(re.escape(name) + r"\s*\(", source):
        depth, i = 0, m.end() - 1
        while i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                break
            i += 1
        found.append(source[m.start(): i + 1])
    return found


def test_weights_are_only_loaded_with_weights_only_true():
    """Every torch.load in the package, including code it writes into exports, uses the
    safe unpickler: a stored or exported weights file can never run code."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    unsafe = [(f.name, call) for f in files for call in _calls(f.read_text(), "torch.load")
              if not re.search(r"weights_only\s*=\s*True", call)]
    assert not unsafe, unsafe
    assert _calls("x = torch.load(p, map_location='cpu')", "torch.load") == ["torch.load(p, map_location='cpu')"]


def test_dashboard_binds_localhost_by_default():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    args = sub.choices["dashboard"].parse_args([])
    assert args.host == "127.0.0.1"


@pytest.mark.parametrize("env, expected", [
    ({}, (20, 60)),
    ({"BUDGETNAS_HEARTBEAT": "2"}, (2, 6)),
    ({"BUDGETNAS_HEARTBEAT": "2", "BUDGETNAS_HEARTBEAT_GRACE": "5"}, (2, 5)),
])
def test_heartbeat_settings(monkeypatch, env, expected):
    monkeypatch.delenv("BUDGETNAS_HEARTBEAT", raising=False)
    monkeypatch.delenv("BUDGETNAS_HEARTBEAT_GRACE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert heartbeat_settings() == expected


@pytest.mark.parametrize("env", [{"BUDGETNAS_HEARTBEAT": "0"}, {"BUDGETNAS_HEARTBEAT": "1.5"},
                                 {"BUDGETNAS_HEARTBEAT": "5", "BUDGETNAS_HEARTBEAT_GRACE": "5"}])
def test_bad_heartbeat_settings_are_refused(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError):
        heartbeat_settings()


def test_sqlite_storage_gets_heartbeats(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNAS_HEARTBEAT", "3")
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=True)
    assert storage.get_heartbeat_interval() == 3
    assert storage.grace_period == 9
    assert storage.get_heartbeat_stale_trial_callback() is not None
    assert open_storage(f"sqlite:///{tmp_path}/s.db").get_heartbeat_interval() is None


def test_read_only_open_creates_nothing(tmp_path):
    with pytest.raises(ConfigError):
        open_storage(f"sqlite:///{tmp_path}/none.db", create=False)
    with pytest.raises(ConfigError):
        open_storage(f"journal:{tmp_path}/none.journal", create=False)
    assert list(tmp_path.iterdir()) == []


def _open_when_told(url: str, go: str) -> str:
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        open_storage(url)
        return "ok"
    except ConfigError as e:
        return str(e)


def test_processes_opening_a_new_storage_at_once_all_succeed(tmp_path):
    """A search creating its storage while the dashboard or a worker opens it: without a
    retry one of them failed ('table studies already exists', or a unique-key error on
    the schema version) in 9 rounds out of 10."""
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for i in range(5):
            url, go = f"sqlite:///{tmp_path}/s{i}.db", tmp_path / f"go{i}"
            pending = pool.starmap_async(_open_when_told, [(url, str(go))] * 4)
            go.touch()
            assert pending.get(60) == ["ok"] * 4
        assert len(open_storage(url, create=False).get_all_studies()) == 0
