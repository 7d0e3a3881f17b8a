"""Naming a winner that is not a coin flip: the best candidates are re-run with new seeds
and ranked by their mean (leaderboard.py, pure, on controlled trials; search.py on a real
search); and the multi-fidelity schedule of multi-epoch searches (pruner 'auto')."""
from __future__ import annotations

import json
from types import SimpleNamespace

import optuna
import pytest

from budgetnas.results import formats as fmt
from budgetnas.results import leaderboard as lb
from budgetnas.cli import main
from budgetnas.config import SearchConfig
from budgetnas.study.create import make_pruner
from budgetnas.study.schedule import RERUN_SHARE, TIME_MARGIN, missing_reruns, rerun_reserve, rerun_seconds, rerun_seed, trained_count

COMPLETE, FAIL, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                           optuna.trial.TrialState.WAITING)


def trial(number, val, params, state=COMPLETE, **attrs):
    return SimpleNamespace(number=number, state=state, params={},
                           user_attrs={"val_acc": val, "test_acc": None if val is None else val - 0.002,
                                       "params": params, "budget": 20000, "seconds": 10.0 + number, **attrs})


def rerun(number, of, val, **kw):
    return trial(number, val, 0, **{"rerun_of": of, **kw})


# trial 0: the best single run (a lucky seed: its re-runs fall back); trial 1: slightly
# lower once, steady over three runs; trial 2: never re-run
TRIALS = [trial(0, 0.990, 9000), trial(1, 0.986, 9000), trial(2, 0.985, 4000),
          rerun(3, 0, 0.975), rerun(4, 0, 0.977), rerun(5, 1, 0.987), rerun(6, 1, 0.985)]


def test_rank_1_is_the_best_mean_over_runs_not_the_luckiest_run():
    entries = lb.build(TRIALS)
    assert [e.trial for e in entries] == [1, 0, 2], "re-run candidates first, by mean val acc"
    best = entries[0]
    assert best.n_runs == 3 and best.val_mean == pytest.approx(0.986)
    assert best.val_std == pytest.approx(0.001) and best.test_mean == pytest.approx(0.984)
    assert entries[1].val_mean == pytest.approx((0.990 + 0.975 + 0.977) / 3)
    assert entries[2].n_runs == 1 and entries[2].val_std is None and entries[2].sel_acc == 0.985
    # the trial's own measurement stays as stored: scores are derived
    assert entries[1].val_acc == 0.990


def test_reruns_are_no_entries_of_their_own_and_show_as_such_with_all():
    everything = lb.build(TRIALS, include_all=True)
    assert [(e.trial, e.state) for e in everything[3:]] == [(n, "rerun") for n in (3, 4, 5, 6)]
    doc = json.loads(fmt.format_json(lb.build(TRIALS)))
    first = doc["entries"][0]
    assert (first["trial"], first["n_runs"], first["runs"]) == (1, 3, [[0.986, 0.984], [0.987, 0.985], [0.985, 0.983]])
    assert first["val_mean"] == pytest.approx(0.986) and first["rerun_of"] is None


def test_pareto_and_tiers_use_the_mean():
    entries = lb.build(TRIALS)
    # trial 0's mean (0.9807) is below trial 2's single 0.985 at more params: dominated
    assert {e.trial for e in entries if e.pareto} == {1, 2}
    assert [(t, e.trial) for t, e in lb.best_per_tier(entries, [5000, 10000])] == [(5000, 2), (10000, 1)]


def test_missing_reruns_count_queued_and_running_ones_but_redo_failed_ones():
    trials = [trial(0, 0.99, 9000), trial(1, 0.98, 9000), trial(2, 0.97, 9000),
              rerun(3, 0, None, state=WAITING), rerun(4, 0, None, state=FAIL), rerun(5, 1, 0.98)]
    todo = [(t.number, run) for t, run in missing_reruns(trials, 2, 2)]
    assert todo == [(0, 2), (1, 2)]
    # each re-run takes as long as its original, with the margin a start needs
    assert rerun_seconds(trials, 2, 2) == pytest.approx(TIME_MARGIN * (10.0 + 11.0))
    # a re-run not started for lack of time is still to do
    assert [(t.number, run) for t, run in missing_reruns([*trials[:3], rerun(3, 0, None, rejected="over the time "
                                                          "budget")], 1, 1)] == [(0, 1)]
    assert missing_reruns(trials, 3, 0) == [] and rerun_seconds(trials, 0, 2) == 0


def test_first_reruns_go_first_and_a_timeout_keeps_a_third_for_them_at_most():
    """Short of time, every candidate gets a second measurement before any gets a third;
    with --timeout the time kept for re-runs is capped (multi-epoch re-runs are long)."""
    trials = [trial(0, 0.99, 9000), trial(1, 0.98, 9000), trial(2, 0.97, 9000)]
    assert [(t.number, run) for t, run in missing_reruns(trials, 2, 2)] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    full = TIME_MARGIN * 2 * (10.0 + 11.0)
    assert rerun_reserve(trials, SearchConfig(budget=9000, timeout=1000), 2) == pytest.approx(full)
    assert rerun_reserve(trials, SearchConfig(budget=9000, timeout=90), 2) == pytest.approx(RERUN_SHARE * 90)
    assert rerun_reserve(trials, SearchConfig(budget=9000), 2) == 0, "no timeout: nothing to keep back"
    assert rerun_reserve(trials, SearchConfig(budget=9000, timeout=1000, reruns=0), 2) == 0


def test_the_margin_pruner_stops_a_trial_far_behind_the_best_early_and_behind_the_median_late():
    """Margins 5 and 3 pp at reports 1 and 2 of 4, against the best any finished trial had
    at that report; from report 3 the median rule; nothing before 5 trials completed."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("margin", 1, 4))

    def add(curve):
        study.add_trial(optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve, 1))))

    def pruned(curve) -> bool:
        trial = study.ask()
        for step, acc in enumerate(curve, 1):
            trial.report(acc, step)
        decision = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return decision

    for curve in ([0.80, 0.85, 0.88, 0.90], [0.70, 0.80, 0.86, 0.89], [0.75, 0.82, 0.87, 0.88],
                  [0.78, 0.84, 0.875, 0.885]):
        add(curve)
    assert not pruned([0.10])  # 4 completed: no decisions yet
    add([0.82, 0.86, 0.89, 0.91])  # the best at reports 1 and 2
    assert pruned([0.769]) and not pruned([0.771])  # 0.82 - 5 pp
    assert pruned([0.80, 0.829]) and not pruned([0.80, 0.831])  # 0.86 - 3 pp
    # report 3: the median of the others' (0.875 of 0.86, 0.87, 0.875, 0.88, 0.89 and the
    # pruned ones' reports 3), not the best minus a margin
    assert pruned([0.80, 0.85, 0.86]) and not pruned([0.80, 0.85, 0.885])
    # a pruned trial's reports count as well: one was the best at report 1 once
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.95}))
    assert pruned([0.89])


def test_pruner_auto_is_median_for_one_epoch_and_hyperband_across_epochs():
    from budgetnas.study.create import MarginPruner, SnapshotPruner
    assert isinstance(make_pruner("auto", 1, 4), SnapshotPruner)
    assert isinstance(make_pruner("auto", 1, 4).inner, optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("margin", 1, 4).inner, MarginPruner)
    hb = make_pruner("auto", 15, 4)
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert (hb._min_resource, hb._max_resource, hb._reduction_factor) == (4, 60, 3)  # rungs at 1, 3, 9 epochs


@pytest.mark.slow
def test_a_search_reruns_its_best_candidates_and_ranks_them_by_the_mean(tmp_path, mnist_dir, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    cmd = ["search", "--budget", "5000", "--trials", "3", "--space", "plain", "--train-limit", "600", "--val-size", "500",
           "--data-dir", str(mnist_dir), "--storage", url, "--study", "c", "--confirm-top", "2", "--reruns", "1",
           "--no-progress"]
    assert main(cmd) == 0
    out = capsys.readouterr().out
    assert "re-running the 2 best candidates 1 more time(s) each with new seeds before naming a winner (2 runs)" in out
    study = optuna.load_study(study_name="c", storage=url)
    originals = [t for t in study.trials if "rerun_of" not in t.user_attrs]
    reruns = [t for t in study.trials if "rerun_of" in t.user_attrs]
    top2 = sorted(originals, key=lambda t: (-t.user_attrs["val_acc"], t.user_attrs["params"], t.number))[:2]
    assert sorted(t.user_attrs["rerun_of"] for t in reruns) == sorted(t.number for t in top2)
    for r in reruns:
        of = study.trials[r.user_attrs["rerun_of"]]
        assert r.state == COMPLETE and r.params == of.params and r.user_attrs["spec"] == of.user_attrs["spec"]
        assert r.user_attrs["seed"] == rerun_seed(of.user_attrs["seed"], 1) != of.user_attrs["seed"]
        assert "pruned_at" not in r.user_attrs
    assert trained_count(study) == 3, "re-runs do not count towards --trials"
    entries = lb.build(study.trials)
    means = {t.number: (t.user_attrs["val_acc"] + next(r.user_attrs["val_acc"] for r in reruns
                                                        if r.user_attrs["rerun_of"] == t.number)) / 2 for t in top2}
    assert entries[0].trial == max(means, key=lambda n: (means[n], -study.trials[n].user_attrs["params"], -n))
    assert entries[0].n_runs == 2 and entries[0].val_mean == pytest.approx(means[entries[0].trial])

    assert main(["export", "--storage", url, "--study", "c", "--out", str(tmp_path / "ex")]) == 0
    manifest = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    assert manifest["trial"] == entries[0].trial, "export's rank 1 is the leaderboard's"
    assert manifest["runs"]["n"] == 2 and manifest["runs"]["val_mean"] == pytest.approx(entries[0].val_mean)

    assert main(cmd) == 0  # the same command again: nothing left to do, no more re-runs
    assert len(optuna.load_study(study_name="c", storage=url).trials) == len(study.trials)


@pytest.mark.slow
def test_a_multi_epoch_search_stops_most_candidates_at_an_epoch_rung(tmp_path, mnist_dir):
    """--epochs 3 with the default pruner: Hyperband's rungs sit at whole epochs (here
    with 2 reports per epoch: report 2 = epoch 1), so candidates are stopped after their
    first epoch and the best ones train all three. 600 training images: even a batch of
    256 makes 2 steps an epoch, so every candidate reports twice per epoch."""
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["search", "--budget", "3000", "--epochs", "3", "--eval-points", "2", "--trials", "12",
                 "--train-limit", "600", "--val-size", "500", "--data-dir", str(mnist_dir), "--storage", url,
                 "--study", "mf", "--no-progress", "--sampler", "random", "--threads", "1"]) == 0
    study = optuna.load_study(study_name="mf", storage=url)
    assert study.user_attrs["settings"]["pruner"] == "auto"
    first = study.trials[0].user_attrs  # a multi-epoch study starts from the augmented default
    assert first["default_trial"] and (first["recipe"]["rotate"], first["recipe"]["translate"]) == (7.0, 0.05)
    trained = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and not t.user_attrs.get("rejected")]
    pruned = [t for t in trained if t.user_attrs.get("pruned_at") is not None]
    assert pruned, "Hyperband stopped no candidate"
    assert {t.user_attrs["pruned_at"] for t in pruned} == {2}, "stopped only at the end of an epoch"
    assert all(max(t.intermediate_values) == 2 for t in pruned)
    assert all(max(t.intermediate_values) == 6 for t in trained if t.state.name == "COMPLETE")
