"""Every environment variable budgetnas reads, each in one function (read when called,
never at import). A malformed value is a ConfigError naming the variable.

| variable | meaning |
|---|---|
| BUDGETNAS_DATA | root folder of downloaded datasets (default: the user cache, below) |
| XDG_CACHE_HOME | the user cache (default ~/.cache); budgetnas uses its budgetnas/ folder |
| BUDGETNAS_OFFLINE | set: never download (mirrors, npm, torchvision) |
| BUDGETNAS_OFFLINE_DIRS | folders with local copies of the built-in datasets (os.pathsep-separated; empty: none) |
| BUDGETNAS_CACHE | folder of decoded own data (default DATA_ROOT/decoded) |
| BUDGETNAS_MAX_MEMORY | bytes a dataset may take (K/M/G suffix); default MemAvailable |
| BUDGETNAS_STORAGE | default storage URL (a password need not be on the command line) |
| BUDGETNAS_HEARTBEAT | seconds between trial heartbeats on RDB storages (default 20) |
| BUDGETNAS_HEARTBEAT_GRACE | seconds without a heartbeat before a trial is stale (default 3 x interval) |
| BUDGETNAS_WORKER_START | 'spawn': --workers processes import torch and load the data themselves |
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

HEARTBEAT_INTERVAL = 20  # seconds


def data_root() -> Path:
    """Where built-in datasets (one folder each) and the decoded cache live."""
    env = os.environ.get("BUDGETNAS_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "budgetnas"


def offline() -> bool:
    return bool(os.environ.get("BUDGETNAS_OFFLINE"))


def offline_dirs() -> tuple[str, ...] | None:
    """The folders $BUDGETNAS_OFFLINE_DIRS names (set but empty: none), or None if unset."""
    env = os.environ.get("BUDGETNAS_OFFLINE_DIRS")
    return None if env is None else tuple(d for d in env.split(os.pathsep) if d)


def decoded_cache() -> Path:
    env = os.environ.get("BUDGETNAS_CACHE")
    return Path(env) if env else data_root() / "decoded"


def max_memory() -> int | None:
    """$BUDGETNAS_MAX_MEMORY in bytes (plain, or with a K/M/G suffix), None if unset."""
    env = os.environ.get("BUDGETNAS_MAX_MEMORY")
    if not env:
        return None
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    text = env.strip().upper().rstrip("B")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)
    except ValueError:
        raise ConfigError(f"$BUDGETNAS_MAX_MEMORY={env!r} is not a size: set it to bytes or e.g. 8G") from None


def storage() -> str | None:
    return os.environ.get("BUDGETNAS_STORAGE") or None


def heartbeat() -> tuple[int, int]:
    """(interval, grace period) in seconds for trial heartbeats on RDB storages."""
    def seconds(name: str, default: int) -> int:
        text = os.environ.get(name, "").strip()
        if not text:
            return default
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"${name}={text!r} is not a whole number of seconds >= 1: fix or unset it")
        return int(text)

    interval = seconds("BUDGETNAS_HEARTBEAT", HEARTBEAT_INTERVAL)
    grace = seconds("BUDGETNAS_HEARTBEAT_GRACE", 3 * interval)
    if grace <= interval:
        raise ConfigError(f"heartbeat grace period {grace}s must be longer than the interval {interval}s: "
                          "raise $BUDGETNAS_HEARTBEAT_GRACE")
    return interval, grace


def worker_start() -> str:
    """'' (fork on CPU) or 'spawn'."""
    start = os.environ.get("BUDGETNAS_WORKER_START", "").strip()
    if start not in ("", "spawn"):
        raise ConfigError(f"$BUDGETNAS_WORKER_START={start!r}: set it to 'spawn' (workers that import torch "
                          "and load the data themselves) or unset it")
    return start
