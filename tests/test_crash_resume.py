"""Crash and resume with real processes on a real SQLite storage: a search killed with
SIGKILL mid-trial has that trial found stale (heartbeat) and retried with the same
parameters and seed by the next run, with every completed trial, its weights and the
leaderboard intact; Ctrl-C (SIGINT) ends with status 130 and the leaderboard, and the
same command resumes to the --trials total."""
from __future__ import annotations

import re
import signal
import time

import pytest
import torch
from procs import assert_retried, budgetnas, cli_env, load_study, run, sha256, start, wait_for

from budgetnas import leaderboard as lb
from budgetnas.model import build_model
from budgetnas.search import trained_count
from budgetnas.space import ArchSpec

pytestmark = pytest.mark.slow

EPOCHS, EVAL_POINTS = 2, 4
HEARTBEAT = {"BUDGETNAS_HEARTBEAT": "1"}  # 1 s heartbeats, stale after a 3 s grace period


def search_cmd(tmp_path, mnist_dir, study: str) -> list[str]:
    return budgetnas("search", "--budget", "3000", "--epochs", EPOCHS, "--trials", "2", "--train-limit", "1500",
                     "--val-size", "500", "--study", study, "--storage", f"sqlite:///{tmp_path}/s.db",
                     "--data-dir", mnist_dir, "--pruner", "none", "--threads", "1", "--no-progress")


def mid_trial(url: str, study: str):
    """A running trial with at least one more validation report to come (so it cannot
    finish between this look and the signal), once a trial has completed."""
    trials = load_study(url, study).get_trials(deepcopy=False)
    if not any(t.state.name == "COMPLETE" for t in trials):
        return None
    running = [t for t in trials if t.state.name == "RUNNING" and 1 <= len(t.intermediate_values) < EPOCHS * EVAL_POINTS]
    return running[0] if running else None


def completed(study) -> dict[int, dict]:
    return {e.trial: e.to_dict() for e in lb.build(study.get_trials(deepcopy=False)) if e.state == "complete"}


def test_sigkill_mid_trial_is_retried_by_the_next_run(tmp_path, mnist_dir):
    url, cmd, env = f"sqlite:///{tmp_path}/s.db", search_cmd(tmp_path, mnist_dir, "kill"), cli_env(**HEARTBEAT)
    proc = start(cmd, cwd=tmp_path, env=env, out=tmp_path / "run1")
    seen = wait_for(lambda: mid_trial(url, "kill"), 300, proc, "a trial in the middle of training")
    before = completed(load_study(url, "kill"))
    shas = {n: sha256(load_study(url, "kill").trials[n].user_attrs["weights"]) for n in before}
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL

    study = load_study(url, "kill")
    running = [t for t in study.trials if t.state.name == "RUNNING"]
    assert [t.number for t in running] == [seen.number], "the killed trial is left running in the storage"
    killed = running[0]
    assert completed(study) == before, "the kill changed the leaderboard"
    shown = run(budgetnas("leaderboard", "--storage", url, "--study", "kill", "--all"), cwd=tmp_path)
    assert shown.returncode == 0 and re.search(rf"running\s+{killed.number}\s", shown.stdout), shown.stdout + shown.stderr

    time.sleep(3.5)  # past the grace period: the killed trial's heartbeat is stale
    again = run(cmd, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"trial {killed.number} was left running by a process that died" in again.stdout
    assert "Traceback" not in again.stderr
    assert "Warning" not in again.stderr, f"a library warning reached the user's terminal:\n{again.stderr}"

    study = load_study(url, "kill")
    assert_retried(study, killed)
    assert trained_count(study) == 2

    after = completed(study)
    for n, entry in before.items():  # completed trials: same measurements, same weights
        assert {k: v for k, v in after[n].items() if k != "pareto"} == {k: v for k, v in entry.items() if k != "pareto"}
        path = study.trials[n].user_attrs["weights"]
        assert sha256(path) == shas[n]
        state = torch.load(path, weights_only=True)
        model = build_model(ArchSpec.from_dict(study.trials[n].user_attrs["spec"]))
        model.load_state_dict(state)  # loads with the safe unpickler, strict keys
    assert not list(tmp_path.glob("**/*.part")), "no half-written weights left behind"


def test_sigint_exits_130_and_the_same_command_resumes(tmp_path, mnist_dir):
    url, cmd, env = f"sqlite:///{tmp_path}/s.db", search_cmd(tmp_path, mnist_dir, "int"), cli_env(**HEARTBEAT)
    proc = start(cmd, cwd=tmp_path, env=env, out=tmp_path / "run1")
    seen = wait_for(lambda: mid_trial(url, "int"), 300, proc, "a trial in the middle of training")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    out, err = (tmp_path / "run1.out").read_text(), (tmp_path / "run1.err").read_text()
    assert "interrupted: the running trial is marked failed; rerun the same command to resume" in out
    assert "val acc %" in out, "the leaderboard so far is printed"
    assert "Traceback" not in out + err, err

    study = load_study(url, "int")
    assert study.trials[seen.number].state.name == "FAIL"
    assert trained_count(study) == 1
    first, so_far = completed(study), len(study.trials)

    again = run(cmd, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"({so_far} trials so far)" in again.stdout
    study = load_study(url, "int")
    assert trained_count(study) == 2
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    new = [t for t in study.trials if t.number > seen.number and t.state.name in ("COMPLETE", "PRUNED")
           and not t.user_attrs.get("rejected")]
    assert new and all(t.params != study.trials[n].params for t in new for n in first), \
        "a resumed run samples new candidates, not the first run's again"
    assert all(completed(study)[n]["val_acc"] == e["val_acc"] for n, e in first.items())


def test_a_worker_that_reaches_the_target_waits_to_retry_a_dead_worker_s_trial(tmp_path, mnist_dir):
    """The race CI once lost: the killed process's trial was not stale yet when the other
    worker reached the target, so that worker left it RUNNING for good. Now it waits for
    the trial to go stale (a long grace period makes that the path taken) and runs the retry."""
    url, cmd = f"sqlite:///{tmp_path}/s.db", search_cmd(tmp_path, mnist_dir, "race")
    env = cli_env(BUDGETNAS_HEARTBEAT="1", BUDGETNAS_HEARTBEAT_GRACE="15")
    proc = start(cmd, cwd=tmp_path, env=env, out=tmp_path / "run1")
    killed = wait_for(lambda: mid_trial(url, "race"), 300, proc, "a trial in the middle of training")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    killed_at = time.monotonic()

    joined = run(budgetnas("worker", "--storage", url, "--study", "race", "--data-dir", mnist_dir, "--threads", "1",
                           "--no-progress"), cwd=tmp_path, env=env)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "the target is reached; waiting" in joined.stdout, joined.stdout
    assert time.monotonic() - killed_at > 12, "it waited for the grace period to pass"

    study = load_study(url, "race")
    assert_retried(study, killed)
    assert trained_count(study) == 3, "the target of 2, and the retry"
