"""Trials -> leaderboard entries; one pure scoring function; the Pareto front; tiers.

Always recomputed from what the storage holds (raw measurements): changing the ranking
never needs a rerun.

Re-runs: a trial with the user attr ``rerun_of: N`` trained trial N's candidate again
with a new seed. It is no entry of its own: its accuracies join trial N's ``runs``, and
N is then ranked, placed on the Pareto front and in tiers by its mean validation
accuracy over all runs (``sel_acc``). Candidates measured by several runs rank above
those measured once (the search re-runs its best few before naming a winner, so one
lucky seed cannot take rank 1). No torch, no optuna: trials are read duck-typed (number, state,
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


def _state(trial: Any) -> str:
    state = getattr(getattr(trial, "state", None), "name", None) or str(getattr(trial, "state", "")).lower()
    attrs = trial.user_attrs
    if state.upper() == "PRUNED" and attrs.get("rejected"):
        return "rejected"
    if state.upper() == "COMPLETE" and attrs.get("rerun_of") is not None:
        return "rerun"
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "waiting"}.get(state.upper(), state.lower())


def entry_from_trial(trial: Any) -> Entry:
    a = trial.user_attrs
    return Entry(trial=trial.number, state=_state(trial), val_acc=a.get("val_acc"), test_acc=a.get("test_acc"),
                 params=a.get("params"), macs=a.get("macs"), budget=a.get("budget"), seconds=a.get("seconds"),
                 spec=a.get("spec"), recipe=a.get("recipe"), preset=a.get("preset"), ram=a.get("ram"),
                 extra={k: a[k] for k in ("weights", "seed", "history", "pruned_at", "pruned_reason", "rejected",
                                          "rerun_of") if k in a})


def pareto_front(entries: Iterable[Entry]) -> set[int]:
    """Trial numbers on the accuracy/params Pareto front: no other trained entry has
    fewer-or-equal params and higher-or-equal val acc (sel_acc) with one of them strict.
    Exact twins (equal params and sel_acc) do not dominate each other: both are on it."""
    pts = sorted((e for e in entries if e.sel_acc is not None and e.params), key=lambda e: (e.params, -e.sel_acc))
    front, best, last = set(), -1.0, None
    for e in pts:  # by size, the most accurate first: on the front if more accurate than all smaller
        if e.sel_acc > best or (e.params, e.sel_acc) == last:
            front.add(e.trial)
            best, last = e.sel_acc, (e.params, e.sel_acc)
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


def pct(x: float | None) -> str:
    """A fraction as a percentage with 2 decimals, "-" for None (tables and reports)."""
    return "-" if x is None else f"{100 * x:.2f}"


COLUMNS = ("rank", "trial", "val acc %", "test acc %", "runs", "params", "budget %", "MACs", "RAM bytes",
           "acc/1k params", "score", "seconds", "pareto")


def count_cell(n: int | None) -> str:
    """A count as '12.3k' / '1.25M' (MACs, bytes), '-' for None (trials stored before it was counted)."""
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n / 1e3:.1f}k" if n >= 10_000 else f"{n:,}"


def runs_cell(e: Entry) -> str:
    """'1', or '3 ±0.05' (runs, and the std of val acc over them in points)."""
    if e.val_std is None:
        return str(e.n_runs) if e.n_runs else "-"
    return f"{e.n_runs} ±{100 * e.val_std:.2f}"


def rows(entries: list[Entry]) -> list[list[str]]:
    """Table rows; accuracies are means over runs where a candidate was re-run."""
    out = []
    for i, e in enumerate(entries, 1):
        out.append([str(i) if e.state == "complete" else e.state, str(e.trial), pct(e.sel_acc), pct(e.test_mean),
                    runs_cell(e),
                    f"{e.params:,}" if e.params else "-", pct(e.budget_use), count_cell(e.macs), count_cell(e.ram),
                    f"{e.acc_per_kparam:.2f}" if e.acc_per_kparam else "-",
                    f"{e.score:.2f}" if e.score is not None else "-",
                    f"{e.seconds:.1f}" if e.seconds is not None else "-", "*" if e.pareto else ""])
    return out


def format_table(entries: list[Entry], arch: bool = False) -> str:
    """A plain-text table; with arch, a last column with the architecture string."""
    if not arch:
        return _plain_table(COLUMNS, rows(entries))
    return _plain_table(MD_COLUMNS, [[*r, arch_summary(e.spec)] for r, e in zip(rows(entries), entries)])


# --- summaries and output formats (table, CSV, JSON, markdown) ------------------------------
def arch_summary(spec: dict | None) -> str:
    """A short architecture string: conv widths (':k' for non-3x3 kernels), 's' before the
    width of a separable conv (depthwise 3x3 then 1x1), 'dw' for another depthwise conv,
    P for a 2x2 max pool, then the head, e.g. '8 8 P 16 16 P 32 | gap fc64', '8 P s16 P s24 | flat'."""
    if not spec:
        return "-"
    parts: list[str] = []
    for layer in spec.get("layers", []):
        if layer.get("kind") == "pool":
            parts.append("P")
            continue
        k = layer.get("kernel", 3)
        if parts and parts[-1] == "dw" and k == 1:  # the 1x1 half of a separable conv
            parts[-1] = f"s{layer.get('out')}"
        elif layer.get("groups", 1) > 1 and layer.get("groups") == layer.get("out"):
            parts.append("dw" + ("" if k == 3 else f":{k}"))
        else:
            parts.append(f"{layer.get('out')}" + ("" if k == 3 else f":{k}"))
    if not spec.get("linear", True):
        head = "gap (conv logits)"
    else:
        head = " ".join(["flat" if spec.get("head") == "flatten" else "gap", *(f"fc{h}" for h in spec.get("hidden", ()))])
    return f"{' '.join(parts)} | {head}"


def state_counts(entries: Iterable[Entry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.state] = counts.get(e.state, 0) + 1
    return counts


def records(entries: list[Entry]) -> list[dict[str, Any]]:
    """One plain dict per entry with its rank (None unless complete) and arch string."""
    out, rank = [], 0
    for e in entries:
        rank += e.state == "complete"
        out.append({"rank": rank if e.state == "complete" else None, **e.to_dict(), "arch": arch_summary(e.spec)})
    return out


CSV_FIELDS = ("rank", "trial", "state", "val_acc", "test_acc", "n_runs", "val_mean", "val_std", "test_mean", "test_std",
              "params", "macs", "ram", "budget", "budget_use", "seconds", "score", "pareto", "preset", "rerun_of", "arch", "spec")


def format_csv(entries: list[Entry]) -> str:
    """CSV with a header row; accuracies as fractions, the spec as compact JSON."""
    import csv
    import io
    import json
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records(entries):
        r["spec"] = json.dumps(r["spec"], sort_keys=True, separators=(",", ":")) if r["spec"] else ""
        w.writerow({k: "" if r[k] is None else r[k] for k in CSV_FIELDS})
    return buf.getvalue()


def tier_records(best: list[tuple[int, Entry | None]]) -> list[dict[str, Any]]:
    return [{"tier": t, "trial": e.trial if e else None, "val_acc": e.sel_acc if e else None,
             "test_acc": e.test_mean if e else None, "params": e.params if e else None} for t, e in best]


def format_json(entries: list[Entry], best: list[tuple[int, Entry | None]] | None = None,
                counts: dict[str, int] | None = None, **meta: Any) -> str:
    """{**meta, counts (trials per state; default: of these entries), entries: [...],
    tiers: [...]}; accuracies as fractions, seconds of training."""
    import json
    doc = {**meta, "counts": counts if counts is not None else state_counts(entries), "entries": records(entries),
           "tiers": tier_records(best or [])}
    return json.dumps(doc, indent=2, sort_keys=False)


MD_COLUMNS = (*COLUMNS, "arch")


def _md_table(header: Iterable[str], body: list[list[str]]) -> str:
    header = list(header)
    esc = lambda s: str(s).replace("|", "\\|")
    align = ["---" if h == "arch" else "---:" for h in header]  # text left, numbers right
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def format_markdown(entries: list[Entry], best: list[tuple[int, Entry | None]] | None = None) -> str:
    body = [[*r, arch_summary(e.spec)] for r, e in zip(rows(entries), entries)]
    out = _md_table(MD_COLUMNS, body) + "\n\n\\* on the accuracy/params Pareto front"
    if best:
        out += "\n\n**Best per budget tier**\n\n" + _md_table(TIER_COLUMNS, tier_rows(best))
    return out


TIER_COLUMNS = ("params <=", "trial", "val acc %", "test acc %", "params", "MACs", "RAM bytes")


def tier_rows(best: list[tuple[int, Entry | None]]) -> list[list[str]]:
    return [[f"{t:,}", str(e.trial), pct(e.sel_acc), pct(e.test_mean), f"{e.params:,}", count_cell(e.macs),
             count_cell(e.ram)] if e else [f"{t:,}", "-", "-", "-", "-", "-", "-"] for t, e in best]


def _plain_table(header: Iterable[str], body: list[list[str]]) -> str:
    header = list(header)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(header)]
    # numbers right-aligned; the free-text arch column left-aligned
    line = lambda cells: "  ".join(s.ljust(w) if h == "arch" else s.rjust(w)
                                   for s, w, h in zip(cells, widths, header)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def format_tiers(best: list[tuple[int, Entry | None]]) -> str:
    return _plain_table(TIER_COLUMNS, tier_rows(best))
