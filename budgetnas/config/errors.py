"""The two errors a user ever sees as one line (the CLI maps them to exit statuses)."""
from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input. The message is one line that says what to do (exit status 2)."""


class ExportIncomplete(RuntimeError):
    """A bundle could not be finished after the trained network was saved (a failing
    exporter or self-check, a full disk). The message is one line: what failed, and what
    was kept where (weights, spec, manifest with the measured accuracy). Exit status 1."""
