"""The fuzzer's summary (scripts/fuzz.py): a table per input kind (cases, exit statuses,
failures by class) and the failures grouped by class and place, each with a case to
reproduce; compact enough to quote in an issue."""
from __future__ import annotations

import re
import shlex
from collections import Counter, defaultdict

CLASSES = ("traceback", "status", "hang", "changed", "multi-line")


def squeeze(text: str) -> str:
    """A character repeated 20 times or more as 'xxx...(300)'."""
    return re.sub(r"(.)\1{19,}", lambda m: f"{m.group(1) * 3}...({len(m.group(0))})", text)


def short(text: str, root: str, world: str) -> str:
    """Paths of the case's folder as $CASE, of the shared inputs as $WORLD; long runs squeezed."""
    return squeeze((text.replace(root, "$CASE") if root else text).replace(world, "$WORLD").replace("\n", "\\n"))


def short_argv(argv: list[str], root: str, world: str, limit: int = 240) -> str:
    text = "budgetnas " + " ".join(shlex.quote(short(a, root, world)[:80]) for a in argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def summary_text(results, seconds: float, seed: int, jobs: int, timeout: float, notes: list[str], keep,
                 world: str) -> str:
    kinds = list(dict.fromkeys(r.kind for r in results))
    extra = sorted({f.cls for r in results for f in r.failures} - set(CLASSES))
    head = ["kind", "cases", "s/case", "exit 0", "exit 2", "other", "failed", *CLASSES, *extra]
    rows = [head]
    for kind in [*kinds, "all"]:
        these = [r for r in results if kind in ("all", r.kind)]
        by_class = Counter(f.cls for r in these for f in r.failures)
        mean = sum(r.seconds for r in these) / max(len(these), 1)
        rows.append([kind, str(len(these)), f"{mean:.2f}", str(sum(r.status == 0 for r in these)),
                     str(sum(r.status == 2 for r in these)), str(sum(r.status not in (0, 2) for r in these)),
                     str(sum(bool(r.failures) for r in these)), *(str(by_class[c]) for c in (*CLASSES, *extra))])
    n = max(len(results), 1)
    cli = sum(r.cli for r in results)
    slow = max(results, key=lambda r: r.seconds, default=None)
    lines = [table(rows), "",
             f"{len(results)} cases (seed {seed}) in {seconds:.0f}s with {jobs} jobs: {seconds * jobs / n:.2f}s of a "
             f"job per case; {cli} ran as python -m budgetnas; hang = no exit within {timeout:g}s"
             + (f"; slowest {slow.kind}-{slow.index} {slow.seconds:.1f}s" if slow else "")]
    lines += [f"note: {note}" for note in notes]
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for r in results:
        for f in r.failures:
            groups[(f.cls, f.key)].append((r, f))
    if groups:
        lines += ["", f"{len(groups)} failure groups (class, what and where; cases; kinds; the shortest case):"]
    for i, ((cls, key), items) in enumerate(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])), 1):
        kinds_here = Counter(r.kind for r, _ in items)
        r, f = min(items, key=lambda item: (len(" ".join(item[0].argv)), item[0].index))
        lines.append(f"{i:>3}. [{cls}] {squeeze(key)}: {len(items)} case{'s' * (len(items) > 1)} "
                     f"({', '.join(f'{k} {c}' for k, c in kinds_here.most_common())})")
        lines.append(f"     {r.kind}-{r.index}: {short_argv(r.argv, r.root, world)}")
        if r.note:
            lines.append(f"     made: {short(r.note, r.root, world)[:200]}")
        for detail in f.detail.splitlines()[:3 if cls != "fuzzer" else 12]:
            lines.append(f"     | {short(detail, r.root, world)}"[:205])
    if groups:
        lines.append(f"\n$CASE: the case's folder; $WORLD: the shared inputs ({world})")
    if groups and keep:
        lines += [f"failing cases kept in {keep}/KIND-I/ (repro.sh, argv.json, stdout, stderr, result.txt)"]
    return "\n".join(lines)
