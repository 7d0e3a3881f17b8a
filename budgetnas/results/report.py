"""One self-contained HTML report of a study: settings, accuracy against a cost, the
leaderboard, the winner layer by layer, history, pruning and importances. The HTML
embeds plotly.js once and loads nothing from the network, so it opens offline."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from ..arch import ArchSpec, layer_table
from ..config import ConfigError, DataConfig, SearchConfig, flags
from . import formats as fmt
from . import leaderboard as lb
from .figures import (COSTS, history_figure, importance_figure, importances, intermediate_figure,
                      pareto_figure)


CSS = """
body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:14px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} tr.front td{background:#fdecea} .muted{color:#666} .note{color:#a15c00}
code,pre{font-family:'DejaVu Sans Mono',monospace;font-size:13px} pre{background:#f7f7f7;padding:.6em;overflow:auto}
"""


def _table(header: list[str], rows: list[list[Any]], left: Iterable[int] = (), row_class: list[str] | None = None) -> str:
    left = set(left)
    th = "".join(f'<th{" class=l" if i in left else ""}>{html.escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for j, r in enumerate(rows):
        cls = f' class="{row_class[j]}"' if row_class and row_class[j] else ""
        tds = "".join(f'<td{" class=l" if i in left else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def leaderboard_html(entries: list[lb.Entry], best: list[tuple[int, lb.Entry | None]]) -> str:
    done = [e for e in entries if e.state == "complete"]
    if not done:
        return "<p class=note>No completed trial yet.</p>"
    rows = [[*r, fmt.arch_summary(e.spec)] for r, e in zip(fmt.rows(done), done)]
    out = _table(list(fmt.MD_COLUMNS), rows, left=[len(fmt.MD_COLUMNS) - 1],
                 row_class=["front" if e.pareto else "" for e in done])
    out += (f"<p class=muted>Sorted by val accuracy. Highlighted rows (*) are on the accuracy/params Pareto front. "
            f"score = efficiency = val acc % &minus; {lb.PP_PER_DOUBLING} &times; log2(params / "
            f"{lb.REFERENCE_PARAMS}): each doubling of size must buy {lb.PP_PER_DOUBLING} accuracy points.</p>")
    if best:
        out += "<h3>Best per budget tier</h3>" + _table(list(fmt.TIER_COLUMNS), fmt.tier_rows(best))
    return out


def winner_html(winner: lb.Entry | None) -> str:
    if winner is None or not winner.spec:
        return "<p class=note>No completed trial yet.</p>"
    spec = ArchSpec.from_dict(winner.spec)
    table = layer_table(spec)
    rows = [[r["name"], r["layer"], "x".join(map(str, r["shape"])), f"{r['params']:,}", f"{r['macs']:,}"] for r in table]
    rows.append(["total", "", "", f"{sum(r['params'] for r in table):,}", f"{sum(r['macs'] for r in table):,}"])
    head = (f"<p>Trial <b>{winner.trial}</b>{f' (preset {html.escape(winner.preset)})' if winner.preset else ''}: "
            f"val {fmt.pct(winner.sel_acc)}%, test {fmt.pct(winner.test_mean)}%"
            f"{f' (means of {winner.n_runs} runs, val std {100 * winner.val_std:.2f} points)' if winner.val_std is not None else ''}"
            f", {winner.params:,} params "
            f"({fmt.pct(winner.budget_use)}% of the budget), {winner.macs or 0:,} MACs per image, "
            f"{f'peak RAM {winner.ram:,} bytes (int8), ' if winner.ram else ''}"
            f"trained in {winner.seconds or 0:.1f}s. Architecture: <code>{html.escape(fmt.arch_summary(winner.spec))}"
            f"</code></p>")
    details = (f"<details><summary>spec and recipe (JSON)</summary><pre>"
               f"{html.escape(json.dumps({'spec': winner.spec, 'recipe': winner.recipe}, indent=2))}</pre></details>")
    return head + _table(["layer", "op", "output shape", "params", "MACs"], rows, left=[0, 1]) + details


def _shown() -> tuple[str, ...]:
    """The settings the report shows: the fields whose Flag says so (config/settings.py),
    the data's in the place of SearchConfig.data, then the data's identity."""
    data = [f.name for f, fl in flags(DataConfig) if fl.report]
    names = [f.name for f in dataclasses.fields(SearchConfig)
             if f.name == "data" or ("flag" in f.metadata and f.metadata["flag"].report)]
    return ("space_label", *(n for name in names for n in (data if name == "data" else [name])),
            "fingerprint", "images", "shape", "test_from")


SHOWN = _shown()


def _settings_html(settings: dict, counts: dict[str, int], storage_label: str, study_name: str) -> str:
    keys = SHOWN
    items = [f"<b>{'space' if k == 'space_label' else k}</b> {html.escape(str(settings[k]))}" for k in keys
             if settings.get(k) is not None]
    if settings.get("shape"):
        items[items.index(f"<b>shape</b> {html.escape(str(settings['shape']))}")] = \
            f"<b>input</b> {'x'.join(map(str, settings['shape']))}"
    if settings.get("classes"):
        items.append(f"<b>classes</b> {html.escape(', '.join(map(str, settings['classes'])))}")
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
    space = ""
    if settings.get("space"):
        from ..space import Space, space_lines
        lines = space_lines(Space.from_dict(settings["space"]))
        space = (f"<details><summary>search space {html.escape(str(settings.get('space_label', 'plain')))}</summary>"
                 f"<pre>{html.escape(chr(10).join(lines))}</pre></details>")
    return (f"<p>Study <b>{html.escape(study_name)}</b> in <code>{html.escape(storage_label)}</code>; "
            f"{count_text}.</p><p class=muted>{' &middot; '.join(items)}</p>{space}")


def render(study, storage_label: str = "", cost: str = "params") -> str:
    """The report as one HTML string (plotly.js embedded once, no network needed)."""
    import plotly.io as pio

    trials = study.get_trials(deepcopy=False)
    entries = lb.build(trials, include_all=True)
    done = [e for e in entries if e.state == "complete"]
    settings = study.user_attrs.get("settings") or {}
    budget = settings.get("budget") or max((e.budget for e in entries if e.budget), default=None)
    best = lb.best_per_tier(done, lb.default_tiers(budget)) if budget else []
    with warnings.catch_warnings():  # optuna's experimental / empty-study warnings are not the reader's business
        warnings.simplefilter("ignore")
        limit = {"params": budget, "macs": settings.get("max_macs"), "ram": settings.get("max_ram")}[cost]
        figures = [("pareto", pareto_figure(trials, limit, cost))]
        figures += [("history", history_figure(study)), ("intermediate", intermediate_figure(study))]
        imp, why = importances(study)
        if imp:
            figures.append(("importance", importance_figure(imp)))
    config = {"displaylogo": False, "responsive": True}
    divs = {name: pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"plot-{name}", config=config)
            for i, (name, fig) in enumerate(figures)}
    imp_html = divs.get("importance") or f"<p class=note>{html.escape(why)}</p>"
    title = f"budgetnas report: {study.study_name}"
    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class=muted>Generated {generated} from the study's storage.</p>
{_settings_html(settings, fmt.state_counts(entries), storage_label, study.study_name)}
<h2>Accuracy vs {'parameters' if cost == 'params' else html.escape(COSTS[cost])}</h2>
{divs["pareto"]}
<h2>Leaderboard</h2>
{leaderboard_html(entries, best)}
<h2>Winner: layer by layer</h2>
{winner_html(done[0] if done else None)}
<h2>Optimisation history</h2>
{divs["history"]}
<h2>Intermediate values (pruning)</h2>
{divs["intermediate"]}
<h2>Parameter importances</h2>
{imp_html}
</body></html>
"""


def check_writable(out: Path) -> None:
    """Raise ConfigError unless ``out`` can be written (nothing is created here)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: pass a file name such as {out / 'report.html'}")
    if out.exists() and not out.is_file():  # a device or a pipe: the report's rename would replace it
        raise ConfigError(f"--out {out} is not a regular file: pass a file name such as report.html")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {out}: {parent} is not a folder; pass a writable --out")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"cannot write {out}: permission denied; pass a writable --out")


def write_report(study, out: Path, storage_label: str = "", cost: str = "params") -> Path:
    """Render and write atomically (a temporary file renamed into place)."""
    out = Path(out)
    check_writable(out)
    text = render(study, storage_label, cost)
    tmp = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ConfigError(f"cannot write {out} ({e.strerror or e}): pass a writable --out") from None
    return out
