"""optuna-dashboard on a study's storage: the Pareto scatter and the leaderboard are
published as custom plots on the study page (refreshed by the search after trials and
when the dashboard starts), and the server is bound to 127.0.0.1 unless told otherwise.

Each trial's markdown note (architecture table, params, budget use) is written by
study/objective.py when the trial starts. optuna_dashboard and plotly are imported lazily.
"""
from __future__ import annotations

import math
import socket
import time
from typing import Any

from ..config import ConfigError

PARETO_ID = "pareto-front"  # graph object ids: stable, so each publish replaces the last
LEADERBOARD_ID = "leaderboard"


def publish_plots(study: Any) -> None:
    """Save (or replace) the Pareto scatter and the leaderboard table on the study."""
    from optuna_dashboard import save_plotly_graph_object

    from .figures import leaderboard_figure, pareto_figure
    trials = study.get_trials(deepcopy=False)
    budget = (study.user_attrs.get("settings") or {}).get("budget")
    save_plotly_graph_object(study, pareto_figure(trials, budget), graph_object_id=PARETO_ID)
    save_plotly_graph_object(study, leaderboard_figure(trials), graph_object_id=LEADERBOARD_ID)


def serve(storage: Any, host: str = "127.0.0.1", port: int = 8080):
    """A bound (not yet serving) WSGI server for optuna-dashboard; call serve_forever().
    A busy port or an unknown address is a ConfigError."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from optuna_dashboard import wsgi

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # no line per request
            pass

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        return make_server(host, port, wsgi(storage), server_class=Server, handler_class=QuietHandler)
    except OSError as e:
        why = e.strerror or str(e)
        raise ConfigError(f"cannot listen on {host}:{port} ({why}): pass another --port or --host") from None


class Publisher:
    """Refreshes the study's plots for optuna-dashboard after trials, at a steady low
    rate: at most every ``every`` seconds (rejected trials end in milliseconds), and never
    more than ``share`` of the search's time (a publish reads every trial, so it costs
    more as the study grows: the interval grows with it); once more at the end
    (``force``). A convenience: it never fails a search."""

    def __init__(self, every: float = 5.0, share: float = 0.01):
        self.every, self.share, self.last, self.spent = every, share, -math.inf, 0.0

    def __call__(self, study: Any, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < max(self.every, self.spent / self.share):
            return
        t0 = time.monotonic()
        try:
            publish_plots(study)
        except Exception:
            pass
        self.last = time.monotonic()
        self.spent = self.last - t0
