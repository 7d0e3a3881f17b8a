"""Trials -> leaderboard entries; one pure scoring function; the Pareto front; tiers.

Always recomputed from what the storage holds (raw measurements): changing the ranking
never needs a rerun. No torch, no optuna: trials are read duck-typed (number, state,
user_attrs), so FrozenTrials and plain records both work.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

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

    @property
    def budget_use(self) -> float | None:
        return self.params / self.budget if self.params and self.budget else None

    @property
    def acc_per_kparam(self) -> float | None:
        """Validation accuracy (percent) per 1,000 parameters: informative, not the rank."""
        return 100 * self.val_acc / (self.params / 1000) if self.val_acc is not None and self.params else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["budget_use"] = self.budget_use
        d["acc_per_kparam"] = self.acc_per_kparam
        return d


def efficiency(val_acc: float, params: int) -> float:
    """Accuracy-per-parameter score, in accuracy points.

    ``100 * val_acc - PP_PER_DOUBLING * log2(params / 1000)``: a model may use twice the
    parameters only if that buys at least half a point of accuracy. Unlike acc/params,
    a tiny useless model cannot win (a 300-parameter net at 90% scores 90.9; a 20k net at
    99% scores 96.8), and among equally accurate models the smaller one ranks first.
    """
    return 100.0 * val_acc - PP_PER_DOUBLING * math.log2(max(params, 1) / REFERENCE_PARAMS)


def _state(trial: Any) -> str:
    state = getattr(getattr(trial, "state", None), "name", None) or str(getattr(trial, "state", "")).lower()
    attrs = trial.user_attrs
    if state.upper() == "PRUNED" and attrs.get("rejected"):
        return "rejected"
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "waiting"}.get(state.upper(), state.lower())


def entry_from_trial(trial: Any) -> Entry:
    a = trial.user_attrs
    return Entry(trial=trial.number, state=_state(trial), val_acc=a.get("val_acc"), test_acc=a.get("test_acc"),
                 params=a.get("params"), macs=a.get("macs"), budget=a.get("budget"), seconds=a.get("seconds"),
                 spec=a.get("spec"), recipe=a.get("recipe"), preset=a.get("preset"),
                 extra={k: a[k] for k in ("weights", "seed", "history", "pruned_at", "pruned_reason", "rejected") if k in a})


def pareto_front(entries: Iterable[Entry]) -> set[int]:
    """Trial numbers on the accuracy/params Pareto front: no other trained entry has
    fewer-or-equal params and higher-or-equal val acc with one of them strict."""
    pts = sorted((e for e in entries if e.val_acc is not None and e.params), key=lambda e: (e.params, -e.val_acc))
    front, best = set(), -1.0
    for e in pts:
        if e.val_acc > best:
            front.add(e.trial)
            best = e.val_acc
    return front


SORTS = {
    "accuracy": lambda e: (-(e.val_acc or 0), e.params or 0, e.trial),
    "efficiency": lambda e: (-(e.score or -1e9), e.trial),
    "params": lambda e: (e.params or 0, -(e.val_acc or 0), e.trial),
}


def build(trials: Iterable[Any], sort: str = "accuracy", include_all: bool = False) -> list[Entry]:
    """Leaderboard entries: trained (complete) trials, ranked; with include_all, every
    trial after them (pruned, rejected, failed...) in trial order."""
    entries = [entry_from_trial(t) for t in trials]
    done = [e for e in entries if e.state == "complete" and e.val_acc is not None]
    front = pareto_front(done)
    scored = [Entry(**{**asdict(e), "score": efficiency(e.val_acc, e.params), "pareto": e.trial in front})
              for e in done]
    ranked = sorted(scored, key=SORTS[sort])
    if include_all:
        ranked += sorted((e for e in entries if e.state != "complete" or e.val_acc is None), key=lambda e: e.trial)
    return ranked


def default_tiers(budget: int) -> list[int]:
    """Budget tiers: the budget and its successive halvings down to about 1/10 of it."""
    tiers, b = [], budget
    while b >= max(1, budget // 10) and len(tiers) < 5:
        tiers.append(int(b))
        b //= 2
    return sorted(tiers)


def best_per_tier(entries: Iterable[Entry], tiers: list[int]) -> list[tuple[int, Entry | None]]:
    """The most accurate trained entry with params <= each tier."""
    done = [e for e in entries if e.state == "complete" and e.val_acc is not None]
    out = []
    for tier in sorted(tiers):
        fits = [e for e in done if e.params <= tier]
        out.append((tier, max(fits, key=lambda e: (e.val_acc, -e.params)) if fits else None))
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


COLUMNS = ("rank", "trial", "val acc %", "test acc %", "params", "budget %", "acc/1k params", "score", "seconds", "pareto")


def rows(entries: list[Entry]) -> list[list[str]]:
    out = []
    for i, e in enumerate(entries, 1):
        out.append([str(i) if e.state == "complete" else e.state, str(e.trial), _pct(e.val_acc), _pct(e.test_acc),
                    f"{e.params:,}" if e.params else "-", _pct(e.budget_use),
                    f"{e.acc_per_kparam:.2f}" if e.acc_per_kparam else "-",
                    f"{e.score:.2f}" if e.score is not None else "-",
                    f"{e.seconds:.1f}" if e.seconds is not None else "-", "*" if e.pareto else ""])
    return out


def format_table(entries: list[Entry]) -> str:
    body = rows(entries)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(s.rjust(w) for s, w in zip(cells, widths))
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *map(line, body)])
