"""Crash and resume with real processes on real storages: a search killed with SIGKILL
mid-trial has that trial found stale (heartbeat) and retried with the same parameters
and seed by the next run (twice at most), with every completed trial, its weights and
the leaderboard intact; on a journal storage (no heartbeats) the killed trial stays
running and the next run trains new ones; Ctrl-C (SIGINT) ends with status 130 and the
leaderboard, and the same command resumes to the --trials total with new candidates.

Every kill and interrupt lands on a trial held mid-training by search.TrialHold (the
process waits after a validation report until the test releases it), never on a
moment found by polling."""
from __future__ import annotations

import re
import signal
import time

import pytest
import torch
from procs import (assert_retried, budgetnas, cli_env, held, kill_started, load_study, release, run, with_hold,
                   sha256, start)

from budgetnas.results import leaderboard as lb
from budgetnas.arch.build import build_model
from budgetnas.study.schedule import trained_count
from budgetnas.arch import ArchSpec
from budgetnas.space import default_trials

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_process_left():
    yield
    kill_started()  # a test that failed half-way leaves no process waiting on a held trial


EPOCHS = 2  # a trial held at report 1 (of up to 8) always has more to train
HEARTBEAT = {"BUDGETNAS_HEARTBEAT": "1"}  # 1 s heartbeats, stale after a 3 s grace period
BUDGET = 3000
DEFAULTS = len(default_trials(BUDGET, epochs=int(EPOCHS)))  # queued by a new study before anything is sampled; all fit


def search_cmd(tmp_path, mnist_dir, study: str, *extra, storage: str | None = None,
               trials: int = DEFAULTS) -> list[str]:
    return budgetnas("search", "--budget", BUDGET, "--epochs", EPOCHS, "--trials", trials, "--train-limit", "1000",
                     "--val-size", "500", "--study", study, "--storage", storage or f"sqlite:///{tmp_path}/s.db",
                     "--data-dir", mnist_dir, "--pruner", "none", "--threads", "1", "--no-progress", *extra)


def hold_the_last_queued_trial(hold, url: str, study: str, proc) -> int:
    """Release held trials until one has completed and no queued trial waits (the next
    trial a run starts is the retry of a killed one, if any); returns the number of the
    trial held now, mid-training (one validation report stored, more to come)."""
    seen: set[int] = set()
    while True:
        number, _ = held(hold, 300, proc, seen)
        seen.add(number)
        states = [t.state.name for t in load_study(url, study).get_trials(deepcopy=False)]
        if "COMPLETE" in states and "WAITING" not in states:
            return number
        release(hold, number)


def completed(study) -> dict[int, dict]:
    return {e.trial: e.to_dict() for e in lb.build(study.get_trials(deepcopy=False)) if e.state == "complete"}


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def test_sigkill_mid_trial_is_retried_by_the_next_run_twice_at_most(tmp_path, mnist_dir):
    """The killed trial is retried by the next run with its parameters and seed; the
    retry killed too is retried once more; the run after a third kill marks it failed,
    says it is not queued again (RetryHeartbeatStaleTrialCallback(max_retry=2)) and trains
    a new candidate. Completed trials, their weights and the leaderboard never change."""
    url, cmd = f"sqlite:///{tmp_path}/s.db", search_cmd(tmp_path, mnist_dir, "kill")
    beat = {"BUDGETNAS_HEARTBEAT": "1", "BUDGETNAS_HEARTBEAT_GRACE": "2"}  # one process at a time: no live trial
    proc = start(with_hold(cmd, tmp_path / "hold0"), cwd=tmp_path, env=cli_env(**beat), out=tmp_path / "run0")
    number = hold_the_last_queued_trial(tmp_path / "hold0", url, "kill", proc)
    before = completed(load_study(url, "kill"))
    shas = {n: sha256(load_study(url, "kill").trials[n].user_attrs["weights"]) for n in before}
    kill(proc)

    study = load_study(url, "kill")
    running = [t for t in study.trials if t.state.name == "RUNNING"]
    assert [t.number for t in running] == [number], "the killed trial is left running in the storage"
    assert len(running[0].intermediate_values) == 1, "killed in the middle of training"
    assert completed(study) == before, "the kill changed the leaderboard"
    shown = run(budgetnas("leaderboard", "--storage", url, "--study", "kill", "--all"), cwd=tmp_path)
    assert shown.returncode == 0 and re.search(rf"running\s+{number}\s", shown.stdout), shown.stdout + shown.stderr

    killed = [number]
    for attempt in (1, 2):  # the next run retries it first (the only queued trial); kill that too
        time.sleep(2.5)  # past the grace period: the killed trial's heartbeat is stale
        hold = tmp_path / f"hold{attempt}"
        proc = start(with_hold(cmd, hold), cwd=tmp_path, env=cli_env(**beat), out=tmp_path / f"run{attempt}")
        killed.append(held(hold, 300, proc)[0])
        kill(proc)
        out = (tmp_path / f"run{attempt}.out").read_text()
        assert f"trial {killed[-2]} was left running by a process that died: marked failed and queued again" in out
    time.sleep(2.5)
    last = run(cmd, cwd=tmp_path, env=cli_env(**beat))
    assert last.returncode == 0, last.stdout + last.stderr
    assert (f"trial {killed[-1]} was left running by a process that died: marked failed and not queued again: "
            "its parameters were tried 3 times") in last.stdout, last.stdout
    assert "Traceback" not in last.stderr
    assert "Warning" not in last.stderr, f"a library warning reached the user's terminal:\n{last.stderr}"

    study = load_study(url, "kill")
    first, *retries = (study.trials[n] for n in killed)
    assert [t.state.name for t in (first, *retries)] == ["FAIL"] * 3
    assert [t.system_attrs.get("retry_history") for t in retries] == [killed[:1], killed[:2]], \
        "each run retried the trial the run before it left"
    assert all(t.system_attrs["failed_trial"] == first.number for t in retries)
    assert all(t.params == first.params and t.params and t.user_attrs["seed"] == first.user_attrs["seed"]
               for t in retries), "a retry runs the killed trial's parameters and seed"
    assert not [t for t in study.trials if killed[-1] in t.system_attrs.get("retry_history", [])], "no third retry"
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert trained_count(study) == DEFAULTS, "the target, with a new candidate instead of a third retry"

    after = completed(study)
    assert len(after) == len(before) + 1
    for n, entry in before.items():  # completed trials: same measurements, same weights
        assert {k: v for k, v in after[n].items() if k != "pareto"} == {k: v for k, v in entry.items() if k != "pareto"}
        path = study.trials[n].user_attrs["weights"]
        assert sha256(path) == shas[n]
        state = torch.load(path, weights_only=True)
        model = build_model(ArchSpec.from_dict(study.trials[n].user_attrs["spec"]))
        model.load_state_dict(state)  # loads with the safe unpickler, strict keys
    assert not list(tmp_path.glob("**/*.part")), "no half-written weights left behind"


def test_sigkill_on_a_journal_storage_leaves_the_trial_running_and_the_next_run_trains_new_ones(tmp_path, mnist_dir):
    """The journal storage has no heartbeats (README): a killed process's trial stays
    'running' for good; the next run neither counts nor retries it, and trains new
    candidates until the study holds --trials trained trials."""
    url, hold = f"journal:{tmp_path}/s.journal", tmp_path / "hold"
    cmd = search_cmd(tmp_path, mnist_dir, "journal", storage=url)
    proc = start(with_hold(cmd, hold), cwd=tmp_path, env=cli_env(), out=tmp_path / "run1")
    number = hold_the_last_queued_trial(hold, url, "journal", proc)
    before = completed(load_study(url, "journal"))
    kill(proc)

    again = run(cmd, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "left running" not in again.stdout and "Traceback" not in again.stderr
    study = load_study(url, "journal")
    assert study.trials[number].state.name == "RUNNING", "nothing marks it failed: no heartbeat says it died"
    assert not [t for t in study.trials if "failed_trial" in t.system_attrs], "and nothing retries it"
    after = completed(study)
    assert trained_count(study) == len(after) == len(before) + 1 == DEFAULTS, \
        "the next run trained a new candidate to reach the target"
    for n, e in before.items():  # the same measurements (a newer trial may take its place on the Pareto front)
        assert {k: v for k, v in after[n].items() if k != "pareto"} == {k: v for k, v in e.items() if k != "pareto"}
    assert max(after) > number
    shown = run(budgetnas("leaderboard", "--storage", url, "--study", "journal", "--all"), cwd=tmp_path)
    assert shown.returncode == 0 and re.search(rf"running\s+{number}\s", shown.stdout), shown.stdout + shown.stderr


def test_sigint_exits_130_and_the_same_command_resumes_with_new_candidates(tmp_path, mnist_dir):
    """The first run completes a sampled trial (not only the enqueued defaults) before
    Ctrl-C, so a resume that replayed the sampler (a fresh sampler with the same seed)
    would propose that trial's parameters again. The random sampler makes such a replay
    exact: its proposals depend on the seed alone."""
    url, hold = f"sqlite:///{tmp_path}/s.db", tmp_path / "hold"
    cmd = search_cmd(tmp_path, mnist_dir, "int", "--sampler", "random", trials=DEFAULTS + 2)
    proc = start(with_hold(cmd, hold), cwd=tmp_path, env=cli_env(**HEARTBEAT), out=tmp_path / "run1")
    seen: set[int] = set()
    while True:  # release held trials until a sampled (not enqueued) one has completed
        number, _ = held(hold, 300, proc, seen)
        seen.add(number)
        trials = load_study(url, "int").get_trials(deepcopy=False)
        if any(t.state.name == "COMPLETE" and not t.user_attrs.get("default_trial") for t in trials):
            break
        release(hold, number)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    out, err = (tmp_path / "run1.out").read_text(), (tmp_path / "run1.err").read_text()
    assert "interrupted: the running trial is marked failed; rerun the same command to resume" in out
    assert "val acc %" in out, "the leaderboard so far is printed"
    assert "Traceback" not in out + err, err

    study = load_study(url, "int")
    assert study.trials[number].state.name == "FAIL"
    first = completed(study)
    assert trained_count(study) == len(first) == DEFAULTS + 1, "the defaults and a sampled trial"
    first_params = [t.params for t in study.trials if t.params]
    so_far = len(study.trials)

    again = run(cmd, cwd=tmp_path, env=cli_env(**HEARTBEAT))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"({so_far} trials so far)" in again.stdout
    study = load_study(url, "int")
    assert trained_count(study) == DEFAULTS + 2
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    new = study.trials[so_far:]
    assert new and all(t.params not in first_params for t in new), \
        "a resumed run samples new candidates, not the first run's again"
    assert all(completed(study)[n]["val_acc"] == e["val_acc"] for n, e in first.items())


def test_a_worker_that_reaches_the_target_waits_to_retry_a_dead_worker_s_trial(tmp_path, mnist_dir):
    """The race CI once lost: the killed process's trial was not stale yet when the other
    worker reached the target, so that worker left it RUNNING for good. Now it waits for
    the trial to go stale and runs the retry. Held trials make the order certain: the
    first run is killed while the worker's trial waits at its last report, so the worker
    reaches the target within a second of the kill, long before the 10 s grace period."""
    url, cmd = f"sqlite:///{tmp_path}/s.db", search_cmd(tmp_path, mnist_dir, "race")
    beat = {"BUDGETNAS_HEARTBEAT": "1", "BUDGETNAS_HEARTBEAT_GRACE": "10"}
    hold1, hold2 = tmp_path / "hold1", tmp_path / "hold2"
    proc = start(with_hold(cmd, hold1), cwd=tmp_path, env=cli_env(**beat), out=tmp_path / "run1")
    number = hold_the_last_queued_trial(hold1, url, "race", proc)
    killed = load_study(url, "race").trials[number]

    joined = start(with_hold(budgetnas("worker", "--storage", url, "--study", "race", "--data-dir", mnist_dir,
                                       "--threads", "1", "--no-progress"), hold2, "last"), cwd=tmp_path,
                   env=cli_env(**beat), out=tmp_path / "worker")
    held(hold2, 300, joined)  # its trial has trained to its last report; the target is one trial away
    kill(proc)
    killed_at = time.monotonic()
    release(hold2)
    assert joined.wait(300) == 0, (tmp_path / "worker.out").read_text() + (tmp_path / "worker.err").read_text()
    out = (tmp_path / "worker.out").read_text()
    assert "the target is reached; waiting" in out, out
    assert time.monotonic() - killed_at > 8, "it waited for the grace period to pass"

    study = load_study(url, "race")
    assert_retried(study, killed)
    assert trained_count(study) == DEFAULTS + 1, "the target, and the retry"
