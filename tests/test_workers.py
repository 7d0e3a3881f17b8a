"""budgetnas search --workers N: N processes on one study on this host."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from budgetnas import cli
from budgetnas.search import open_storage, trained_count

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--train-limit", "1000", "--val-size", "500", "--budget", "25000", "--device", "cpu", "--no-progress"]


def _load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def test_two_workers_share_one_study(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["search", "--workers", "2", "--trials", "4", "--study", "w2", "--data-dir", str(mnist_dir), *TINY])
    out = capsys.readouterr().out
    assert rc == 0, out
    journal = tmp_path / "studies" / "w2.journal"  # chosen automatically: safe for several processes
    assert journal.is_file() and not (tmp_path / "studies" / "w2.db").exists()
    assert "2 worker processes x " in out
    study = _load(f"journal:{journal}", "w2")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert not [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE and
                t.state != optuna.trial.TrialState.PRUNED], [t.state for t in study.trials]
    # the workers stop together at the target (one more only if both start one in the same instant)
    assert 4 <= trained_count(study) <= 5
    for t in study.trials:
        if not t.user_attrs.get("rejected"):
            assert t.user_attrs["params"] <= 25_000
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert Path(t.user_attrs["weights"]).is_file()
            assert 1 <= t.user_attrs["threads"] <= max(1, (os.cpu_count() or 1) // 2)  # cores / workers at most
            assert f"trial {t.number:>4} complete" in out
    assert "rank" in out  # the leaderboard at the end


def test_sqlite_is_refused_for_several_workers(tmp_path, capsys):
    db = tmp_path / "s.db"
    rc = cli.main(["search", "--workers", "2", "--storage", f"sqlite:///{db}", *TINY])
    assert rc == cli.EXIT_BAD_INPUT
    assert "not safe for several processes" in capsys.readouterr().err
    assert not db.exists()


def test_bad_data_stops_the_started_workers_before_any_storage(mnist_dir, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "data"
    bad.mkdir()
    for f in mnist_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes()[:1000] if f.name.startswith("train-images") else f.read_bytes())
    monkeypatch.chdir(tmp_path)
    before = set(_children(os.getpid()))
    rc = cli.main(["search", "--workers", "2", "--trials", "2", "--study", "bad", "--data-dir", str(bad), *TINY])
    assert rc == cli.EXIT_BAD_INPUT
    assert "train-images-idx3-ubyte" in capsys.readouterr().err
    assert not (tmp_path / "studies").exists()
    time.sleep(0.5)  # the workers were started before the data was checked: none is left
    assert not [p for p in set(_children(os.getpid())) - before if "spawn_main" in _cmdline(p)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:  # gone
        return ""


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the worker processes")
def test_ctrl_c_stops_the_workers_and_fails_their_trials(mnist_dir, tmp_path):
    url = f"journal:{tmp_path / 'c.journal'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUDGETNAS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "budgetnas", "search", "--workers", "2", "--trials", "200",
                             "--study", "c", "--storage", url, "--data-dir", str(mnist_dir),
                             "--train-limit", "3000", *TINY[2:]],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until both workers are training
            time.sleep(0.5)
            if Path(url[len("journal:"):]).exists():
                running = _load(url, "c").get_trials(states=(optuna.trial.TrialState.RUNNING,))
                if len(running) >= 2:
                    break
        workers = _children(proc.pid)
        assert workers, "no worker processes"
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    time.sleep(1)
    assert not [p for p in workers if "multiprocessing" in _cmdline(p)]
    study = _load(url, "c")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # each running trial is marked failed
    assert study.get_trials(states=(optuna.trial.TrialState.FAIL,))
