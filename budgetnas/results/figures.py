"""The plotly figures of a study, shared by the HTML report and the live dashboard:
accuracy against a cost with the Pareto front, the leaderboard table, the optimisation
history, intermediate values and parameter importances. Recomputed from the trials the
storage holds; optuna and plotly are imported inside the functions."""
from __future__ import annotations

import html
import math
from typing import Any, Iterable

from . import formats as fmt
from . import leaderboard as lb

COLORS = {"complete": "#4c78a8", "front": "#e45756", "pruned": "#f58518", "rejected": "#7f7f7f", "budget": "#54a24b"}


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
        parts.append(f"mean of {fmt.runs_cell(e)} runs (val std, points)")
    if e.macs:
        parts.append(f"{e.macs:,} MACs")
    if e.ram:
        parts.append(f"peak RAM {e.ram:,} bytes (int8)")
    reason = e.extra.get("rejected") or e.extra.get("pruned_reason")
    if reason:
        parts.append(str(reason))
    parts.append(html.escape(fmt.arch_summary(e.spec)))
    return "<br>".join(parts)


COSTS = {"params": "trainable parameters", "macs": "MACs per image", "ram": "peak RAM of an int8 inference, bytes"}


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
    on_front = lb.pareto_front(done, cost)
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
    cols = [list(range(1, len(entries) + 1)), [e.trial for e in entries], [fmt.pct(e.sel_acc) for e in entries],
            [fmt.pct(e.test_mean) for e in entries], [fmt.runs_cell(e) for e in entries],
            [f"{e.params:,}" for e in entries], [fmt.count_cell(e.macs) for e in entries],
            [fmt.count_cell(e.ram) for e in entries], [f"{e.score:.2f}" for e in entries],
            ["*" if e.pareto else "" for e in entries], [fmt.arch_summary(e.spec) for e in entries]]
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
