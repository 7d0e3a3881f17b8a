"""Many machines: a real PostgreSQL server (started by scripts/postgres.sh, installed by
scripts/setup-postgres.sh), a study created once, and separate `budgetnas worker`
processes joining it with nothing but its URL and name. Skips only outside CI when no
PostgreSQL server can be started; in CI it must run."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from procs import (ROOT, assert_retried, budgetnas, cli_env, held, kill_started, load_study, release, with_hold,
                   run, start)

from budgetnas.study.schedule import trained_count

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TRIAL_LINE = re.compile(r"^trial\s+(\d+) (complete|pruned|rejected)\b", re.M)


@pytest.fixture(autouse=True)
def _no_process_left():
    yield
    kill_started()  # a test that failed half-way leaves no process waiting on a held trial


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is needed in CI: {why}")
    pytest.skip(f"no PostgreSQL server: {why} (run scripts/setup-postgres.sh)")


@pytest.fixture(scope="module")
def pg_url():
    script = ROOT / "scripts" / "postgres.sh"
    got = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=180)
    if got.returncode != 0:
        _unavailable(got.stderr.strip()[-500:])
    info = dict(line.split("=", 1) for line in got.stdout.split())
    yield info["url"]
    subprocess.run(["bash", str(script), "stop", info["dir"]], capture_output=True, timeout=120)


def password(url: str) -> str:
    return url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]


def create(url: str, study: str, trials: int, cwd):
    made = run(budgetnas("search", "--create-only", "--storage", url, "--study", study, "--budget", "3000",
                         "--trials", trials, "--train-limit", "1000", "--val-size", "500"), cwd=cwd)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"budgetnas worker --storage {url.replace(password(url), '***')} --study {study}" in made.stdout
    assert password(url) not in made.stdout + made.stderr
    return made


def worker(url: str, study: str, tmp_path, mnist_dir, name: str, hold: Path | None = None, **env):
    cmd = budgetnas("worker", "--storage", url, "--study", study, "--data-dir", mnist_dir, "--threads", "1",
                    "--artifacts", tmp_path / "weights")
    return start(with_hold(cmd, hold) if hold else cmd, cwd=tmp_path, env=cli_env(**env), out=tmp_path / name)


def test_three_workers_share_one_study(pg_url, tmp_path, mnist_dir):
    target, n_workers = 6, 3
    create(pg_url, "pg3", target, tmp_path)
    procs = [worker(pg_url, "pg3", tmp_path, mnist_dir, f"w{i}") for i in range(n_workers)]
    codes = [p.wait(600) for p in procs]
    outs = [(tmp_path / f"w{i}.out").read_text() + (tmp_path / f"w{i}.err").read_text() for i in range(n_workers)]
    assert codes == [0] * n_workers, "\n---\n".join(outs)

    study = load_study(pg_url, "pg3")
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "trial numbers are unique and none is missing"
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.state for t in trials]
    # each worker stops once the study holds the target; the others finish what they run
    assert target <= trained_count(study) <= target + n_workers - 1

    reported = [{int(n) for n, _ in TRIAL_LINE.findall(out)} for out in outs]
    assert all(reported), "every worker ran trials"
    assert sum(map(len, reported)) == len(trials) and set().union(*reported) == set(numbers), \
        "each trial was run by exactly one worker: none lost, none run twice"
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == n_workers
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params), "workers have samplers of their own: no candidate proposed twice"

    board = run(budgetnas("leaderboard", "--storage", pg_url, "--study", "pg3", "--all", "--top", "1000",
                          "--format", "json"), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    entries = json.loads(board.stdout)["entries"]
    assert sorted(e["trial"] for e in entries) == sorted(numbers), "the leaderboard lists every trial once"
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    ranked = [e["trial"] for e in entries if e["state"] == "complete"]
    assert ranked == [t.number for t in sorted(complete, key=lambda t: (-t.value, t.user_attrs["params"], t.number))]
    for t in complete:  # every completed trial's weights, loadable with the safe unpickler
        assert torch.load(t.user_attrs["weights"], weights_only=True)
    assert password(pg_url) not in "".join(outs) + board.stdout + board.stderr


def test_a_killed_worker_s_trial_is_retried_by_another_worker(pg_url, tmp_path, mnist_dir):
    """Both workers hold their first trained trial mid-training (hold.TrialHold) while
    the victim is killed, so the survivor is certain to be running, short of the target,
    when the victim's trial goes stale; it then retries it."""
    create(pg_url, "pgkill", 5, tmp_path)
    beat = {"BUDGETNAS_HEARTBEAT": "1"}  # stale 3 s after the last heartbeat
    victim = worker(pg_url, "pgkill", tmp_path, mnist_dir, "victim", tmp_path / "hold-v", **beat)
    number, pid = held(tmp_path / "hold-v", 300, victim)
    assert pid == victim.pid
    survivor = worker(pg_url, "pgkill", tmp_path, mnist_dir, "survivor", tmp_path / "hold-s", **beat)
    held(tmp_path / "hold-s", 300, survivor)
    killed = load_study(pg_url, "pgkill").trials[number]
    assert killed.state.name == "RUNNING" and len(killed.intermediate_values) == 1
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    release(tmp_path / "hold-s")  # every trial of the survivor's, the retry included, goes on
    assert survivor.wait(600) == 0, (tmp_path / "survivor.out").read_text() + (tmp_path / "survivor.err").read_text()

    study = load_study(pg_url, "pgkill")
    retry = assert_retried(study, killed)
    assert retry.user_attrs["worker"].endswith(f":{survivor.pid}"), "the surviving worker ran the retry"
    assert trained_count(study) >= 5
