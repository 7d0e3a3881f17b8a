"""budgetnas: find small image classifiers under a hard parameter budget."""

__version__ = "0.1.0"
