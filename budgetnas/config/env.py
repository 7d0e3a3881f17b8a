"""Every environment variable budgetnas reads, each in one function (read when called,
never at import). A malformed value is a ConfigError naming the variable.

| variable | meaning |
|---|---|
| BUDGETNAS_DATA | root folder of downloaded datasets (default: the user cache, below) |
| XDG_CACHE_HOME | the user cache (default ~/.cache; relative: ignored, as XDG says); budgetnas uses its budgetnas/ |
| BUDGETNAS_OFFLINE | 1 (yes, true, on): never download (mirrors, npm, torchvision); 0, no, false, off or empty: do |
| BUDGETNAS_OFFLINE_DIRS | folders with local copies of the built-in datasets (os.pathsep-separated; empty: none) |
| BUDGETNAS_CACHE | folder of decoded own data (default DATA_ROOT/decoded) |
| BUDGETNAS_MAX_MEMORY | bytes a dataset may take (K/M/G suffix, more than 0); default MemAvailable |
| BUDGETNAS_STORAGE | default storage URL (a password need not be on the command line) |
| BUDGETNAS_HEARTBEAT | seconds between trial heartbeats on RDB storages (default 20, at most 3600) |
| BUDGETNAS_HEARTBEAT_GRACE | seconds without a heartbeat before a trial is stale (default 3 x interval; <= 86400) |
| BUDGETNAS_WORKER_START | 'spawn': --workers processes import torch and load the data themselves |
| BUDGETNAS_MPS | 0 (no, false, off): never start NVIDIA MPS for --workers on a GPU; 1 (default): where installed |
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError

HEARTBEAT_INTERVAL = 20  # seconds
MAX_HEARTBEAT = 3600  # seconds: a longer interval would find no worker stale in time (and overflows waits)
MAX_GRACE = 86_400
YES, NO = ("1", "yes", "true", "on"), ("", "0", "no", "false", "off")


def check() -> None:
    """Read every variable once: a malformed one fails here, naming it (the command line
    calls this before any command's work)."""
    offline(), max_memory(), heartbeat(), worker_start(), mps()


def data_root() -> Path:
    """Where built-in datasets (one folder each) and the decoded cache live."""
    env = os.environ.get("BUDGETNAS_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(cache) if os.path.isabs(cache) else Path.home() / ".cache") / "budgetnas"


def offline() -> bool:
    text = os.environ.get("BUDGETNAS_OFFLINE", "")
    if text.strip().lower() not in YES + NO:
        raise ConfigError(f"$BUDGETNAS_OFFLINE={text!r}: set it to 1 (never download) or 0, or unset it")
    return text.strip().lower() in YES


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
    units = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)\s*([KMG]?)B?", env.strip().upper())
    if m is None or (m.group(2) == "" and "." in m.group(1)):
        raise ConfigError(f"$BUDGETNAS_MAX_MEMORY={env!r} is not a size: set it to bytes or e.g. 8G, or unset it")
    size = float(m.group(1)) * units[m.group(2)]
    if not 1 <= size <= 1e18:  # 0 bytes would refuse every dataset; 1e18: far past any machine's memory
        raise ConfigError(f"$BUDGETNAS_MAX_MEMORY={env!r} must be more than 0 bytes and at most 1e18: set it to "
                          "e.g. 8G, or unset it")
    return int(size)


def storage() -> str | None:
    return os.environ.get("BUDGETNAS_STORAGE") or None


def heartbeat() -> tuple[int, int]:
    """(interval, grace period) in seconds for trial heartbeats on RDB storages."""
    def seconds(name: str, default: int, most: int) -> int:
        text = os.environ.get(name, "").strip()
        if not text:
            return default
        if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
            raise ConfigError(f"${name}={text!r} is not a whole number of seconds >= 1: fix or unset it")
        if int(text) > most:
            raise ConfigError(f"${name}={text!r} is more than {most} seconds: fix or unset it")
        return int(text)

    interval = seconds("BUDGETNAS_HEARTBEAT", HEARTBEAT_INTERVAL, MAX_HEARTBEAT)
    grace = seconds("BUDGETNAS_HEARTBEAT_GRACE", 3 * interval, MAX_GRACE)
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


def mps() -> bool:
    """Whether --workers on a GPU may start NVIDIA MPS (run/mps.py): yes unless turned off."""
    value = os.environ.get("BUDGETNAS_MPS", "").strip().lower() or "1"
    if value not in YES + NO:
        raise ConfigError(f"$BUDGETNAS_MPS={value!r}: set it to 1 (start NVIDIA MPS for workers on a GPU where "
                          "it is installed) or 0 (never)")
    return value in YES
