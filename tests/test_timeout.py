"""--timeout is the wall time of the whole search (optimize_mod.optimize, Objective._too_late):
what starts and what does not, on real searches whose trials are held (hold.TrialHold)
for as long as the test needs; the expected-time estimate; --trials with --timeout."""
import threading
import time

import optuna
import pytest

from budgetnas.cli import main

from budgetnas.study import schedule


def run(args, mnist_dir, tmp_path, study="t", hold=None):
    from hold import TrialHold
    return main(["search", *args, "--train-limit", "1200", "--val-size", "500", "--data-dir", str(mnist_dir),
                 "--study", study, "--storage", f"sqlite:///{tmp_path}/s.db", "--artifacts", str(tmp_path / "w"),
                 "--no-progress", "--threads", "1"], after_report=TrialHold(hold) if hold else None)


def test_timeout_stops_starting_trials(mnist_dir, tmp_path, monkeypatch):
    """--timeout: once it has passed, no trial starts; the one running then finishes.
    The first trained trial is held (hold.TrialHold) until the timeout is surely over.
    The timeout counts from the start of the run, data loading included: 8 s leave time
    for that on a loaded machine."""
    from procs import held, release

    hold, timeout, late, done = tmp_path / "hold", 8.0, [], threading.Event()
    t0 = time.monotonic()

    def releaser() -> None:
        first, _ = held(hold, 300)
        time.sleep(max(0.0, t0 + timeout + 1 - time.monotonic()))  # past the timeout
        release(hold, first)
        while not done.wait(0.05):
            if {f.name for f in hold.glob("held-*")} - {f"held-{first}"}:  # a trial started after it
                late.append(True)
                release(hold)
                return

    thread = threading.Thread(target=releaser, daemon=True)
    thread.start()
    try:
        assert run(["--budget", "3000", "--trials", "3", "--timeout", str(timeout)], mnist_dir, tmp_path, hold=hold) == 0
    finally:
        done.set()
        release(hold)
        thread.join(30)
    assert not late, "a trial started after the timeout"
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    started = [t.state.name for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert started == ["COMPLETE"], "the held trial finished; no other started"


def test_timeout_does_not_start_a_candidate_that_would_end_after_it(mnist_dir, tmp_path, monkeypatch):
    """--timeout is the time the whole search takes: a candidate whose expected time
    (from the study's finished trials) does not fit in what is left is not started. It is
    stored as rejected for time, never built, and the search ends. The first trial is held
    (hold.TrialHold) for 6 s, so the next one is expected to take >= 1.15 x 6 s while at
    most 12 - 6 s are left, however fast this machine is."""
    from procs import held, release

    hold, timeout = tmp_path / "hold", 12.0

    def releaser() -> None:
        first, _ = held(hold, 300)
        time.sleep(6)
        release(hold)

    thread = threading.Thread(target=releaser, daemon=True)
    thread.start()
    t0 = time.monotonic()
    try:
        assert run(["--budget", "3000", "--trials", "3", "--timeout", str(timeout)], mnist_dir, tmp_path, hold=hold) == 0
    finally:
        release(hold)
        thread.join(30)
    assert time.monotonic() - t0 < timeout, "the search ended after its --timeout"
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    first, late = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert first.state.name == "COMPLETE" and first.user_attrs["seconds"] >= 6
    assert late.state.name == "PRUNED" and late.user_attrs["rejected_by"] == ["time"]
    assert late.user_attrs["rejected"].startswith("over the time budget (about ")
    assert not late.intermediate_values and not (tmp_path / "w" / f"trial_{late.number}.pt").exists()
    assert schedule.trained_count(study) == 1


def test_timeout_alone_bounds_the_search_by_time_not_by_the_default_count(tmp_path, monkeypatch):
    """search --timeout S without --trials runs until the time is up (no hidden cap of
    30 trials); --trials alone, or both, keep the count; --create-only stores 30."""
    from budgetnas.run import terminal
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(terminal, "run_in_terminal", lambda cfg, url, **kw: seen.append(cfg.trials) or 0)
    base = ["search", "--budget", "3000", "--storage", f"sqlite:///{tmp_path}/s.db"]
    for extra in (["--timeout", "60"], [], ["--timeout", "60", "--trials", "5"]):
        assert main([*base, *extra]) == 0
    assert seen == [None, 30, 5]


def test_expected_seconds_follow_the_nearest_runs_in_macs():
    from types import SimpleNamespace as T
    done = optuna.trial.TrialState.COMPLETE

    def t(macs, seconds, state=done):
        return T(state=state, user_attrs={"macs": macs, "seconds": seconds})

    trials = [t(100_000, 4.0), t(200_000, 6.0), t(400_000, 9.0), t(3_000_000, 60.0),
              t(5_000_000, 1.0, optuna.trial.TrialState.PRUNED)]
    assert schedule.expected_seconds([], 100_000) is None
    assert schedule.expected_seconds(trials[-1:], 100_000) is None, "a pruned run's time is no full run's"
    m = schedule.TIME_MARGIN
    # the median of the three nearest in MACs, each scaled up to this candidate's MACs, never down
    assert schedule.expected_seconds(trials, 150_000) == pytest.approx(m * 6.0)  # of 6, 6, 9
    assert schedule.expected_seconds(trials, 6_000_000) == pytest.approx(m * 135.0)  # of 120, 135, 180
    assert schedule.expected_seconds(trials, 50_000, neighbours=1) == pytest.approx(m * 4.0)


def test_a_rerun_that_does_not_fit_leaves_the_others_their_time(mnist_dir, tmp_path):
    """In the re-run phase a re-run expected to end after --timeout is not started, and
    the queued re-runs after it still are where they fit (the 8k/15-epoch race left 588 s
    unused when the first re-run that did not fit ended the phase). The study is a copy
    of a 3-trial search in which rank 1 is said to have taken 10,000 s."""
    url = f"sqlite:///{tmp_path}/s.db"
    assert run(["--budget", "3000", "--trials", "3", "--reruns", "0", "--space", "plain"], mnist_dir, tmp_path,
               study="src") == 0
    src = optuna.load_study(study_name="src", storage=url)
    best = schedule.top_candidates(src.trials, 1)[0]
    copy = optuna.create_study(study_name="t", storage=url, direction="maximize")
    for key, value in src.user_attrs.items():
        copy.set_user_attr(key, value)
    for t in src.trials:
        copy.add_trial(optuna.trial.create_trial(
            state=t.state, value=t.value, params=t.params, distributions=t.distributions,
            intermediate_values=t.intermediate_values, system_attrs=t.system_attrs,
            user_attrs={**t.user_attrs, **({"seconds": 10_000.0} if t.number == best.number else {})}))
    assert run(["--budget", "3000", "--trials", "3", "--timeout", "120", "--confirm-top", "2", "--reruns", "1"],
               mnist_dir, tmp_path) == 0
    reruns = [t for t in optuna.load_study(study_name="t", storage=url).trials if "rerun_of" in t.user_attrs]
    assert [t.user_attrs["rerun_of"] for t in reruns][0] == best.number
    assert reruns[0].user_attrs["rejected_by"] == ["time"] and "weights" not in reruns[0].user_attrs
    second = [t for t in reruns if t.user_attrs["rerun_of"] != best.number]
    assert len(second) == 1 and second[0].state.name == "COMPLETE", "the re-run that fits ran"
