"""dashboard.py and `budgetnas dashboard`: a real optuna-dashboard server on a real
SQLite study, queried over HTTP; the Pareto/leaderboard plots the search publishes;
the per-trial notes; bad input."""
from __future__ import annotations

import json
import os

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna

from budgetnas.cli import build_parser, main
from conftest import copy_sqlite
from budgetnas.dashboard import LEADERBOARD_ID, PARETO_ID, serve

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.status == 200
        return json.loads(r.read())


def copy_study(real_study, tmp_path: Path) -> str:
    _, url = real_study
    copy_sqlite(url[len("sqlite:///"):], tmp_path / "s.db")
    return f"sqlite:///{tmp_path / 's.db'}"


def test_the_search_published_the_pareto_and_leaderboard_plots(real_study):
    name, url = real_study
    storage = optuna.storages.RDBStorage(url)
    # optuna-dashboard keeps custom plots (and notes) in the study's system attrs
    keys = storage.get_study_system_attrs(storage.get_study_id_from_name(name))
    assert any(PARETO_ID in k for k in keys) and any(LEADERBOARD_ID in k for k in keys)


def test_dashboard_serves_the_study_with_notes_and_plots(real_study, tmp_path):
    name = real_study[0]
    url = copy_study(real_study, tmp_path)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "budgetnas", "dashboard", "--study", name, "--storage", url,
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                summaries = get_json(f"{base}/api/studies")
                break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not answer in 90s"
                time.sleep(0.5)
        [summary] = [s for s in summaries["study_summaries"] if s["study_name"] == name]
        detail = get_json(f"{base}/api/studies/{summary['study_id']}?after=0")
        with urllib.request.urlopen(f"{base}/dashboard/studies/{summary['study_id']}", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert f"open {base}/dashboard/studies/{summary['study_id']}" in out

    stored = optuna.load_study(study_name=name, storage=url).get_trials()
    assert len(detail["trials"]) == len(stored) >= 3
    trained = [t for t in detail["trials"] if t["state"].lower() == "complete"]
    assert trained
    for t in detail["trials"]:  # every trial, trained, pruned or rejected, carries its note
        note = t["note"]["body"]
        assert "params** (" in note and "% of the 5,000 budget" in note and "| layer | output | params |" in note
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert set(graphs) >= {PARETO_ID, LEADERBOARD_ID}
    names = [trace.get("name", "") for trace in graphs[PARETO_ID]["data"]]
    assert any(n.startswith(f"completed ({len(trained)})") for n in names)
    assert any(n.startswith("Pareto front") for n in names)


def test_dashboard_binds_to_localhost_by_default(real_study):
    args = build_parser().parse_args(["dashboard"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    storage = optuna.storages.InMemoryStorage()
    server = serve(storage, "127.0.0.1", 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_busy_port_and_unknown_study_are_one_line(real_study, tmp_path, capsys):
    name = real_study[0]
    url = copy_study(real_study, tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--study", name, "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1
    assert main(["dashboard", "--study", "nope", "--storage", url]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["dashboard", "--study", name, "--storage", url, "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_note_of_a_rejected_trial_says_so():
    from budgetnas.presets import PRESETS
    from budgetnas.search import architecture_note
    from budgetnas.space import layer_table, param_count
    spec = PRESETS["B"].spec
    n = param_count(spec)
    fits, over = architecture_note(spec, n, 25000), architecture_note(spec, n, 10000)
    assert "rejected" not in fits and "over budget: rejected, never built" in over
    assert fits.count("\n|") == 2 + len(layer_table(spec))  # header, rule, one row per layer
