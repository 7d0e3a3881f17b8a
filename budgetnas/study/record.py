"""The trial record: everything budgetnas stores on a trial, as one typed schema with
its one writer and one reader. The names are Optuna user attrs of stored studies (a
file format: never rename one). No optuna here (writing goes through storage.py, loaded
when a trial is written): trials are read duck-typed (number, state, user_attrs), so
FrozenTrials and plain records both work.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrialRecord:
    # when queued (enqueue_trial): what the trial is asked to run
    rerun_of: int | None = None  # re-trains trial N's candidate with a new seed; never pruned
    default_trial: bool | None = None  # one of the built-in first trials (space/defaults.py)
    preset: str | None = None  # a seed preset (--warm-start presets): its name, spec and recipe
    preset_spec: dict | None = None
    preset_recipe: dict | None = None
    # when it starts, before any model exists
    params: int | None = None
    budget: int | None = None
    macs: int | None = None
    ram: int | None = None  # peak activation bytes of one int8 inference
    max_macs: int | None = None
    max_ram: int | None = None
    worker: str | None = None  # host:pid that ran it (the host that holds its weights)
    spec: dict | None = None  # ArchSpec JSON
    # rejected unbuilt (over a budget, or for time)
    rejected: str | None = None  # what it was over, in words
    rejected_by: list[str] | None = None  # params | macs | ram | time
    # trained
    recipe: dict | None = None
    seed: int | None = None
    budget_use: float | None = None  # params / budget
    pruned_at: int | None = None  # the report after which the pruner stopped it
    pruned_reason: str | None = None  # e.g. diverged
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None  # wall time of training and evaluation
    history: list[dict] | None = None  # per epoch
    weights: str | None = None  # path of its state_dict
    device: str | None = None
    precision: str | None = None  # fp32 | bf16
    step: str | None = None  # eager | captured (the training step replayed from a CUDA graph)
    threads: int | None = None
    torch: str | None = None  # torch version


FIELDS = frozenset(f.name for f in dataclasses.fields(TrialRecord))


def check_names(values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise TypeError(f"not fields of the trial record: {', '.join(unknown)}")
    return values


def write(trial: Any, constraints: dict[str, float] | None = None, **values: Any) -> None:
    """Store ``values`` (record fields) on a running trial, at once where the storage can,
    with Optuna constraint values (``constraints``: name -> value, as
    Trial.set_constraint; one already set, say on a retried trial, is kept)."""
    from .fast import set_trial_attrs
    set_trial_attrs(trial, check_names(values), constraints)


def queued(**values: Any) -> dict[str, Any]:
    """The user attrs of a trial to queue (``study.enqueue_trial(params, user_attrs=...)``)."""
    return dict(check_names(values))


def read(trial: Any) -> TrialRecord:
    """The record of a trial (attrs it does not know, say from a later version, are left out)."""
    attrs = trial.user_attrs
    return TrialRecord(**{k: v for k, v in attrs.items() if k in FIELDS})


STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def status(trial: Any) -> str:
    """complete | rerun | pruned | rejected | failed | running | waiting: the trial's
    state, with a rejected (pruned unbuilt) trial and a completed re-run told apart."""
    state = getattr(getattr(trial, "state", None), "name", None) or str(getattr(trial, "state", ""))
    attrs = trial.user_attrs
    if state.upper() == "PRUNED" and attrs.get("rejected"):
        return "rejected"
    if state.upper() == "COMPLETE" and attrs.get("rerun_of") is not None:
        return "rerun"
    return STATES.get(state.upper(), state.lower())


def trained(trial: Any) -> bool:
    """A candidate's own training run (complete or pruned by the pruner): what --trials
    counts. Rejected, failed, running trials and re-runs are not."""
    return status(trial) in ("complete", "pruned") and trial.user_attrs.get("rerun_of") is None
