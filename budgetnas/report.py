"""One self-contained HTML report of a study, and the plotly figures it shares with the
live dashboard.

Everything is recomputed from the trials the storage holds (their raw user attrs and
intermediate values). The HTML embeds plotly.js once and loads nothing from the
network, so it opens offline. optuna and plotly are imported lazily (inside functions).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from . import leaderboard as lb
from .config import ConfigError

COLORS = {"complete": "#4c78a8", "front": "#e45756", "pruned": "#f58518", "rejected": "#7f7f7f", "budget": "#54a24b"}


# --- figures (also published to optuna-dashboard by dashboard.py) ---------------------------------
def _last_value(trial: Any) -> float | None:
    values = getattr(trial, "intermediate_values", None) or {}
    return values[max(values)] if values else None


def _hover(e: lb.Entry, acc: float | None, what: str) -> str:
    parts = [f"trial {e.trial} ({what})", f"{e.params:,} params" if e.params else "params ?"]
    if acc is not None:
        parts.append(f"val {100 * acc:.2f}%")
    if e.test_mean is not None:
        parts.append(f"test {100 * e.test_mean:.2f}%")
    if e.n_runs > 1:
        parts.append(f"mean of {lb.runs_cell(e)} runs (val std, points)")
    if e.macs:
        parts.append(f"{e.macs:,} MACs")
    if e.ram:
        parts.append(f"peak RAM {e.ram:,} bytes (int8)")
    reason = e.extra.get("rejected") or e.extra.get("pruned_reason")
    if reason:
        parts.append(str(reason))
    parts.append(html.escape(lb.arch_summary(e.spec)))
    return "<br>".join(parts)


COSTS = {"params": "trainable parameters", "macs": "MACs per image", "ram": "peak RAM of an int8 inference, bytes"}


def cost_front(entries: Iterable[lb.Entry], cost: str) -> set[int]:
    """Trials on the accuracy/``cost`` Pareto front (cost: params, macs or ram)."""
    pts = sorted((e for e in entries if e.sel_acc is not None and getattr(e, cost)),
                 key=lambda e: (getattr(e, cost), -e.sel_acc))
    front, best = set(), -1.0
    for e in pts:
        if e.sel_acc > best:
            front.add(e.trial)
            best = e.sel_acc
    return front


def pareto_figure(trials: Iterable[Any], budget: int | None = None, cost: str = "params"):
    """A cost (log axis: params, or with ``cost`` MACs or peak RAM) vs validation
    accuracy, ``budget`` being that cost's limit. Completed trials, the Pareto front (a
    step line), pruned trials at their last reported accuracy, and, in a strip below,
    trials that never reported an accuracy (rejected over budget, diverged)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    trials = list(trials)
    last = {t.number: _last_value(t) for t in trials}
    entries = lb.build(trials, include_all=True)
    done = [e for e in entries if e.state == "complete"]
    x_of = lambda e: getattr(e, cost)
    on_front = {e.trial for e in done if e.pareto} if cost == "params" else cost_front(done, cost)
    done = [e for e in done if x_of(e)]
    front = sorted((e for e in done if e.trial in on_front), key=x_of)
    pruned = [e for e in entries if e.state == "pruned" and x_of(e) and last.get(e.trial) is not None]
    untrained = [e for e in entries if x_of(e) and e.state in ("rejected", "pruned", "failed")
                 and (e.state == "rejected" or last.get(e.trial) is None)]

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.86, 0.14], vertical_spacing=0.03)

    def scatter(es, y, name, color, symbol, size=8, row=1, **kw):
        fig.add_trace(go.Scatter(x=[x_of(e) for e in es], y=y, mode=kw.pop("mode", "markers"), name=name,
                                 marker=dict(color=color, symbol=symbol, size=size, line=dict(width=1, color=color)),
                                 hovertext=kw.pop("text"), hoverinfo="text", **kw), row=row, col=1)

    scatter(done, [100 * e.sel_acc for e in done], f"completed ({len(done)})", COLORS["complete"], "circle",
            text=[_hover(e, e.sel_acc, "complete") for e in done])
    scatter(front, [100 * e.sel_acc for e in front], f"Pareto front ({len(front)})", COLORS["front"], "diamond",
            size=11, mode="lines+markers", line=dict(shape="hv", color=COLORS["front"], width=2),
            text=[_hover(e, e.sel_acc, "Pareto front") for e in front])
    scatter(pruned, [100 * last[e.trial] for e in pruned], f"pruned, last reported val acc ({len(pruned)})",
            COLORS["pruned"], "circle-open", text=[_hover(e, last[e.trial], "pruned") for e in pruned])
    scatter(untrained, [0] * len(untrained), f"rejected / no accuracy ({len(untrained)})", COLORS["rejected"],
            "x-thin", size=10, row=2, text=[_hover(e, None, e.state) for e in untrained])
    if budget:
        fig.add_vline(x=budget, line=dict(color=COLORS["budget"], dash="dash", width=1.5), row="all", col=1)
        # annotations on a log axis take log10(x); shapes (the vline) take x itself
        fig.add_annotation(x=math.log10(budget), xref="x", y=1.0, yref="paper", xanchor="left", showarrow=False,
                           text=f" {'budget' if cost == 'params' else 'limit'} {budget:,}",
                           font=dict(color=COLORS["budget"]))
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_xaxes(type="log", title_text=f"{COSTS[cost]} (log scale)", row=2, col=1)
    fig.update_yaxes(title_text="val accuracy %", row=1, col=1)
    fig.update_yaxes(showticklabels=False, range=[-1, 1], title_text="untrained", row=2, col=1)
    fig.update_layout(title=f"Accuracy vs {'parameters' if cost == 'params' else COSTS[cost]} (Pareto front in red)", template="plotly_white",
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                      margin=dict(l=60, r=20, t=90, b=40), height=540)
    return fig


def leaderboard_figure(trials: Iterable[Any], top: int = 15):
    """The top completed trials as a plotly table (for the dashboard's study page)."""
    import plotly.graph_objects as go

    entries = lb.build(trials)[:top]
    header = ["rank", "trial", "val %", "test %", "runs", "params", "MACs", "RAM B", "score", "front", "arch"]
    cols = [list(range(1, len(entries) + 1)), [e.trial for e in entries], [lb.pct(e.sel_acc) for e in entries],
            [lb.pct(e.test_mean) for e in entries], [lb.runs_cell(e) for e in entries],
            [f"{e.params:,}" for e in entries], [lb.count_cell(e.macs) for e in entries],
            [lb.count_cell(e.ram) for e in entries], [f"{e.score:.2f}" for e in entries],
            ["*" if e.pareto else "" for e in entries], [lb.arch_summary(e.spec) for e in entries]]
    fig = go.Figure(go.Table(header=dict(values=header, align="left"), cells=dict(values=cols, align="left"),
                             columnwidth=[4, 4, 5, 5, 5, 6, 5, 5, 5, 4, 22]))
    fig.update_layout(title=f"Leaderboard (top {len(entries)} by val accuracy; * = Pareto front)",
                      margin=dict(l=10, r=10, t=50, b=10), height=120 + 24 * max(1, len(entries)))
    return fig


def history_figure(study):
    import optuna
    fig = optuna.visualization.plot_optimization_history(study, target_name="val acc")
    fig.update_layout(title="Optimisation history (completed trials; best so far)", template="plotly_white")
    return fig


def intermediate_figure(study):
    import optuna
    fig = optuna.visualization.plot_intermediate_values(study)
    fig.update_layout(title="Intermediate val accuracy per report (pruned trials stop early)",
                      template="plotly_white", xaxis_title="report (evaluation point)",
                      yaxis_title="val accuracy")
    return fig


def importances(study) -> tuple[dict[str, float] | None, str]:
    """(importances, '') or (None, why there are none)."""
    import optuna
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.params]
    if len(complete) < 3:
        return None, (f"Parameter importances need at least 3 completed trials with sampled parameters "
                      f"(this study has {len(complete)}).")
    try:
        imp = optuna.importance.get_param_importances(study)
    except Exception as e:  # evaluators raise various errors on degenerate studies
        return None, f"Parameter importances could not be computed: {str(e).splitlines()[0][:200]}"
    if not imp:
        return None, "No parameter varied across completed trials: no importances to show."
    return dict(imp), ""


def importance_figure(imp: dict[str, float]):
    import plotly.graph_objects as go
    names = list(imp)[::-1]  # most important on top
    fig = go.Figure(go.Bar(x=[imp[n] for n in names], y=names, orientation="h", marker_color=COLORS["complete"],
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title="Hyperparameter importances for val accuracy (optuna.importance, completed trials)",
                      template="plotly_white", xaxis_title="importance (sums to 1)",
                      height=max(300, 60 + 24 * len(names)), margin=dict(l=140, r=20, t=50, b=40))
    return fig


# --- HTML ------------------------------------------------------------------------------------------
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
    rows = [[*r, lb.arch_summary(e.spec)] for r, e in zip(lb.rows(done), done)]
    out = _table(list(lb.MD_COLUMNS), rows, left=[len(lb.MD_COLUMNS) - 1],
                 row_class=["front" if e.pareto else "" for e in done])
    out += (f"<p class=muted>Sorted by val accuracy. Highlighted rows (*) are on the accuracy/params Pareto front. "
            f"score = efficiency = val acc % &minus; {lb.PP_PER_DOUBLING} &times; log2(params / "
            f"{lb.REFERENCE_PARAMS}): each doubling of size must buy {lb.PP_PER_DOUBLING} accuracy points.</p>")
    if best:
        out += "<h3>Best per budget tier</h3>" + _table(list(lb.TIER_COLUMNS), lb.tier_rows(best))
    return out


def winner_html(winner: lb.Entry | None) -> str:
    from .space import ArchSpec, layer_table
    if winner is None or not winner.spec:
        return "<p class=note>No completed trial yet.</p>"
    spec = ArchSpec.from_dict(winner.spec)
    table = layer_table(spec)
    rows = [[r["name"], r["layer"], "x".join(map(str, r["shape"])), f"{r['params']:,}", f"{r['macs']:,}"] for r in table]
    rows.append(["total", "", "", f"{sum(r['params'] for r in table):,}", f"{sum(r['macs'] for r in table):,}"])
    head = (f"<p>Trial <b>{winner.trial}</b>{f' (preset {html.escape(winner.preset)})' if winner.preset else ''}: "
            f"val {lb.pct(winner.sel_acc)}%, test {lb.pct(winner.test_mean)}%"
            f"{f' (means of {winner.n_runs} runs, val std {100 * winner.val_std:.2f} points)' if winner.val_std is not None else ''}"
            f", {winner.params:,} params "
            f"({lb.pct(winner.budget_use)}% of the budget), {winner.macs or 0:,} MACs per image, "
            f"{f'peak RAM {winner.ram:,} bytes (int8), ' if winner.ram else ''}"
            f"trained in {winner.seconds or 0:.1f}s. Architecture: <code>{html.escape(lb.arch_summary(winner.spec))}"
            f"</code></p>")
    details = (f"<details><summary>spec and recipe (JSON)</summary><pre>"
               f"{html.escape(json.dumps({'spec': winner.spec, 'recipe': winner.recipe}, indent=2))}</pre></details>")
    return head + _table(["layer", "op", "output shape", "params", "MACs"], rows, left=[0, 1]) + details


def _settings_html(settings: dict, counts: dict[str, int], storage_label: str, study_name: str) -> str:
    keys = ("budget", "max_macs", "max_ram", "dataset", "epochs", "train_limit", "val_size", "split_seed", "seed",
            "sampler", "pruner", "eval_points", "fingerprint", "images", "shape", "test_from")
    items = [f"<b>{k}</b> {html.escape(str(settings[k]))}" for k in keys if settings.get(k) is not None]
    if settings.get("shape"):
        items[items.index(f"<b>shape</b> {html.escape(str(settings['shape']))}")] = \
            f"<b>input</b> {'x'.join(map(str, settings['shape']))}"
    if settings.get("classes"):
        items.append(f"<b>classes</b> {html.escape(', '.join(map(str, settings['classes'])))}")
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
    return (f"<p>Study <b>{html.escape(study_name)}</b> in <code>{html.escape(storage_label)}</code>; "
            f"{count_text}.</p><p class=muted>{' &middot; '.join(items)}</p>")


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
{_settings_html(settings, lb.state_counts(entries), storage_label, study.study_name)}
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
