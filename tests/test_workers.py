"""budgetnas search --workers N: N processes on one study on this host."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from budgetnas import cli
from budgetnas.run import runtime, workers as workers_mod
from budgetnas.study.schedule import trained_count
from budgetnas.study.storage import open_storage
from procs import held, with_hold

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--train-limit", "1000", "--val-size", "500", "--budget", "5000", "--device", "cpu", "--no-progress",
        "--space", "plain"]  # 3 first trials


def _load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.parametrize("start", ["", "spawn"])  # forked where safe (default), or spawned
def test_two_workers_share_one_study(mnist_dir, tmp_path, monkeypatch, capsys, start):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUDGETNAS_WORKER_START", start)
    # the default is cores / workers on idle cores, fewer when other processes keep them
    # busy (test_train_fast checks that rule): here the cores read as idle, whatever else runs
    monkeypatch.setattr(runtime, "idle_cores", lambda window=0.3: float(os.cpu_count() or 1))
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
            assert t.user_attrs["params"] <= 5_000
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

    from budgetnas.run.runtime import Cores
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


@pytest.mark.parametrize("case", ["bad data, spawned workers", "bad storage, forked workers"])
def test_a_failure_before_the_study_stops_the_started_workers(mnist_dir, tmp_path, monkeypatch, capsys, case):
    """The workers start before the parent has opened the storage (spawned ones even
    before it has checked the data); a failure then stops them, and none touched a storage."""
    data = mnist_dir
    if case.startswith("bad data"):
        monkeypatch.setenv("BUDGETNAS_WORKER_START", "spawn")
        data = tmp_path / "data"
        data.mkdir()
        for f in mnist_dir.iterdir():
            (data / f.name).write_bytes(f.read_bytes()[:1000] if f.name.startswith("train-images") else f.read_bytes())
        storage, expected = [], "train-images-idx3-ubyte"
    else:  # the parent of the journal file is a file: open_storage fails after the workers are forked
        (tmp_path / "file").write_text("")
        storage, expected = ["--storage", f"journal:{tmp_path / 'file' / 's.journal'}"], "cannot create the folder"
    stopped: list[list[int]] = []
    real_stop = workers_mod._stop_unstarted

    def spy(workers: dict) -> None:
        stopped.append([p.pid for p in workers["procs"]])
        real_stop(workers)

    monkeypatch.setattr(workers_mod, "_stop_unstarted", spy)
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["search", "--workers", "2", "--trials", "2", "--study", "bad", "--data-dir", str(data),
                   *storage, *TINY])
    assert rc == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert len(stopped) == 1 and len(stopped[0]) == 2 and all(stopped[0]), "two workers were started, then stopped"
    assert not [p for p in stopped[0] if _alive(p)], "and none is left"
    assert not (tmp_path / "studies").exists()


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
    url, hold = f"journal:{tmp_path / 'c.journal'}", tmp_path / "hold"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUDGETNAS_OFFLINE": "1"}
    proc = subprocess.Popen(with_hold([sys.executable, "-m", "budgetnas", "search", "--workers", "2", "--trials",
                                       "200", "--study", "c", "--storage", url, "--data-dir", str(mnist_dir), *TINY],
                                      hold),
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # each worker's first trained trial waits mid-training (hold.TrialHold) until the end
        first, pid = held(hold, 300, proc)
        second, other = held(hold, 300, proc, {first})
        workers = _children(proc.pid)
        assert {pid, other} <= set(workers) and pid != other, "both worker processes are training"
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    assert not [p for p in workers if _alive(p)], "the parent waits for its workers to exit"
    study = _load(url, "c")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert {t.number for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))} == {first, second}, \
        "each running trial is marked failed"
