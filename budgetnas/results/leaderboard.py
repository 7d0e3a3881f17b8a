"""Trials -> leaderboard entries; one pure scoring function; the Pareto front (the one
definition, for any cost: parameters, MACs, peak RAM); tiers.

Always recomputed from what the storage holds (raw measurements): changing the ranking
never needs a rerun.

Re-runs: a trial with the user attr ``rerun_of: N`` trained trial N's candidate again
with a new seed. It is no entry of its own: its accuracies join trial N's ``runs``, and
N is then ranked, placed on the Pareto front and in tiers by its mean validation
accuracy over all runs (``sel_acc``). Candidates measured by several runs rank above
those measured once (the search re-runs its best few before naming a winner, so one
lucky seed cannot take rank 1). No torch, no optuna: trials are read through the
record schema (study/record.py), duck-typed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ..study import record

# Each doubling of the parameter count must buy this many accuracy points to pay off.
PP_PER_DOUBLING = 0.5
REFERENCE_PARAMS = 1000


@dataclass(frozen=True)
class Entry:
    trial: int
    state: str  # complete | pruned | rejected | failed | running | waiting
    val_acc: float | None
    test_acc: float | None
    params: int | None
    macs: int | None
    budget: int | None
    seconds: float | None
    spec: dict | None = None
    recipe: dict | None = None
    preset: str | None = None
    score: float | None = None
    pareto: bool = False
    extra: dict = field(default_factory=dict)
    runs: tuple = ()  # ((val_acc, test_acc), ...) of every run, this trial's first; () if never re-run
    ram: int | None = None  # peak activation bytes of one int8 inference (space.peak_ram)

    @property
    def n_runs(self) -> int:
        return max(1, len(self.runs)) if self.val_acc is not None else 0

    def _mean_std(self, i: int) -> tuple[float | None, float | None]:
        values = [r[i] for r in self.runs if r[i] is not None]
        if len(values) < 2:
            return (self.val_acc if i == 0 else self.test_acc), None
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    @property
    def val_mean(self) -> float | None:
        return self._mean_std(0)[0]

    @property
    def val_std(self) -> float | None:
        """Sample standard deviation of the validation accuracy over runs (None for one run)."""
        return self._mean_std(0)[1]

    @property
    def test_mean(self) -> float | None:
        return self._mean_std(1)[0]

    @property
    def test_std(self) -> float | None:
        return self._mean_std(1)[1]

    @property
    def sel_acc(self) -> float | None:
        """The accuracy this entry is selected by: the mean validation accuracy over runs."""
        return self.val_mean

    @property
    def budget_use(self) -> float | None:
        return self.params / self.budget if self.params and self.budget else None

    @property
    def acc_per_kparam(self) -> float | None:
        """Validation accuracy (percent) per 1,000 parameters: informative, not the rank."""
        return 100 * self.sel_acc / (self.params / 1000) if self.sel_acc is not None and self.params else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["runs"] = [list(r) for r in self.runs]
        for key in ("n_runs", "val_mean", "val_std", "test_mean", "test_std", "budget_use", "acc_per_kparam"):
            d[key] = getattr(self, key)
        d["rerun_of"] = self.extra.get("rerun_of")
        return d


def efficiency(val_acc: float, params: int) -> float:
    """Accuracy-per-parameter score, in accuracy points (higher is better).

    ``100 * val_acc - PP_PER_DOUBLING * log2(params / 1000)``: a model may use twice the
    parameters only if that buys at least half a point of validation accuracy, and half
    the parameters are worth giving up at most half a point.

    Why a tiny useless model cannot win: the size term is logarithmic, so it moves little
    over the whole range a budget allows. Between the smallest net the space can build
    (154 params) and a 25k budget there are 7.3 doublings, worth 3.7 points at most;
    accuracy differences between useful and useless models are tens of points. (A plain
    acc/params ratio would do the opposite: a 250-param net at 50% "beats" a 20k net at
    99% by a factor 40.) Examples: 300 params at 90% scores 90.9; 20k params at 99%
    scores 96.8; 20k params at 10% (chance) scores 7.8. Among equally accurate models
    the smaller one ranks first.
    """
    return 100.0 * val_acc - PP_PER_DOUBLING * math.log2(max(params, 1) / REFERENCE_PARAMS)


EXTRA = ("weights", "seed", "history", "pruned_at", "pruned_reason", "rejected", "rerun_of")


def entry_from_trial(trial: Any) -> Entry:
    r = record.read(trial)
    return Entry(trial=trial.number, state=record.status(trial), val_acc=r.val_acc, test_acc=r.test_acc,
                 params=r.params, macs=r.macs, budget=r.budget, seconds=r.seconds, spec=r.spec, recipe=r.recipe,
                 preset=r.preset, ram=r.ram, extra={k: getattr(r, k) for k in EXTRA if getattr(r, k) is not None})


COSTS = ("params", "macs", "ram")  # what a Pareto front can trade accuracy against


def pareto_front(entries: Iterable[Entry], cost: str = "params") -> set[int]:
    """Trial numbers on the accuracy/``cost`` Pareto front (cost: params, macs or ram):
    no other trained entry has lower-or-equal cost and higher-or-equal val acc (sel_acc)
    with one of them strict. Exact twins (equal cost and sel_acc) do not dominate each
    other: both are on it."""
    pts = sorted((e for e in entries if e.sel_acc is not None and getattr(e, cost)),
                 key=lambda e: (getattr(e, cost), -e.sel_acc))
    front, best, last = set(), -1.0, None
    for e in pts:  # by cost, the most accurate first: on the front if more accurate than all cheaper
        point = (getattr(e, cost), e.sel_acc)
        if e.sel_acc > best or point == last:
            front.add(e.trial)
            best, last = e.sel_acc, point
    return front


SORTS = {
    # candidates measured by several runs first, then by mean val acc
    "accuracy": lambda e: (-(e.n_runs > 1), -(e.sel_acc or 0), e.params or 0, e.trial),
    "efficiency": lambda e: (-(e.score if e.score is not None else -1e9), e.trial),
    "params": lambda e: (e.params or 0, -(e.sel_acc or 0), e.trial),
}


def build(trials: Iterable[Any], sort: str = "accuracy", include_all: bool = False) -> list[Entry]:
    """Leaderboard entries: trained (complete) trials, ranked; with include_all, every
    trial after them (pruned, rejected, failed...) in trial order."""
    entries = [entry_from_trial(t) for t in trials]
    reruns: dict[int, list[tuple]] = {}
    for e in entries:
        if e.state == "rerun" and e.val_acc is not None:
            reruns.setdefault(e.extra["rerun_of"], []).append((e.val_acc, e.test_acc))
    done = [e for e in entries if e.state == "complete" and e.val_acc is not None]
    done = [Entry(**{**asdict(e), "runs": ((e.val_acc, e.test_acc), *reruns[e.trial])}) if e.trial in reruns else e
            for e in done]
    front = pareto_front(done)
    scored = [Entry(**{**asdict(e), "score": efficiency(e.sel_acc, e.params), "pareto": e.trial in front})
              for e in done]
    ranked = sorted(scored, key=SORTS[sort])
    if include_all:
        ranked += sorted((e for e in entries if e.state != "complete" or e.val_acc is None), key=lambda e: e.trial)
    return ranked


def default_tiers(budget: int) -> list[int]:
    """Budget tiers: the round 1-2-5 numbers (1k, 2k, 5k, 10k, ...) from budget/16 up to
    below the budget, then the budget itself: 20,000 -> 2k, 5k, 10k, 20k; 25,000 -> 2k,
    5k, 10k, 20k, 25k. At most five tiers."""
    tiers = {int(budget)}
    for exp in range(len(str(int(budget))) + 1):
        tiers.update(t for t in (10 ** exp, 2 * 10 ** exp, 5 * 10 ** exp) if budget / 16 <= t < budget)
    return sorted(tiers)


def best_per_tier(entries: Iterable[Entry], tiers: list[int]) -> list[tuple[int, Entry | None]]:
    """The most accurate trained entry with params <= each tier (by sel_acc, measured by
    several runs first, as in the ranking); on a tie the smaller, then the earlier trial
    (whatever order the entries come in)."""
    done = [e for e in entries if e.state == "complete" and e.val_acc is not None]
    out = []
    for tier in sorted(tiers):
        fits = [e for e in done if e.params <= tier]
        out.append((tier, max(fits, key=lambda e: (e.n_runs > 1, e.sel_acc, -e.params, -e.trial)) if fits else None))
    return out
