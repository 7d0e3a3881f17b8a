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
import pytest

from budgetnas.cli import main
from budgetnas.cli.parser import build_parser
from conftest import copy_sqlite
from budgetnas.results.dashboard import LEADERBOARD_ID, PARETO_ID, serve

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
    from budgetnas.space.presets import PRESETS
    from budgetnas.study.objective import architecture_note
    from budgetnas.arch import layer_table, param_count
    spec = PRESETS["B"].spec
    n = param_count(spec)
    fits, over = architecture_note(spec, n, 25000), architecture_note(spec, n, 10000)
    assert "rejected" not in fits and "over budget: rejected, never built" in over
    assert fits.count("\n|") == 2 + len(layer_table(spec))  # header, rule, one row per layer


# --- `budgetnas dashboard --host`: the address given, and only it, answers -------------------
def held_port(host: str) -> socket.socket:
    """A socket bound to (host, a free port) that never listens: while the test holds it,
    a connection to that address and port is refused (no listener can exist there), and
    nothing else can bind it or a wildcard address on the port."""
    s = socket.socket()
    s.bind((host, 0))
    return s


def listening_addresses(port: int) -> list[str]:
    """The local addresses of every TCP socket listening on ``port`` (Linux /proc/net)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                if len(raw) == 4:
                    out.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    out.append(socket.inet_ntop(socket.AF_INET6, words))
    return out


def start_dashboard(name: str, url: str, cwd: Path, *flags: str) -> tuple[subprocess.Popen, "queue.Queue[str]"]:
    import queue
    import threading
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "budgetnas", "dashboard", "--study", name, "--storage", url,
                             *flags], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put("")  # end of output: the process exited

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def open_line(proc: subprocess.Popen, lines) -> str:
    """The 'open http://...' line, printed once the server is bound and listening."""
    while True:
        line = lines.get(timeout=120)
        if not line:
            raise AssertionError(f"dashboard exited ({proc.wait()}): {proc.stderr.read()[-2000:]}")
        if line.startswith("open "):
            return line


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()  # stdout is closed by its reader at the end of the output


def test_dashboard_command_binds_the_host_it_is_given_and_no_other(real_study, tmp_path):
    name = real_study[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    urls = copy_study(real_study, tmp_path / "a"), copy_study(real_study, tmp_path / "b")
    with held_port("127.0.0.1") as near, held_port("127.0.0.2") as far:
        p, q = near.getsockname()[1], far.getsockname()[1]
        # --host 127.0.0.2 on port p (held unanswered on 127.0.0.1); the default on port q (held on 127.0.0.2)
        given, given_out = start_dashboard(name, urls[0], tmp_path / "a", "--host", "127.0.0.2", "--port", str(p))
        default, default_out = start_dashboard(name, urls[1], tmp_path / "b", "--port", str(q))
        try:
            assert open_line(given, given_out).startswith(f"open http://127.0.0.2:{p}/dashboard/studies/")
            assert open_line(default, default_out).startswith(f"open http://127.0.0.1:{q}/dashboard/studies/")
            assert listening_addresses(p) == ["127.0.0.2"]  # not 0.0.0.0, not ::
            assert listening_addresses(q) == ["127.0.0.1"]
            for served, other, port in (("127.0.0.2", "127.0.0.1", p), ("127.0.0.1", "127.0.0.2", q)):
                names = [s["study_name"] for s in get_json(f"http://{served}:{port}/api/studies")["study_summaries"]]
                assert names == [name]
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((other, port), timeout=10).close()
        finally:
            stop(given)
            stop(default)
