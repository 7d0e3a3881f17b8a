"""Data: one module per source behind a registry (sources/), every source's arrays
checked the same way (arrays.py) and cached decoded (cache.py), then split and
normalised into resident tensors (load.py), with subsets (subset.py) and batched
augmentation (augment.py). ``budgetnas.data.load_data``, ``Data`` and the modules
with tensors load torch on first use; the rest does not."""
from .arrays import Arrays, SourceError
from .sources import dataset_help, is_builtin, is_local, registry, source_for
from .sources.idx import FILES, REGISTRY, DataError, DatasetInfo

_TORCH = {"load_data", "Data", "identity", "normalise", "channel_stats", "holdout"}  # of load.py


def __getattr__(name: str):
    if name in _TORCH:
        from . import load
        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Arrays", "SourceError", "DataError", "DatasetInfo", "FILES", "REGISTRY", "dataset_help", "is_builtin",
           "is_local", "registry", "source_for", *sorted(_TORCH)]
