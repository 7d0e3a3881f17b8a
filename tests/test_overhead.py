"""The search's own cost per trial (#25): what was folded, each on real storages, and the
benchmark that measures it (scripts/bench.py --overhead). No test here times anything."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna_dashboard import get_note

from budgetnas.results import dashboard
from budgetnas.study import record
from budgetnas.study.create import SnapshotPruner, make_pruner, make_sampler, quiet_optuna
from budgetnas.study.objective import new_trial_note
from budgetnas.study.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sqlite_study(tmp_path):
    quiet_optuna()
    return optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/s.db"), direction="maximize")


def commits(storage) -> list:
    """Each commit on the SQL engine behind ``storage``, appended as it happens."""
    import sqlalchemy
    seen: list = []
    sqlalchemy.event.listen(storage._backend.engine, "commit", lambda conn: seen.append(1))
    return seen


def test_a_record_is_written_in_one_transaction_and_reads_back(sqlite_study):
    trial = sqlite_study.ask()
    seen = commits(sqlite_study._storage)
    values = dict(params=1234, budget=5000, macs=99, ram=None, worker="h:1", spec={"layers": [1, 2]},
                  history=[{"epoch": 1, "val_acc": 0.5}])
    record.write(trial, {"params_over_budget": -3766.0, "macs_over_budget": 1.0}, **values)
    assert len(seen) == 1  # the record and the constraints, in one transaction
    record.write(trial, {"params_over_budget": 5.0}, params=4321, seed=7)  # an attr written again is replaced
    assert len(seen) == 2
    assert record.read(trial).params == 4321  # the trial's own view
    assert trial._cached_frozen_trial.system_attrs["constraints:params_over_budget"] == -3766.0
    sqlite_study.tell(trial, 0.5)
    stored = optuna.load_study(study_name=sqlite_study.study_name, storage=sqlite_study._storage).trials[0]
    assert stored.user_attrs == {**values, "params": 4321, "seed": 7}
    # as Trial.set_constraint: a constraint already set is kept (a retried trial inherits it)
    assert stored.system_attrs == {"constraints:params_over_budget": -3766.0, "constraints:macs_over_budget": 1.0}
    assert optuna.study._constrained_optimization._get_feasible_trials([stored]) == []


def test_a_record_on_a_journal_storage_is_written_too(tmp_path):
    quiet_optuna()
    study = optuna.create_study(storage=open_storage(f"journal:{tmp_path}/s.journal"), direction="maximize")
    trial = study.ask()
    record.write(trial, {"params_over_budget": -1.0}, params=1, budget=2, spec={"a": 1})
    record.write(trial, {"params_over_budget": 3.0})
    study.tell(trial, 1.0)
    stored = optuna.load_study(study_name=study.study_name, storage=open_storage(f"journal:{tmp_path}/s.journal"))
    assert stored.trials[0].user_attrs == {"params": 1, "budget": 2, "spec": {"a": 1}}
    assert stored.trials[0].system_attrs == {"constraints:params_over_budget": -1.0}


def test_a_new_trials_note_is_what_optuna_dashboard_reads_without_reading_every_note(sqlite_study, monkeypatch):
    for n in range(3):  # notes of other trials in the study
        new_trial_note(sqlite_study.ask(), f"trial {n}")
    reads = []
    storage = sqlite_study._storage
    real = storage.get_study_system_attrs
    monkeypatch.setattr(storage, "get_study_system_attrs", lambda study_id: reads.append(1) or real(study_id))
    trial = sqlite_study.ask()
    body = "| layer | output |\n" + "x" * 5000  # longer than one system attr holds
    seen = commits(storage)
    new_trial_note(trial, body)
    assert reads == [] and len(seen) == 1
    monkeypatch.undo()
    assert get_note(trial) == body


def test_the_pruner_reads_the_trials_once_per_trial_and_decides_as_before(sqlite_study):
    """A median pruner's decisions with and without the snapshot, on the same reports;
    with it the study's trials are read at the trial's first report only."""
    for k in range(6):
        sqlite_study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={1: 0.5, 2: 0.7 + k / 100,
                                                                                          3: 0.8, 4: 0.9}))
    plain = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    wrapped = SnapshotPruner(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    reads = []
    real = sqlite_study._storage.get_all_trials
    sqlite_study._storage.get_all_trials = lambda *a, **k: reads.append(1) or real(*a, **k)
    for curve in ([0.4, 0.72, 0.85], [0.5, 0.70, 0.75], [0.3, 0.8, 0.95]):
        trial = sqlite_study.ask()
        before = len(reads)
        decisions = []
        for step, acc in enumerate(curve, 1):
            trial.report(acc, step)
            frozen = sqlite_study._storage.get_trial(trial._trial_id)
            decisions.append((plain.prune(sqlite_study, frozen), None))
            n = len(reads)
            decisions[-1] = (decisions[-1][0], wrapped.prune(sqlite_study, frozen))
            assert len(reads) - n <= (1 if step == 1 else 0), "read again after the first report"
        assert all(a == b for a, b in decisions), decisions
        assert len(reads) > before
        sqlite_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert isinstance(make_pruner("median", 1, 4), SnapshotPruner)


def test_one_process_samples_the_same_points_without_constant_liar(tmp_path):
    """TPE without constant_liar reads the trials once per trial; alone in a study it
    proposes exactly what it did with it."""
    quiet_optuna()

    def points(parallel: bool) -> list:
        study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/{parallel}.db"),
                                    sampler=make_sampler("tpe", 3, parallel=parallel), direction="maximize")
        study.optimize(lambda t: -(t.suggest_float("a", -3, 3) - 1) ** 2 - abs(t.suggest_int("b", 0, 9) - 4)
                       + (t.suggest_categorical("c", ["x", "y"]) == "y"), n_trials=15)
        return [t.params for t in study.trials]

    assert points(False) == points(True)
    assert make_sampler("tpe", 0)._constant_liar and not make_sampler("tpe", 0, parallel=False)._constant_liar


def conditional_space(t) -> float:
    """A space whose trials sample different sets of parameters (as a search's depth
    does), so that TPE's groups are not one; some trials pruned."""
    depth = t.suggest_int("depth", 1, 4)
    score = sum(t.suggest_float(f"w{i}", 0, 1) for i in range(depth)) / depth
    if t.suggest_categorical("block", ["conv", "res"]) == "res":
        score += t.suggest_int("expand", 1, 6) / 10
    if score < 0.35:
        raise optuna.TrialPruned()
    return score


def test_tpe_works_its_groups_out_from_each_trial_once_and_samples_the_same_points(tmp_path):
    quiet_optuna()
    from budgetnas.study.fast import IncrementalGroups

    def run(sampler, name) -> tuple[list, list]:
        study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/{name}.db"), sampler=sampler,
                                    direction="maximize")
        study.optimize(conditional_space, n_trials=40)
        groups = sampler._group_decomposed_search_space.calculate(study)
        return [t.params for t in study.trials], [sorted(g) for g in groups.search_spaces]

    ours = make_sampler("tpe", 5, parallel=False)
    assert type(ours._group_decomposed_search_space) is IncrementalGroups
    added = []
    real = ours._group_decomposed_search_space._search_space.add_distributions
    ours._group_decomposed_search_space._search_space.add_distributions = lambda d: added.append(1) or real(d)
    plain = optuna.samplers.TPESampler(seed=5, n_startup_trials=6, multivariate=True, group=True,
                                       constant_liar=False, warn_independent_sampling=False)
    points, groups = run(ours, "ours")
    assert (points, groups) == run(plain, "plain")
    assert len(groups) > 2  # the space has groups worth working out
    assert len(added) == 40  # each finished trial once (Optuna's adds every one at every trial)


def test_a_trials_parameters_are_written_together_and_read_back_everywhere(tmp_path):
    """In one transaction with the next write (here the trial record); a reader (another
    process's storage) sees them; a distribution unlike the study's is refused at the
    suggest, as Optuna refuses it."""
    quiet_optuna()
    from budgetnas.study.fast import batched
    url = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=batched(open_storage(url)), study_name="p", direction="maximize")
    for n in range(2):  # the first trial introduces the names, the second is all known names
        trial = study.ask()
        params = {f"p{k}": trial.suggest_int(f"p{k}", 0, 9 + k) for k in range(18)}
        params["c"] = trial.suggest_categorical("c", ["a", "b"])
        assert optuna.load_study(study_name="p", storage=open_storage(url)).trials[n].params == {}  # held back
        seen = commits(study._storage)
        record.write(trial, params=n, seed=n)
        assert len(seen) == 2  # the 19 parameters in one transaction, then the record
        assert optuna.load_study(study_name="p", storage=open_storage(url)).trials[n].params == params
        assert study._storage.get_trial(trial._trial_id).params == params
        study.tell(trial, 0.5)
    trial = study.ask()
    with pytest.raises(ValueError):
        trial.suggest_float("p0", 0, 1)  # p0 is an int
    value = trial.suggest_int("p1", 0, 3)
    study.tell(trial, 0.1)
    assert optuna.load_study(study_name="p", storage=open_storage(url)).trials[2].params == {"p1": value}


def test_plots_are_published_at_a_steady_low_rate(monkeypatch):
    """At most every ``every`` seconds, and never more than ``share`` of the time: a
    publish that took 2 s is followed by none for 200 s (share 1%)."""
    clock = [1000.0]
    took = [0.5]
    published = []

    def publish(study):
        published.append(clock[0])
        clock[0] += took[0]

    monkeypatch.setattr(dashboard.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(dashboard, "publish_plots", publish)
    p = dashboard.Publisher(every=5.0, share=0.01)
    for _ in range(120):  # a trial every second
        p(None)
        clock[0] += 1
    assert len(published) > 1 and all(b - a >= 50 for a, b in zip(published, published[1:]))
    took[0] = 2.0
    published.clear()
    for _ in range(1000):
        p(None)
        clock[0] += 1
    gaps = [b - a for a, b in zip(published, published[1:])]
    assert gaps and min(gaps) >= 200
    p(None, force=True)
    assert published[-1] == clock[0] - 2.0  # the last one is never skipped


def test_the_overhead_benchmark_runs_a_real_search_with_the_trainer_stubbed():
    proc = subprocess.run([sys.executable, "scripts/bench.py", "--overhead", "--overhead-sizes", "25"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("overhead: ") and lines[-1].endswith(" ms/trial at 25 trials")
    row = next(line for line in lines if line.split()[:1] == ["25"])
    assert "complete" in row and "pruned" in row
    assert float(lines[-1].split()[1]) > 0
