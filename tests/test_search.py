"""The search end to end: the real CLI on a real-MNIST subset, checked in the stored study."""
import optuna
import pytest

from budgetnas import leaderboard as lb
from budgetnas.cli import main
from budgetnas.config import default_storage_url
from budgetnas.storage import redact


def run(args, mnist_dir, tmp_path, study="t"):
    return main(["search", *args, "--train-limit", "1200", "--val-size", "500", "--data-dir", str(mnist_dir),
                 "--study", study, "--storage", f"sqlite:///{tmp_path}/s.db", "--artifacts", str(tmp_path / "w"),
                 "--no-progress", "--threads", "2"])


@pytest.fixture(scope="module")
def searched(mnist_dir, tmp_path_factory):
    """A real random-sampler search at a tight budget: some candidates are rejected."""
    tmp = tmp_path_factory.mktemp("search")
    assert run(["--budget", "1500", "--trials", "4", "--sampler", "random", "--seed", "3"], mnist_dir, tmp) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp}/s.db")
    return tmp, study


def test_trained_models_are_within_budget_and_stored(searched):
    tmp, study = searched
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


def test_rejected_candidates_are_never_built_and_end_fast(searched):
    tmp, study = searched
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    assert rejected, "a 1,500-parameter budget should reject some sampled candidates"
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["params"] > 1500
        assert t.system_attrs["constraints:params_over_budget"] == t.user_attrs["params"] - 1500 > 0
        assert "val_acc" not in t.user_attrs and not t.intermediate_values
        assert not (tmp / "w" / f"trial_{t.number}.pt").exists()
    # ~20 ms each on an idle machine (storage writes), ~130 ms at load 5: the bound leaves
    # room for a loaded CI machine; the checks above prove nothing was built or trained
    durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in rejected)
    assert durations[len(durations) // 2] < 0.25 and durations[-1] < 1.0, durations


def test_a_new_study_starts_from_the_default_candidates(searched):
    """The three defaults come first at a small budget; the two-conv one does not fit
    1,500 params and is rejected unbuilt, the small-net one (separable convs) and the
    plain SGD one are trained."""
    from budgetnas.space import DEFAULT_TRIAL, PLAIN_SGD_TRIAL, SMALL_DEFAULT_TRIAL, default_trials

    _, study = searched
    first, second, third = study.trials[:3]
    # rejected before its recipe is sampled: only the architecture's params are set
    assert first.params.items() < DEFAULT_TRIAL.items() and "stages" in first.params
    assert first.user_attrs["default_trial"] and first.user_attrs["rejected"]
    assert second.params == SMALL_DEFAULT_TRIAL and second.user_attrs["default_trial"]
    assert "val_acc" in second.user_attrs and second.user_attrs["params"] <= 1500
    assert any(l.get("groups", 1) > 1 for l in second.user_attrs["spec"]["layers"])
    assert third.params == PLAIN_SGD_TRIAL and third.user_attrs["default_trial"] and "val_acc" in third.user_attrs
    assert third.user_attrs["recipe"]["optimizer"] == "sgd" and third.user_attrs["recipe"]["lr"] == 0.3
    assert default_trials(25_000) == [DEFAULT_TRIAL, PLAIN_SGD_TRIAL]


def test_leaderboard_is_readable_from_the_storage(searched, capsys):
    tmp, study = searched
    entries = lb.build(study.trials)
    assert entries and entries == sorted(entries, key=lambda e: -e.val_acc)
    assert all(e.params <= 1500 for e in entries)
    assert main(["leaderboard", "--study", "t", "--storage", f"sqlite:///{tmp}/s.db"]) == 0
    out = capsys.readouterr().out
    assert "val acc" in out and f"{entries[0].params:,}" in out


def test_rerun_resumes_the_same_study(searched, mnist_dir):
    tmp, study = searched
    before = len(study.trials)
    assert run(["--budget", "1500", "--trials", "5", "--sampler", "random", "--seed", "3"], mnist_dir, tmp) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp}/s.db")
    trained = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               and not t.user_attrs.get("rejected")]
    assert len(trained) == 5 and len(study.trials) > before
    assert [t.number for t in study.trials] == list(range(len(study.trials)))


def test_rerun_with_another_budget_is_refused(searched, mnist_dir, capsys):
    tmp, _ = searched
    assert run(["--budget", "9999", "--trials", "5"], mnist_dir, tmp) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "budget=1500" in err


def test_storage_defaults_and_redaction():
    assert default_storage_url("x") == "sqlite:///studies/x.db"
    assert default_storage_url("x", workers=2) == "journal:studies/x.journal"
    assert redact("postgresql://bob:s3cret@db:5432/nas") == "postgresql://bob:***@db:5432/nas"
    assert redact("sqlite:///a.db") == "sqlite:///a.db"
