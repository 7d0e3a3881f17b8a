"""budgetnas: find small image classifiers under a hard parameter budget.

Python API (nothing heavy is imported until it is used)::

    import budgetnas
    result = budgetnas.search(x_train, y_train, budget=10_000, epochs=1, trials=20)
    result.leaderboard, result.winner, result.export("exports/best")
    bundle = budgetnas.load_export("exports/best")   # .model, .spec, .manifest
    spec = budgetnas.ArchSpec.from_json(text)

The layout (one subpackage per concern, one file per common change): docs/DESIGN.md.
"""
from .config import VERSION as __version__

__all__ = ["search", "load_export", "ArchSpec", "__version__"]


def search(x_train, y_train, **kwargs):
    """Search small CNNs under a parameter budget on arrays; see budgetnas.api.search."""
    from .api import search as run
    return run(x_train, y_train, **kwargs)


def __getattr__(name: str):
    if name == "load_export":
        from .export.bundle import load_export
        return load_export
    if name == "ArchSpec":
        from .arch import ArchSpec
        return ArchSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
