"""Running a study's trials: until it holds --trials trained trials or --timeout
passes, then the re-runs of the best candidates; waiting, at the end, for other
processes' trials and retrying those whose process died."""
from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Callable

import optuna

from ..config import SearchConfig, env
from .create import recover_stale
from .schedule import enqueue_reruns, queued_retries, rerun_reserve, running_count, trained_count

if TYPE_CHECKING:
    from .objective import Objective

Publish = Callable[[optuna.Study, bool], None]  # (study, force): refresh what a dashboard shows


def await_stale(study: optuna.Study, note: Callable[[str], None] | None = None) -> bool:
    """Wait while other processes' trials run, until each ends or is found stale: the
    grace period at most, since a trial still running after it has a live worker that
    keeps its heartbeat. Stale trials are failed and queued again; returns True if any
    was. (This process runs no trial now, so every running trial is another's.)"""
    interval, grace = env.heartbeat()
    poll = min(interval, 2)
    deadline = time.monotonic() + grace + poll
    told = False
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if recover_stale(study):
            return True
        if time.monotonic() > deadline:
            return False
        if note is not None and not told:
            told = True
            note(f"the target is reached; waiting (up to {grace + poll}s) for the trials other workers run: "
                 "one whose worker died is retried here")
        time.sleep(poll)
    return False


def optimize(study: optuna.Study, objective: "Objective", cfg: SearchConfig,
             after_trial: Callable[[], None] | None = None, running_since: datetime.datetime | None = None,
             settle: bool = False, note: Callable[[str], None] | None = None, confirm: bool = True,
             started: float | None = None, publish: Publish | None = None) -> None:
    """Run trials until the study holds cfg.trials trained trials (total, so the same
    command resumes an interrupted search) and no retry of a dead worker's trial is
    queued, or cfg.timeout passes. KeyboardInterrupt propagates after Optuna marks the
    running trial failed.

    ``running_since`` (several workers on one study): trials other workers started since
    then and still run count towards the target too, so N workers stop at the target
    instead of up to N - 1 trials past it (the last worker left always finishes the count).

    ``settle`` (storages with heartbeats, which other processes may share): on reaching
    the target, wait for the trials other workers run (see await_stale) and run the
    retry of any whose worker died. Without it a worker that reached the target first
    would leave a killed worker's trial RUNNING for good.

    ``confirm``: then re-run the ``cfg.confirm`` best candidates ``cfg.reruns`` more times
    with new seeds (queued as trials with the user attr ``rerun_of``), so the leaderboard
    ranks them by a mean over runs.

    ``cfg.timeout`` counts from ``started`` (time.monotonic(); default: now), and the
    whole search fits in it: the re-runs are kept time for (estimated from the
    candidates' own times; RERUN_SHARE of the timeout at most), and a candidate or re-run
    expected to end after the deadline is not started (see expected_seconds) but stored
    as rejected for time: that ends the search for new candidates; in the re-runs it only
    skips that re-run (each is queued, so the others are still tried)."""
    target = cfg.trials
    publish = publish or (lambda study, force: None)
    k = cfg.confirm if confirm else 0
    end = None if cfg.timeout is None else (time.monotonic() if started is None else started) + cfg.timeout

    def reserve(study: optuna.Study) -> float:
        return rerun_reserve(study.get_trials(deepcopy=False), cfg, k)

    def finished(study: optuna.Study) -> bool:
        if target is None:
            return False
        done = trained_count(study)
        if running_since is not None and done < target:
            done += running_count(study, running_since)
        return done >= target and not queued_retries(study)

    def after(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        publish(study, False)
        if after_trial is not None:
            after_trial()

    def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        after(study, trial)
        if finished(study) or (end is not None and time.monotonic() + reserve(study) >= end):
            study.stop()  # the target is reached, or what time is left is for the re-runs

    def left(keep: float = 0.0) -> float | None:
        return None if end is None else max(0.0, end - time.monotonic() - keep)

    # n_trials caps asks as a guard: rejected trials take ~ms, but never loop forever
    cap = None if target is None else 50 * target
    if end is not None:
        objective.deadline = lambda: end - reserve(study)
    try:
        while True:
            if not finished(study) and left(reserve(study)) != 0.0:
                study.optimize(objective, n_trials=cap, timeout=left(reserve(study)), callbacks=[stop_when_done],
                               catch=(), gc_after_trial=False, show_progress_bar=False)
            if not (settle and finished(study) and (end is None or time.monotonic() < end)
                    and await_stale(study, note)):
                break
        if end is not None:
            objective.deadline = lambda: end
        if k and cfg.reruns and left() != 0.0:
            waiting = enqueue_reruns(study, k, cfg.reruns)
            if waiting:
                if note is not None:
                    note(f"re-running the {k} best candidates {cfg.reruns} more time(s) each with new seeds "
                         f"before naming a winner ({waiting} runs)")
                study.optimize(objective, n_trials=waiting, timeout=left(), callbacks=[after],
                               catch=(), gc_after_trial=False, show_progress_bar=False)
    finally:
        objective.deadline = lambda: None
        publish(study, True)
