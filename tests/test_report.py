"""report.py: figures and HTML on a hand-made optuna study (every trial state), the
`budgetnas report` command on a real study, and the HTML opened in a real headless
Chromium (it renders, every plot is drawn, no console message)."""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest

from budgetnas.results import report
from budgetnas.cli import main
from budgetnas.space.presets import PRESETS
from budgetnas.arch import layer_table, macs, param_count

optuna.logging.set_verbosity(optuna.logging.WARNING)
FILL = optuna.distributions.FloatDistribution(0.35, 1.0)


def made_study(n_complete: int = 4) -> optuna.Study:
    """An in-memory study with completed (preset specs), pruned and rejected trials."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("settings", {"budget": 25000, "dataset": "mnist", "epochs": 1})
    specs = [PRESETS[k].spec for k in ("A", "B", "C", "D")][:n_complete]
    for i, spec in enumerate(specs):
        acc = 0.95 + 0.01 * i
        study.add_trial(optuna.trial.create_trial(
            value=acc, params={"fill": 0.4 + 0.1 * i}, distributions={"fill": FILL},
            intermediate_values={1: acc - 0.1, 2: acc},
            user_attrs={"val_acc": acc, "test_acc": acc - 0.002, "params": param_count(spec), "macs": macs(spec),
                        "budget": 25000, "seconds": 2.0 + i, "spec": spec.to_dict()}))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, params={"fill": 0.9}, distributions={"fill": FILL},
        intermediate_values={1: 0.42}, user_attrs={"params": 15000, "budget": 25000, "pruned_at": 1}))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, params={"fill": 1.0}, distributions={"fill": FILL},
        user_attrs={"params": 40000, "budget": 25000, "rejected": "40000 params > budget 25000"}))
    return study


def test_pareto_figure_shows_complete_front_pruned_and_rejected_apart():
    study = made_study()
    fig = report.pareto_figure(study.get_trials(), budget=25000)
    traces = {t.name.split(" (")[0].split(",")[0]: t for t in fig.data}
    assert set(traces) == {"completed", "Pareto front", "pruned", "rejected / no accuracy"}
    assert len(traces["completed"].x) == 4
    assert list(traces["pruned"].x) == [15000] and list(traces["pruned"].y) == pytest.approx([42.0])
    assert list(traces["rejected / no accuracy"].x) == [40000] and traces["rejected / no accuracy"].yaxis == "y2"
    front_x = list(traces["Pareto front"].x)
    assert front_x == sorted(front_x) and len(front_x) >= 1
    assert fig.layout.xaxis.type == "log"


def test_render_has_every_section_and_embeds_plotly_once():
    study = made_study()
    text = report.render(study, "sqlite:///x.db")
    for heading in ("Accuracy vs parameters", "Leaderboard", "Best per budget tier", "Winner: layer by layer",
                    "Optimisation history", "Intermediate values (pruning)", "Parameter importances"):
        assert f">{heading}<" in text, heading
    assert text.count("plotly.js v") == 1  # the library banner: embedded exactly once
    assert text.count('class="plotly-graph-div"') == 4  # pareto, history, intermediate, importance
    assert external_resources(text) == []
    # the winner (best val acc) is preset D: one table row per layer plus the total
    winner = PRESETS["D"].spec
    assert f"{param_count(winner):,} params" in text
    rows = text.split(">Winner: layer by layer<")[1].split("</table>")[0].count("<tr>")
    assert rows == 1 + len(layer_table(winner)) + 1  # header, layers, total


def test_too_few_trials_for_importances_is_a_message_not_a_crash():
    study = made_study(n_complete=1)
    imp, why = report.importances(study)
    assert imp is None and "at least 3 completed trials" in why
    text = report.render(study)
    assert why in text and text.count('class="plotly-graph-div"') == 3


def test_render_of_a_study_without_trials():
    study = optuna.create_study(direction="maximize")
    text = report.render(study)
    assert "No completed trial yet" in text and text.count('class="plotly-graph-div"') == 3


def test_report_command_on_a_real_study(real_study, tmp_path, capsys):
    name, url = real_study
    out = tmp_path / "sub" / "r.html"
    assert main(["report", "--study", name, "--storage", url, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert f"budgetnas report: {name}" in text and text.count("plotly.js v") == 1
    assert not list(out.parent.glob("*.part"))


@pytest.mark.parametrize("case", ["under_a_file", "a_folder", "unknown_study"])
def test_report_bad_out_or_study_is_one_line(real_study, tmp_path, capsys, case):
    name, url = real_study
    (tmp_path / "file").write_text("x")
    out = {"under_a_file": tmp_path / "file" / "r.html", "a_folder": tmp_path, "unknown_study": tmp_path / "r.html"}[case]
    study = "nope" if case == "unknown_study" else name
    assert main(["report", "--study", study, "--storage", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


# --- a real browser --------------------------------------------------------------------------
class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.classes += (a.get("class") or "").split()
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("#", "data:", "javascript:")):
                self.external.append(f"{tag} {key}={a[key]}")


def external_resources(text: str) -> list[str]:
    scan = _Scan()
    scan.feed(text)
    return scan.external


def class_count(text: str, name: str) -> int:
    scan = _Scan()
    scan.feed(text)
    return scan.classes.count(name)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/setup-chromium.sh should have installed it")
        pytest.skip("chromium not installed: run scripts/setup-chromium.sh")
    return path


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the DOM after scripts ran, console lines) from a headless Chromium."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
           "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


@pytest.mark.browser
def test_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); missingFunction();</script></body></html>")
    _, console = open_in_chromium(page, tmp_path / "profile")
    assert any("boom" in line for line in console) and any("Uncaught ReferenceError" in line for line in console)


@pytest.mark.browser
@pytest.mark.parametrize("which", ["real", "made"])
def test_report_renders_in_headless_chromium(real_study, tmp_path, which):
    page = tmp_path / "report.html"
    if which == "real":
        name, url = real_study
        assert main(["report", "--study", name, "--storage", url, "--out", str(page)]) == 0
    else:
        report.write_report(made_study(), page)
    source = page.read_text()
    plots = class_count(source, "plotly-graph-div")
    assert plots >= 3 and external_resources(source) == []
    dom, console = open_in_chromium(page, tmp_path / "profile")
    assert console == []
    assert class_count(dom, "js-plotly-plot") == plots  # every plot was drawn by plotly.js
    assert class_count(dom, "main-svg") >= plots
    assert "Winner: layer by layer" in dom and "Best per budget tier" in dom


# --- a real study whose outcome is known: which trials the report puts on the front ----------
def plot_traces(text: str, div_id: str) -> dict[str, dict]:
    """The traces plotly.js is given for one plot of the report, by name (up to ' (')."""
    import json
    import re
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', text)
    assert m, div_id
    traces, _ = json.JSONDecoder().raw_decode(text, m.end())
    return {t["name"].split(" (")[0].split(",")[0]: t for t in traces}


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[tuple[str, list[str]]]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append((dict(attrs).get("class") or "", []))
        elif tag in ("td", "th"):
            self.tables[-1][-1][1].append("")

    def handle_data(self, data):
        if self.tables and self.tables[-1] and self.tables[-1][-1][1]:
            self.tables[-1][-1][1][-1] += data


def html_tables(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each <table> in text as rows of (the row's class, its cells' text); header row first."""
    scan = _Tables()
    scan.feed(text)
    return scan.tables


def trial_numbers(trace: dict) -> list[int]:
    return [int(h.split()[1]) for h in trace["hovertext"]]  # each point's hover text starts "trial N (...)"


def test_report_puts_exactly_the_known_front_on_the_plot_and_in_the_tables(tmp_path, capsys):
    import known_study as k
    url = f"sqlite:///{tmp_path / 'known.db'}"
    name = k.make(url)
    out = tmp_path / "r.html"
    assert main(["report", "--study", name, "--storage", url, "--out", str(out)]) == 0
    text = out.read_text()
    traces = plot_traces(text, "plot-pareto")
    front = traces["Pareto front"]
    assert trial_numbers(front) == sorted(k.FRONT, key=k.PARAMS.get)  # the step line runs left to right
    assert front["x"] == [k.PARAMS[t] for t in trial_numbers(front)] and front["name"] == f"Pareto front ({len(k.FRONT)})"
    assert sorted(trial_numbers(traces["completed"])) == sorted(k.PARAMS)
    assert trial_numbers(traces["pruned"]) == [5] and trial_numbers(traces["rejected / no accuracy"]) == [6]
    # the leaderboard table (rows on the front highlighted), then the tier table
    board, tiers = html_tables(text.split(">Leaderboard<")[1].split(">Winner: layer by layer<")[0])
    assert [int(cells[1]) for _, cells in board[1:]] == k.ORDER["accuracy"]
    assert sorted(int(cells[1]) for cls, cells in board[1:] if cls == "front") == k.FRONT
    assert {int(cells[0].replace(",", "")): int(cells[1]) for _, cells in tiers[1:]} == k.TIERS
    assert "<p>Trial <b>0</b>" in text  # the winner section: the most accurate trial
