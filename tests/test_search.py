"""The search end to end: the real CLI on a real-MNIST subset, checked in the stored study;
the objective's promises (rejection before build, pruning, divergence, the last report,
--warm-start presets) on real studies with trials enqueued to known outcomes."""
import warnings
from types import SimpleNamespace

import optuna
import pytest
import torch

from budgetnas.results import leaderboard as lb
from budgetnas.cli import main
from budgetnas.config import DataConfig, SearchConfig, default_storage_url
from budgetnas.arch.build import build_model
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec, param_count
from budgetnas.space import SMALL_DEFAULT_TRIAL, default_trials, named_space
from budgetnas.study.storage import open_storage
from budgetnas.study.urls import redact

from budgetnas.study import create, objective, schedule
from budgetnas.study import optimize as optimize_mod


def run(args, mnist_dir, tmp_path, study="t"):
    return main(["search", *args, "--train-limit", "1200", "--val-size", "500", "--data-dir", str(mnist_dir),
                 "--study", study, "--storage", f"sqlite:///{tmp_path}/s.db", "--artifacts", str(tmp_path / "w"),
                 "--no-progress", "--threads", "1"])


@pytest.fixture(scope="module")
def searched(mnist_dir, tmp_path_factory):
    """A real random-sampler search at a tight budget: some candidates are rejected.
    Spies on the model builder and the training loop the objective calls record every
    network built and trained (its spec and trainable parameters)."""
    tmp = tmp_path_factory.mktemp("search")
    spy = SimpleNamespace(built=[], trained=[])

    def build_spy(spec):
        spy.built.append(spec.to_dict())
        return build_model(spec)

    def train_spy(model, *args, **kwargs):
        spy.trained.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
        return real_train(model, *args, **kwargs)

    real_train = objective.train
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(objective, "build_model", build_spy)
        mp.setattr(objective, "train", train_spy)
        assert run(["--budget", "1500", "--trials", "4", "--sampler", "random", "--seed", "3"], mnist_dir, tmp) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp}/s.db")
    spy.trials = study.get_trials()  # as the first run left them (a test below resumes the study)
    return tmp, study, spy


def test_trained_models_are_within_budget_and_stored(searched):
    tmp, study, _ = searched
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) + sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED
                               and not t.user_attrs.get("rejected")) == 4
    assert complete
    for t in complete:
        a = t.user_attrs
        assert a["params"] <= 1500 == a["budget"]
        assert 0 < a["val_acc"] <= 1 and 0 < a["test_acc"] <= 1 and t.value == a["val_acc"]
        assert a["macs"] > 0 and a["seconds"] > 0 and a["spec"]["layers"] and a["recipe"]["lr"] > 0
        assert (tmp / "w" / f"trial_{t.number}.pt").exists()
        assert t.system_attrs["constraints:params_over_budget"] == a["params"] - 1500 <= 0
        assert len(t.intermediate_values) >= 4  # reported inside the single epoch
    assert max(t.value for t in complete) > 0.15  # above chance (0.1) after a few steps on 1,200 images


def test_rejected_candidates_are_never_built(searched):
    tmp, _, spy = searched
    rejected = [t for t in spy.trials if t.user_attrs.get("rejected")]
    assert rejected, "a 1,500-parameter budget should reject some sampled candidates"
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["params"] > 1500
        assert t.system_attrs["constraints:params_over_budget"] == t.user_attrs["params"] - 1500 > 0
        assert "val_acc" not in t.user_attrs and not t.intermediate_values
        assert not (tmp / "w" / f"trial_{t.number}.pt").exists()
        assert t.user_attrs["spec"] not in spy.built, f"trial {t.number} was rejected after its model was built"
    # one network built and trained per trained trial, each within the budget
    trained = [t for t in spy.trials if t.state.name in ("COMPLETE", "PRUNED") and not t.user_attrs.get("rejected")]
    assert spy.built == [t.user_attrs["spec"] for t in trained]
    assert all(param_count(ArchSpec.from_dict(spec)) <= 1500 for spec in spy.built)
    assert spy.trained == [t.user_attrs["params"] for t in trained]


def test_a_new_study_starts_from_the_default_candidates(searched):
    """The defaults that fit come first at a small budget: the two-conv one cannot fit
    1,500 params, so it is not queued at all (not even to be rejected); the small-net
    one (separable convs) and the plain SGD one are trained."""
    from budgetnas.space import (DEFAULT_TRIAL, MULTI_EPOCH_TRIAL, PLAIN_SGD_TRIAL, SMALL_DEFAULT_TRIAL,
                                 default_trials, named_space)

    _, study, _ = searched
    first, second = study.trials[:2]
    assert not any(t.params.items() >= {"convs_per_stage": 2, "stages": 3, "fill": 0.95}.items()
                   and t.user_attrs.get("default_trial") for t in study.trials)
    assert default_trials(1_500) == [first.params, second.params]  # the default space's, made into its parameters
    assert first.params["block"] == "separable" and first.user_attrs["default_trial"]
    assert {k: v for k, v in first.params.items() if k != "block"} == \
        {k: v for k, v in SMALL_DEFAULT_TRIAL.items() if k != "separable"}
    assert "val_acc" in first.user_attrs and first.user_attrs["params"] <= 1500
    assert any(l.get("groups", 1) > 1 for l in first.user_attrs["spec"]["layers"])
    assert second.params["block"] == "conv" and second.user_attrs["default_trial"] and "val_acc" in second.user_attrs
    assert second.user_attrs["recipe"]["optimizer"] == "sgd" and second.user_attrs["recipe"]["lr"] == 0.3
    assert not study.trials[2].user_attrs.get("default_trial")
    # the plain space starts from the first trials of the versions before blocks existed
    plain = named_space("plain")
    assert default_trials(25_000, plain) == [DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    assert default_trials(5_000, plain) == [DEFAULT_TRIAL, SMALL_DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    assert default_trials(1_500, plain) == [SMALL_DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    # more than one epoch: the augmented two-conv default goes first (where it fits)
    assert default_trials(25_000, plain, epochs=15) == [MULTI_EPOCH_TRIAL, DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    assert default_trials(1_500, plain, epochs=15) == [SMALL_DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    # the default space adds a residual and an inverted-residual net where they fit
    assert [t["block"] for t in default_trials(25_000)] == ["conv", "conv", "res", "mbconv"]
    assert [t["block"] for t in default_trials(5_000, epochs=15)] == ["conv", "conv", "separable", "conv", "res",
                                                                       "mbconv"]


def test_leaderboard_is_readable_from_the_storage(searched, capsys):
    tmp, study, _ = searched
    entries = lb.build(study.trials)
    assert entries and entries == sorted(entries, key=lambda e: -e.val_acc)
    assert all(e.params <= 1500 for e in entries)
    assert main(["leaderboard", "--study", "t", "--storage", f"sqlite:///{tmp}/s.db"]) == 0
    out = capsys.readouterr().out
    assert "val acc" in out and f"{entries[0].params:,}" in out


def test_rerun_resumes_the_same_study(searched, mnist_dir):
    tmp, study, _ = searched
    before = len(study.trials)
    assert run(["--budget", "1500", "--trials", "5", "--sampler", "random", "--seed", "3"], mnist_dir, tmp) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp}/s.db")
    trained = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               and not t.user_attrs.get("rejected")]
    assert len(trained) == 5 and len(study.trials) > before
    assert [t.number for t in study.trials] == list(range(len(study.trials)))


def test_a_study_resumes_in_the_space_it_was_made_with(tmp_path, mnist_dir, monkeypatch):
    """A later version may search more choices (here: an optimizer added to the searched
    ones); a study made before keeps sampling the space it stored, which Optuna requires
    of a parameter's choices (it refuses 'dynamic value space')."""
    from budgetnas.train import recipe
    args = ["--budget", "3000", "--sampler", "random", "--seed", "5", "--pruner", "none"]
    assert run([*args, "--trials", "4"], mnist_dir, tmp_path) == 0
    monkeypatch.setitem(recipe.OPTIMIZERS, "adamw2", recipe.Optimizer(recipe.OPTIMIZERS["adamw"].make, lr=(1e-3, 1e-2)))
    assert run([*args, "--trials", "8"], mnist_dir, tmp_path) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    assert schedule.trained_count(study) == 8
    stored = set(study.user_attrs["settings"]["space"]["lr"])
    assert "adamw2" not in stored and {t.params.get("optimizer") for t in study.trials} - {None} <= stored


def test_rerun_with_another_budget_is_refused(searched, mnist_dir, capsys):
    tmp, _, _ = searched
    assert run(["--budget", "9999", "--trials", "5"], mnist_dir, tmp) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "budget=1500" in err


def test_storage_defaults_and_redaction():
    assert default_storage_url("x") == "sqlite:///studies/x.db"
    assert default_storage_url("x", workers=2) == "journal:studies/x.journal"
    assert redact("postgresql://bob:s3cret@db:5432/nas") == "postgresql://bob:***@db:5432/nas"
    assert redact("sqlite:///a.db") == "sqlite:///a.db"


# --- the objective's promises on studies whose trials are enqueued to known outcomes -----------
GOOD = dict(SMALL_DEFAULT_TRIAL)  # the small-net default: 58-80% val acc at report 3 of 4 on 1,000 images
SLOW = {**SMALL_DEFAULT_TRIAL, "lr_adamw": 1e-3}  # the lowest lr of the space: 10-25% at report 3
SHORT = {**SLOW, "batch_size": 256}  # 3 steps an epoch on 1,000 images: 3 reports, the last at 3
DIVERGES = {**SMALL_DEFAULT_TRIAL, "lr_adamw": 1e30}  # enqueued params may lie outside the space: NaN loss


@pytest.fixture(scope="module")
def tiny(mnist_dir):
    """1,000 real training images, 500 validation."""
    from budgetnas.data.load import load_data
    cfg = DataConfig(data_dir=str(mnist_dir), val_size=500, train_limit=1000)
    return cfg, load_data(cfg)


BUDGET = 5000
DEFAULTS = len(default_trials(BUDGET, named_space("plain")))  # queued by a new plain-space study before any other


def enqueued_study(tmp_path, tiny, pruner: str, queue: list[dict]):
    """A real SQLite study of the plain space (the parameters ``queue`` names) at budget
    5,000 (its default trials first, then ``queue``),
    searched in this process until every one has run. Returns the study as stored, with
    the search's pruner, and the events the objective reported."""
    dcfg, data = tiny
    cfg = SearchConfig(budget=BUDGET, trials=DEFAULTS + len(queue), study="p", pruner=pruner, data=dcfg, space="plain")
    url = f"sqlite:///{tmp_path}/p.db"
    events: list[objective.TrialEvent] = []
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per process is faster on shared cores (runtime.default_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's notes on experimental features and out-of-range params
        study = create.create_or_load_study(cfg, open_storage(url, heartbeat=True), data=data)
        for params in queue:
            study.enqueue_trial(params)
        try:
            optimize_mod.optimize(study, objective.Objective(cfg, data, torch.device("cpu"), tmp_path / "w", events.append), cfg)
        finally:
            torch.set_num_threads(threads)
    stored = optuna.load_study(study_name="p", storage=url, pruner=create.make_pruner(pruner, cfg.epochs, 4))
    return stored, events


def test_the_median_pruner_prunes_behind_the_median_but_never_at_the_last_report(tmp_path, tiny):
    """Median pruner: decisions once 5 trials completed (the defaults and GOOD ones), from
    report 3 of 4. SLOW is pruned at report 3; SHORT's report 3 is as far behind but is its last (3 steps an
    epoch), so it completes: the pruner says prune, the objective keeps the model. A
    diverging loss ends as pruned with its reason stored."""
    import statistics

    study, events = enqueued_study(tmp_path, tiny, "median", [GOOD] * (5 - DEFAULTS) + [SLOW, SHORT, DIVERGES])
    first, (slow, short, diverged) = study.trials[:5], study.trials[5:]
    assert [t.state.name for t in first] == ["COMPLETE"] * 5
    median = statistics.median(t.intermediate_values[3] for t in first)
    event = {e.number: e for e in events}

    assert slow.state.name == "PRUNED" and slow.user_attrs["pruned_at"] == 3
    assert sorted(slow.intermediate_values) == [1, 2, 3] and slow.intermediate_values[3] < median
    assert event[slow.number].state == "pruned" and event[slow.number].reason == "at report 3"
    assert "val_acc" not in slow.user_attrs and not (tmp_path / "w" / f"trial_{slow.number}.pt").exists()

    assert sorted(short.intermediate_values) == [1, 2, 3] and short.intermediate_values[3] < median
    assert study.pruner.prune(study, short), "the pruner would prune it at report 3"
    assert short.state.name == "COMPLETE" and "pruned_at" not in short.user_attrs, "but it was its last report"
    assert (tmp_path / "w" / f"trial_{short.number}.pt").exists()

    assert diverged.state.name == "PRUNED" and not diverged.intermediate_values
    assert diverged.user_attrs["pruned_reason"].startswith("diverged: loss became nan in epoch 1")
    assert "pruned_at" not in diverged.user_attrs and "val_acc" not in diverged.user_attrs
    assert event[diverged.number].state == "pruned" and event[diverged.number].reason.startswith("diverged (loss")
    assert schedule.trained_count(study) == 8, "pruned and diverged trials were trained: they count"


def test_hyperband_prunes_at_its_rungs(tmp_path, tiny):
    """Hyperband over 4 reports (min resource 1, reduction factor 3): brackets with rungs at
    reports 1 and 3, and a trial behind the best one at a rung is pruned there."""
    study, events = enqueued_study(tmp_path, tiny, "hyperband", [GOOD, SLOW, GOOD, SLOW, SLOW])
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, [t.intermediate_values for t in study.trials]
    for t in pruned:
        assert t.user_attrs["pruned_at"] in (1, 3) and max(t.intermediate_values) == t.user_attrs["pruned_at"]
        assert "val_acc" not in t.user_attrs and not (tmp_path / "w" / f"trial_{t.number}.pt").exists()
    assert sorted(e.number for e in events if e.state == "pruned") == [t.number for t in pruned]


@pytest.mark.parametrize("budget, names", [(8_761, ""), (8_762, "A"), (9_798, "AD"), (12_400, "ACD"),
                                           (24_048, "ABCD"), (421_642, "ABCDE")])
def test_warm_start_enqueues_the_presets_that_fit_the_budget(budget, names):
    """A 8,762, B 24,048, C 12,400, D 9,798, E 421,642 params; each enqueued once."""
    assert {n: param_count(p.spec) for n, p in PRESETS.items()} == {"A": 8_762, "B": 24_048, "C": 12_400,
                                                                    "D": 9_798, "E": 421_642}
    study = optuna.create_study()
    assert create.enqueue_presets(study, budget) == list(names)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["preset"] for t in waiting] == list(names)
    assert create.enqueue_presets(study, budget) == [], "a preset already in the study is not enqueued again"


def test_warm_started_presets_are_trained_with_their_own_specs_and_recipes(mnist_dir, tmp_path, capsys):
    trials = len(default_trials(10_000)) + 2  # the defaults, then A and D
    assert run(["--budget", "10000", "--trials", str(trials), "--warm-start", "presets", "--pruner", "none"],
               mnist_dir, tmp_path) == 0
    assert "warm start: enqueued presets A, D" in capsys.readouterr().out
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    by_preset = {t.user_attrs["preset"]: t for t in study.trials if t.user_attrs.get("preset")}
    assert sorted(by_preset) == ["A", "D"]
    for name, t in by_preset.items():
        preset = PRESETS[name]
        assert t.state == optuna.trial.TrialState.COMPLETE and t.params == {}, "nothing sampled"
        assert t.user_attrs["spec"] == preset.spec.to_dict() and t.user_attrs["params"] == param_count(preset.spec)
        assert t.user_attrs["recipe"] == {**preset.recipe.to_dict(), "epochs": 1}, "its recipe, for --epochs"
        model = build_model(preset.spec)
        model.load_state_dict(torch.load(t.user_attrs["weights"], weights_only=True))  # strict: its architecture


def test_making_the_sampler_warns_nothing():
    """Optuna warns about TPESampler's arguments (experimental; deprecated since 4.9); on
    Python 3.12 it attributes the warning to budgetnas's line, past the CLI's filter on
    module='optuna', and it reached the terminal (an extra stderr line after a one-line
    error, seen on the GPU machine). make_sampler silences them itself."""
    import warnings

    from budgetnas.study.create import make_sampler
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_sampler("tpe", 0)
    assert not caught, [str(w.message) for w in caught]
