"""Scheduling a study's trials: what counts towards --trials, how long a candidate will
take (the --timeout deadline), and the re-runs of the best candidates (a winner that is
not a coin flip). Reads trials through the record schema."""
from __future__ import annotations

import datetime
import math
import statistics
import weakref
from typing import TYPE_CHECKING

from . import record

if TYPE_CHECKING:
    import optuna

    from ..config import SearchConfig

TIME_MARGIN = 1.15  # a candidate starts only if 1.15x its expected time is left
# With --timeout, the time kept back for re-runs is at most this share of it: long
# (multi-epoch) trials would otherwise spend most of the time re-running the first few
# candidates. Re-runs that do not fit are not started (first re-runs go first).
RERUN_SHARE = 1 / 3


def _is(trial, *states: str) -> bool:
    return trial.state.name in states


def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % (2 ** 31)


def rerun_seed(seed: int, run: int) -> int:
    """The training seed of re-run ``run`` (1, 2...) of a trial trained with ``seed``."""
    return (seed + 7_919 * run) % (2 ** 31)


def expected_seconds(trials: list, n_macs: int, neighbours: int = 3) -> float | None:
    """How long a candidate of ``n_macs`` MACs per image will train, from the study's
    finished full-length runs (complete trials and re-runs): trial time follows MACs far
    more than parameters. The median of the ``neighbours`` runs nearest in MACs (log
    scale), each scaled up in proportion where this candidate has more MACs (never down:
    small nets are dominated by per-step costs), times TIME_MARGIN. None before any run
    has finished (the first trials run whatever the clock says)."""
    done = [(r.macs, r.seconds) for r in (record.read(t) for t in trials if _is(t, "COMPLETE")) if r.macs and r.seconds]
    if not done:
        return None
    near = sorted(done, key=lambda d: abs(math.log(d[0] / max(n_macs, 1))))[:neighbours]
    return TIME_MARGIN * statistics.median(s * max(1.0, n_macs / m) for m, s in near)


_verdicts: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # study -> {finished trial's number: trained}


def trained_count(study: "optuna.Study") -> int:
    """Trials that trained a candidate (record.trained): what --trials counts. Asked after
    every trial; a finished trial's verdict never changes, so it is worked out once per
    study object (at 5,000 trials working out every one cost ~4 ms a trial)."""
    known = _verdicts.setdefault(study, {})
    count = 0
    for t in study.get_trials(deepcopy=False):
        verdict = known.get(t.number)
        if verdict is None:
            verdict = record.trained(t)
            if t.state.is_finished():
                known[t.number] = verdict
        count += verdict
    return count


def running_count(study: "optuna.Study", since: datetime.datetime) -> int:
    """Trials running now that started at or after ``since`` (a trial left running by a
    process killed earlier is not counted)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if _is(t, "RUNNING")
               and t.datetime_start is not None and t.datetime_start >= since)


def queued_retries(study: "optuna.Study") -> int:
    """Trials failed as stale and queued again, not yet picked up by a worker."""
    return sum(1 for t in study.get_trials(deepcopy=False) if _is(t, "WAITING") and "failed_trial" in t.system_attrs)


# --- re-runs of the best candidates ----------------------------------------------------------
def top_candidates(trials: list, k: int) -> list:
    """The k best completed trials by their own validation accuracy (re-runs excluded)."""
    done = [(t, record.read(t)) for t in trials if _is(t, "COMPLETE")]
    done = [(t, r) for t, r in done if r.rerun_of is None and r.val_acc is not None]
    return [t for t, r in sorted(done, key=lambda p: (-p[1].val_acc, p[1].params or 0, p[0].number))[:k]]


def missing_reruns(trials: list, k: int, reruns: int) -> list[tuple]:
    """(trial, run) pairs still to do so that each of the k best candidates has ``reruns``
    re-runs: done, running or queued ones count; failed ones, and ones not started for
    lack of time, do not (they run again, given time). In the order they run: every
    candidate's first re-run (best candidate first), then every second one..., so a
    search short of time gives each candidate a second measurement before a third."""
    have: dict[int, int] = {}
    for t in trials:
        r = record.read(t)
        if r.rerun_of is not None and not _is(t, "FAIL") and not r.rejected:
            have[r.rerun_of] = have.get(r.rerun_of, 0) + 1
    todo = [(t, run) for t in top_candidates(trials, k) for run in range(have.get(t.number, 0) + 1, reruns + 1)]
    return sorted(todo, key=lambda pair: pair[1])  # stable: by run, then by rank


def rerun_seconds(trials: list, k: int, reruns: int) -> float:
    """Estimated seconds the re-runs still to do will take (each as long as its original,
    with the margin a re-run needs to be started: TIME_MARGIN)."""
    return TIME_MARGIN * sum(record.read(t).seconds or 0.0 for t, _ in missing_reruns(trials, k, reruns))


def rerun_reserve(trials: list, cfg: "SearchConfig", k: int) -> float:
    """Seconds a search with --timeout keeps back for re-running its k best candidates:
    their estimated time (rerun_seconds), RERUN_SHARE of the timeout at most."""
    if cfg.timeout is None or not k or not cfg.reruns:
        return 0.0
    return min(rerun_seconds(trials, k, cfg.reruns), RERUN_SHARE * cfg.timeout)


def enqueue_reruns(study: "optuna.Study", k: int, reruns: int) -> int:
    """Queue the missing re-runs of the k best candidates (same parameters, a new seed per
    run); return how many re-runs are waiting to run."""
    trials = study.get_trials(deepcopy=False)
    for t, run in missing_reruns(trials, k, reruns):
        r = record.read(t)
        study.enqueue_trial(dict(t.params), user_attrs=record.queued(
            rerun_of=t.number, seed=rerun_seed(r.seed or 0, run),
            **{key: getattr(r, key) for key in ("preset", "preset_spec", "preset_recipe") if getattr(r, key)}))
    return sum(1 for t in study.get_trials(deepcopy=False) if _is(t, "WAITING") and record.read(t).rerun_of is not None)
