"""The engine: one search process from a config to a result. It says what happens through
a View (the terminal's draws bars and lines, the Python API's says nothing) and returns
an Outcome; it never prints, never exits, never turns Ctrl-C into a status.

Also the pieces the worker processes of run/workers.py share with it: loading and
checking the data, the lines a search starts and ends with.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..config import JOURNAL_PREFIX, SearchConfig, artifacts_dir
from ..results import leaderboard as lb
from ..results.dashboard import Publisher
from ..results.formats import format_table
from ..space import check_floors
from ..study.create import create_or_load_study, enqueue_presets, quiet_optuna, recover_stale, retried
from ..study.objective import ReportHook, TrialEvent
from ..study.settings import data_space
from ..study.storage import STALE_RETRIES, check_writable_dir, open_storage, redact
from .runtime import preload, resolve_device, set_threads, tune_malloc

if TYPE_CHECKING:
    import optuna
    import torch

    from ..data.load import Data


class View:
    """What a search says while it runs; this base says nothing (the Python API)."""

    progress: Callable[[int, int, float | None], None] | None = None  # (step, steps, val acc) during training

    def started(self, study: "optuna.Study", lines: list[str]) -> None:
        """The study is open and about to run trials; ``lines`` describe it."""

    def note(self, line: str) -> None:
        """Something worth a line while trials run."""

    def event(self, e: TrialEvent) -> None:
        """A trial ended (complete, pruned, rejected)."""

    def trial_done(self) -> None:
        """A trial was told to the study."""

    def close(self) -> None:
        """The trials are over (done, timed out or interrupted)."""


@dataclass
class Outcome:
    study: "optuna.Study"
    url: str
    interrupted: bool  # Ctrl-C: the running trial is marked failed; the same call resumes
    seconds: float  # of this run's trials


def load_checked(cfg: SearchConfig) -> "Data":
    """The data (bad data fails here, before any storage is touched), and budgets below
    the smallest network its space can build refused."""
    from ..data.load import load_data
    data = load_data(cfg.data)
    check_floors(data_space(data, cfg.space), cfg.budget, cfg.max_macs, cfg.max_ram, for_data=True)
    return data


def data_notes(info: dict) -> list[str]:
    """What was done to the data, said once: its shape and identity for own data, then
    each conversion or held-out split."""
    lines = []
    if info.get("source") not in (None, "builtin"):
        c, h, w = info["shape"]
        lines.append(f"data: {len(info['classes'])} classes, images {c}x{h}x{w}, fingerprint {info['fingerprint']}"
                     + (" (decoded cache)" if info.get("cached") else ""))
    return lines + [f"note: {n}" for n in info.get("notes", [])]


def start_lines(cfg: SearchConfig, url: str, study: "optuna.Study", info: dict, device: "torch.device",
                compute: str, recovered: list[str] = ()) -> list[str]:
    """The lines a search starts with: where the study is, the trials of dead processes
    it found (``recovered``), how to watch it, the data and what runs it (``compute``:
    threads, or worker processes)."""
    return [f"study {cfg.study!r} in {redact(url)}  ({len(study.trials)} trials so far)", *recovered,
            f"watch it live:  budgetnas dashboard --study {cfg.study} --storage {redact(url)}",
            f"data: {info['dataset']} train {info['train_size']:,} / val {info['val_size']:,} / "
            f"test {info['test_size']:,}; device {device}, {compute}; budget {cfg.budget:,} params",
            *data_notes(info)]


def warm_start_line(study: "optuna.Study", cfg: SearchConfig, data: "Data") -> list[str]:
    if cfg.warm_start != "presets":
        return []
    names = enqueue_presets(study, cfg.budget, data)
    return [f"warm start: enqueued presets {', '.join(names) or '(none fit or already run)'}"]


def end_lines(study: "optuna.Study", seconds: float, interrupted: bool, several: bool = False) -> list[str]:
    """The lines a search ends with: the count, the leaderboard's top 10, an interruption."""
    entries = lb.build(study.get_trials(deepcopy=False))
    lines = [f"\n{len(study.trials)} trials in the study; this run took {seconds:.0f}s",
             format_table(entries[:10]) if entries else "no trained trial yet"]
    if interrupted:
        lines.append(f"interrupted: {'running trials are' if several else 'the running trial is'} marked failed; "
                     "rerun the same command to resume")
    return lines


def run_search(cfg: SearchConfig, url: str, view: View | None = None, worker: int = 0,
               after_report: ReportHook | None = None) -> Outcome:
    """Run one search process on the study ``cfg.study`` in ``url`` (created if new, else
    resumed): until it holds cfg.trials trained trials or cfg.timeout passes, then the
    re-runs. ``worker``: a number of its own for a process joining a study (its sampler
    seed). ``after_report``: called after each validation report the pruner let pass."""
    from ..study.objective import Objective
    from ..study.optimize import optimize

    view = view or View()
    started = time.monotonic()  # --timeout counts from here: loading the data is part of the search
    quiet_optuna()
    tune_malloc()
    threads = set_threads(cfg.threads, cfg.workers)
    device = resolve_device(cfg.device)
    weights_dir = artifacts_dir(cfg.study, url, cfg.artifacts)
    check_writable_dir(weights_dir)
    data = load_checked(cfg).to(device)
    preload()
    # heartbeats on every RDB storage (SQLite too): a trial whose process was killed is
    # found stale and retried; the journal storage has none
    heartbeat = not url.startswith(JOURNAL_PREFIX)
    # worker 0 is 'budgetnas search' alone; 'budgetnas worker' joins others
    study = create_or_load_study(cfg, open_storage(url, heartbeat=heartbeat), worker, data, parallel=worker != 0)
    recovered = [f"trial {n} was left running by a process that died: marked failed and "
                 + ("queued again" if retried(study, n) else
                    f"not queued again: its parameters were tried {1 + STALE_RETRIES} times")
                 for n in recover_stale(study)]
    lines = start_lines(cfg, url, study, data.info, device, f"{threads} threads", recovered)
    lines += warm_start_line(study, cfg, data)
    view.started(study, lines)
    objective = Objective(cfg, data, device, weights_dir, view.event, view.progress, after_report=after_report)
    t0 = time.perf_counter()
    interrupted = False
    try:
        optimize(study, objective, cfg, view.trial_done, settle=heartbeat, note=view.note, started=started,
                 publish=Publisher())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        view.close()
    return Outcome(study, url, interrupted, time.perf_counter() - t0)


def create_only(cfg: SearchConfig, url: str) -> tuple["optuna.Study", bool, list[str]]:
    """Make the study (settings pinned, --trials stored as its target) so that workers
    started afterwards on any host need only its name and URL. Returns (the study,
    whether it existed, lines about the data and presets)."""
    import optuna
    quiet_optuna()
    data = load_checked(cfg)  # its identity is pinned in the study; bad data fails before the storage
    storage = open_storage(url)
    existed = cfg.study in optuna.get_all_study_names(storage)
    study = create_or_load_study(cfg, storage, data=data)
    return study, existed, data_notes(data.info) + warm_start_line(study, cfg, data)


__all__ = ["View", "Outcome", "run_search", "create_only", "load_checked", "start_lines", "end_lines", "data_notes",
           "warm_start_line"]
