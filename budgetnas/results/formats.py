"""The leaderboard as text: a plain table, CSV, JSON and markdown (the CLI's formats,
and the cells the report and the dashboard reuse)."""
from __future__ import annotations

from typing import Any, Iterable

from ..arch import summary as arch_summary
from .leaderboard import Entry


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


def state_counts(entries: Iterable[Entry]) -> dict[str, int]:
    """Trials per state (complete, rerun, pruned, rejected...), in order of first appearance."""
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
