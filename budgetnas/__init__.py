"""budgetnas: find small image classifiers under a hard parameter budget.

Python API (nothing heavy is imported until it is called)::

    import budgetnas
    result = budgetnas.search(x_train, y_train, budget=10_000, epochs=1, trials=20)
    result.leaderboard, result.winner, result.export("exports/best")
"""
import sys
import types

from .config import VERSION as __version__
__all__ = ["search", "__version__"]


def _search(x_train, y_train, **kwargs):
    """Search small CNNs under a parameter budget on arrays; see budgetnas.api.search."""
    from .api import search as run
    return run(x_train, y_train, **kwargs)


class _Package(types.ModuleType):
    """The package's ``search`` attribute stays the API function. (The module
    budgetnas/search.py has the same name: the import system sets it as the package's
    attribute once it is loaded; code reaches that module through ``from .search import``.)"""

    @property
    def search(self):
        return _search

    @search.setter
    def search(self, module) -> None:
        pass


sys.modules[__name__].__class__ = _Package
search = _search
