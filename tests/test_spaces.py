"""Search spaces users write: TOML files and dicts checked key by key (a bad one is one
line naming the key and what it allows), the built-in named spaces (each samples only
its blocks inside the budget and starts from first trials that fit), and the space
pinned in a real study, shown by 'budgetnas space', in the report and the manifest."""
from __future__ import annotations

import json
import sys

import optuna
import pytest

from budgetnas.arch import param_count
from budgetnas.cli import main
from budgetnas.space import (NAMED, Space, default_trials, named_space, read_space_file, sample_recipe, sample_spec,
                             space_from_dict)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

optuna.logging.set_verbosity(optuna.logging.WARNING)

FILE = """\
base = "mobile"
blocks = ["mbconv", "res"]
stages = [2, 3]
blocks_per_stage = [1, 2]
kernels = [5]
expand = [2, 3]
se = [true]
downsample = ["avg"]
schedules = ["onecycle"]
batch_sizes = [32, 64]
augment = [false]

[lr]
sgd = [0.05, 0.2]
"""


def test_a_space_file_sets_the_keys_it_names_and_the_search_samples_only_those(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(FILE)
    space = read_space_file(path)
    assert space == space_from_dict(tomllib.loads(FILE))  # a file and a dict are the same structure
    assert (space.blocks, space.stages, space.blocks_per_stage, space.kernels, space.expand, space.se) == \
        (("mbconv", "res"), (2, 3), (1, 2), (5,), (2, 3), (True,))
    assert space.lr == {"sgd": (0.05, 0.2)} and space.downsample == ("avg",)
    assert space.growth == named_space("mobile").growth  # what it does not name comes from its base
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(100):
        trial = study.ask()
        spec, recipe = sample_spec(trial, space, 10_000), sample_recipe(trial, space, 1)
        kinds |= {layer.kind for layer in spec.layers}
        assert recipe.optimizer == "sgd" and 0.05 <= recipe.lr <= 0.2 and recipe.batch_size in (32, 64)
        assert recipe.rotate == 0 and recipe.schedule == "onecycle"
        assert all(m.kernel == 5 and m.se and m.expand in (2, 3) for m in spec.layers if m.kind == "mbconv")
        study.tell(trial, 0.0)
    assert kinds == {"conv", "mbconv", "res", "avgpool"}  # the stem is a conv; pools are average ones


@pytest.mark.parametrize("text, says", [
    ('blocks = ["conv", "dense"]', "key 'blocks' must be a list of distinct values from 'conv', 'separable', 'res', "
                                   "'mbconv' (got ['conv', 'dense'])"),
    ("stages = [3, 2]", "key 'stages' must be [low, high], whole numbers with 1 <= low <= high <= 8 (got [3, 2])"),
    ("kernel = [3]", "unknown key 'kernel': the keys are base, stages,"),
    ("image_size = 32", "key 'image_size' is set by the data, not by a space"),
    ('base = "huge"', "key 'base' must be one of 'plain', 'resnet', 'mobile', 'default' (got 'huge')"),
    ("[lr]\nlion = [0.1, 0.2]", "key 'lr' must be a table of optimizer = [low, high]"),
    ('se = ["yes"]', "key 'se' must be a list of distinct values from false, true"),
    ("expand = [0]", "key 'expand' must be a list of distinct whole numbers from 1 to 8 (got [0])"),
    ("stages = [2, 3", "is not valid TOML"),
])
def test_a_bad_space_file_is_one_line_naming_the_key_and_nothing_is_stored(text, says, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["space", "--budget", "10k", "--samples", "10", "--space", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    storage = tmp_path / "s.db"
    assert main(["search", "--budget", "10k", "--trials", "1", "--space", str(path), "--storage",
                 f"sqlite:///{storage}", "--no-progress"]) == 2
    assert says in capsys.readouterr().err and not storage.exists()


def test_a_space_that_is_neither_a_name_nor_a_file_is_one_line(tmp_path, capsys):
    assert main(["space", "--budget", "10k", "--space", "resnet50"]) == 2
    assert "--space takes plain, resnet, mobile, default or a TOML file (got 'resnet50')" in capsys.readouterr().err
    assert main(["space", "--budget", "10k", "--space", str(tmp_path / "none.toml")]) == 2
    assert "cannot read space file" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(NAMED))
def test_each_named_space_samples_its_blocks_inside_the_budget_and_its_first_trials_fit(name):
    space = named_space(name)
    allowed = set(space.blocks) - {"separable"} | ({"conv"} if "separable" in space.blocks else set())  # its layers
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for budget in (5_000, 10_000, 25_000):
        firsts = default_trials(budget, space)
        assert firsts, (name, budget)
        for params in firsts:
            spec = sample_spec(optuna.trial.FixedTrial(params), space, budget)
            assert param_count(spec) <= budget
            assert {m.kind for m in spec.layers[1:]} - {"pool", "avgpool"} <= allowed
        uses = []
        for _ in range(60):
            trial = study.ask()
            spec = sample_spec(trial, space, budget)
            assert {m.kind for m in spec.layers[1:]} - {"pool", "avgpool"} <= allowed
            uses.append(param_count(spec) / budget)
            study.tell(trial, 0.0)
        inside = sorted(u for u in uses if u <= 1)
        assert len(inside) >= 0.4 * len(uses) and inside[len(inside) // 2] >= 0.5  # the widths fill the budget


def test_the_plain_space_starts_from_the_first_trials_of_before(tmp_path):
    from budgetnas.space import DEFAULT_TRIAL, PLAIN_SGD_TRIAL, SMALL_DEFAULT_TRIAL
    assert default_trials(10_000, named_space("plain")) == [DEFAULT_TRIAL, SMALL_DEFAULT_TRIAL, PLAIN_SGD_TRIAL]
    import dataclasses
    stored_before = {k: v for k, v in dataclasses.asdict(Space()).items() if k not in ("blocks", "blocks_per_stage")}
    assert named_space("plain") == Space() == Space.from_dict({**stored_before, "separable": [False, True],
                                                               "convs_per_stage": [1, 3]})


@pytest.fixture(scope="module")
def resnet_study(mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    storage = f"sqlite:///{root / 's.db'}"
    args = ["search", "--budget", "6000", "--train-limit", "1000", "--val-size", "500", "--data-dir", str(mnist_dir),
            "--study", "sp", "--storage", storage, "--no-progress", "--confirm-top", "0"]
    assert main([*args, "--trials", "2", "--space", "resnet"]) == 0
    return root, storage, args


def test_the_space_is_pinned_in_the_study_and_a_rerun_with_another_is_refused(resnet_study, capsys):
    root, storage, args = resnet_study
    study = optuna.load_study(study_name="sp", storage=storage)
    settings = study.user_attrs["settings"]
    assert settings["space_label"] == "resnet" and Space.from_dict(settings["space"]).blocks == ("res",)
    trained = [t for t in study.trials if t.user_attrs.get("spec")]
    assert trained and all(any(m["kind"] == "res" for m in t.user_attrs["spec"]["layers"]) for t in trained)
    before = len(study.trials)
    capsys.readouterr()
    assert main([*args, "--trials", "3", "--space", "mobile"]) == 2
    err = capsys.readouterr().err
    assert "study 'sp' searches the space 'resnet', not 'mobile'" in err and len(err.strip().splitlines()) == 1
    assert len(optuna.load_study(study_name="sp", storage=storage).trials) == before
    assert main([*args, "--trials", "3"]) == 0  # without --space a rerun resumes the study's own
    study = optuna.load_study(study_name="sp", storage=storage)
    new = [t for t in study.trials[before:] if t.user_attrs.get("spec")]
    assert new and all(any(m["kind"] == "res" for m in t.user_attrs["spec"]["layers"]) for t in new)


def test_the_report_and_the_manifest_record_the_space(resnet_study, mnist_dir, capsys):
    root, storage, _ = resnet_study
    assert main(["report", "--study", "sp", "--storage", storage, "--out", str(root / "r.html")]) == 0
    page = (root / "r.html").read_text()
    assert "<b>space</b> resnet" in page and "search space resnet" in page and "blocks res;" in page
    assert main(["export", "--study", "sp", "--storage", storage, "--out", str(root / "best"), "--data-dir",
                 str(mnist_dir)]) == 0
    manifest = json.loads((root / "best" / "manifest.json").read_text())
    assert manifest["space"]["name"] == "resnet" and manifest["space"]["ranges"]["blocks"] == ["res"]


def test_budgetnas_space_shows_the_space_and_how_its_samples_use_the_budget(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_text(FILE)
    assert main(["space", "--budget", "10k", "--samples", "50", "--space", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"space {path}:" in out
    assert "blocks mbconv, res; 2-3 stages of 1-2 blocks" in out and "downsample avg" in out
    assert "mbconv: kernels 5, expand 2, 3, squeeze-excite true" in out and "lr sgd 0.05-0.2" in out
    assert "sampled candidates within budget" in out


def test_the_python_api_takes_a_space_as_a_dict(tmp_path):
    """The same structure as a file, through budgetnas.search(space=...), pinned as 'custom';
    its stages capped to what 12-pixel images allow."""
    import numpy as np

    import budgetnas
    rng = np.random.default_rng(0)
    x, y = rng.random((400, 12, 12)).astype(np.float32), rng.integers(0, 3, 400)
    result = budgetnas.search(x, y, budget=3000, trials=1, study="api", storage=f"sqlite:///{tmp_path / 'a.db'}",
                              space={"base": "resnet", "stages": [2, 6], "blocks_per_stage": [1, 1]},
                              confirm_top=0)
    settings = optuna.load_study(study_name="api", storage=result.storage).user_attrs["settings"]
    space = Space.from_dict(settings["space"])
    assert settings["space_label"] == "custom" and space.blocks == ("res",) and space.stages == (2, 3)
    with pytest.raises(Exception, match="key 'stages' must be"):
        budgetnas.search(x, y, budget=3000, trials=1, study="api2", storage=f"sqlite:///{tmp_path / 'b.db'}",
                         space={"stages": [0, 2]})
