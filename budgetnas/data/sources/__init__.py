"""Data sources: one module per source in this folder, found when the registry is first
read. A source turns a ``--dataset`` value into checked uint8 Arrays (data/arrays.py);
data/load.py then splits and normalises them the same way for every source.

A new source is a new module here with a Source subclass (see npz.py): which
``--dataset`` values are its own, its words in the --dataset help, how to read them
(with the --image-size/--channels conversions), what the decoded cache keys them by,
and optionally what ``budgetnas data`` prints for it. No torch.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import pkgutil
from pathlib import Path
from typing import ClassVar

from ...config import ConfigError, DataConfig
from ..arrays import Arrays

CACHE_VERSION = 2  # bump when the decoded arrays of the same files would differ


class Source:
    """Base of the sources."""

    name: ClassVar[str]  # recorded as the data's 'source' (builtin, folder, npz, torchvision...)
    help: ClassVar[str]  # its words in the --dataset help
    priority: ClassVar[int] = 50  # lower claims first; a catch-all (a folder) claims last
    listed: ClassVar[int] = 50  # its place in the --dataset help
    local: ClassVar[bool] = False  # a path on this host (a worker elsewhere passes its copy with --data-dir)
    default_val_size: ClassVar[int | None] = None  # --val-size when not given (None: 10%, at most 5,000)

    def matches(self, dataset: str) -> bool:
        """Whether ``dataset`` names data of this source (by its form; it may not exist here)."""
        raise NotImplementedError

    def exists(self, dataset: str) -> bool:
        return True

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        """(the checked arrays, converted as cfg asks; where they were read, for messages)."""
        raise NotImplementedError

    def listing(self, dataset: str) -> bytes | None:
        """What decoded arrays of ``dataset`` depend on besides the conversions (file sizes
        and times...), for the decoded cache; None: never cached (cheap to read)."""
        return None

    def stats(self, dataset: str) -> tuple[float, float] | None:
        """Published (mean, std) to normalise with; None: measured on the training split."""
        return None

    def checksums(self, dataset: str) -> dict[str, str] | None:
        """{file: md5} every read is held to (recorded with the data), or None."""
        return None

    def describe(self, cfg: DataConfig) -> list[str] | None:
        """What ``budgetnas data`` prints; None: the generic summary of the loaded data."""
        return None


@functools.cache
def registry() -> tuple[Source, ...]:
    """One instance of each source in this folder, in claim order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [obj() for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, Source)
                  and obj is not Source and obj.__module__ == module.__name__]
    return tuple(sorted(found, key=lambda s: (s.priority, s.name)))


def dataset_help() -> str:
    """The accepted --dataset values, from every source."""
    helps = [s.help for s in sorted(registry(), key=lambda s: (s.listed, s.name))]
    return ", ".join(helps[:-1]) + ", or " + helps[-1] if len(helps) > 1 else helps[0]


def source_for(dataset: str, must_exist: bool = True) -> Source:
    """The source of ``dataset``; ConfigError listing what is accepted if there is none
    (or, with ``must_exist``, if a path source's file or folder is not there). An empty
    name is none (as a path it would be the current folder)."""
    if not isinstance(dataset, str) or not dataset.strip():
        raise ConfigError(f"an empty dataset name: use {dataset_help()}")
    for source in registry():
        if source.matches(dataset) and (not must_exist or source.exists(dataset)):
            return source
    raise ConfigError(f"unknown dataset {dataset!r}: use {dataset_help()}")


def is_builtin(dataset: str) -> bool:
    return source_for(dataset, must_exist=False).name == "builtin"


def is_local(dataset: str) -> bool:
    """Whether ``dataset`` is a path on a host (a folder, an .npz), not a name."""
    return source_for(dataset, must_exist=False).local


def cache_key(dataset: str, size: int | None, channels: int | None, listing: bytes) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, dataset, str(Path(dataset)), size, channels]).encode())
    h.update(listing)
    return h.hexdigest()[:24]
