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
from budgetnas.search import trained_count
from budgetnas.storage import open_storage
from procs import wait_for

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--train-limit", "1000", "--val-size", "500", "--budget", "25000", "--device", "cpu", "--no-progress"]


def _load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.parametrize("start", ["", "spawn"])  # forked where safe (default), or spawned
def test_two_workers_share_one_study(mnist_dir, tmp_path, monkeypatch, capsys, start):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUDGETNAS_WORKER_START", start)
    share = max(1, (os.cpu_count() or 1) // 2)  # threads per worker: cores / workers
    rc = cli.main(["search", "--workers", "2", "--trials", "4", "--study", "w2", "--data-dir", str(mnist_dir), *TINY])
    out = capsys.readouterr().out
    assert rc == 0, out
    journal = tmp_path / "studies" / "w2.journal"  # chosen automatically: safe for several processes
    assert journal.is_file() and not (tmp_path / "studies" / "w2.db").exists()
    assert f"2 worker processes x {share} threads ({'spawned' if start else 'forked with the data'})" in out
    study = _load(f"journal:{journal}", "w2")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert not [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE and
                t.state != optuna.trial.TrialState.PRUNED], [t.state for t in study.trials]
    # the workers stop together at the target (one more only if both start one in the same instant)
    assert 4 <= trained_count(study) <= 5
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in study.trials:
        if not t.user_attrs.get("rejected"):
            assert t.user_attrs["params"] <= 25_000
    for t in trained:
        assert Path(t.user_attrs["weights"]).is_file()
        assert f"trial {t.number:>4} complete" in out
        assert 1 <= t.user_attrs["threads"] <= 2 * share
        if t.user_attrs["threads"] > share:  # the cores never hold more threads than they have:
            others = [u.datetime_complete for u in trained if u.user_attrs["worker"] != t.user_attrs["worker"]]
            assert all(t.datetime_complete >= end for end in others), "a worker took threads of one still running"
    assert "rank" in out  # the leaderboard at the end


def test_the_last_worker_left_takes_the_threads_of_those_that_finished():
    import multiprocessing

    import torch

    from budgetnas.runtime import Cores
    before = torch.get_num_threads()
    active = multiprocessing.get_context("fork").Value("i", 2)
    cores = Cores(active, threads=1, workers=2, cpus={0, 1, 2, 3}, pinned=False)
    try:
        torch.set_num_threads(1)
        cores.update()
        assert torch.get_num_threads() == 1, "both workers run: one thread each"
        active.value = 1
        cores.update()
        assert torch.get_num_threads() == 2, "alone: the 2 threads the workers had"
        active.value = 0
        cores.update()
        assert torch.get_num_threads() == 2, "never more than the workers were given"
        small = Cores(multiprocessing.get_context("fork").Value("i", 1), threads=2, workers=4, cpus={0, 1, 2},
                      pinned=False)
        small.update()
        assert torch.get_num_threads() == 3, "never more than the CPUs this process may use"
    finally:
        torch.set_num_threads(before)


def test_workers_forked_after_this_process_used_openmp_threads_do_not_hang(mnist_dir, tmp_path):
    """A child forked while torch's OpenMP thread team exists hangs at its first parallel
    op; run_parallel ends the team first (end_openmp_threads). Each worker here runs 2
    threads, so it needs a team of its own."""
    code = ("import sys, torch; torch.set_num_threads(2); x = torch.randn(1500, 1500); x @ x; "
            "from budgetnas.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUDGETNAS_OFFLINE": "1"}
    got = subprocess.run([sys.executable, "-c", code, "search", "--workers", "2", "--threads", "2", "--trials", "2",
                          "--study", "f", "--data-dir", str(mnist_dir), *TINY],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stdout + got.stderr
    study = _load(f"journal:{tmp_path / 'studies' / 'f.journal'}", "f")
    assert trained_count(study) >= 2
    assert {t.user_attrs["threads"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE} == {2}


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
    time.sleep(0.5)  # no worker is left (on CPU none was started: the data is checked first)
    assert not [p for p in set(_children(os.getpid())) - before if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone
        return False


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
        # wait_for: the journal file exists a moment before the study does
        wait_for(lambda: len(_load(url, "c").get_trials(states=(optuna.trial.TrialState.RUNNING,))) >= 2, 120, proc,
                 "both workers training", poll=0.5)
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
    assert not [p for p in workers if _alive(p)]
    study = _load(url, "c")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # each running trial is marked failed
    assert study.get_trials(states=(optuna.trial.TrialState.FAIL,))
