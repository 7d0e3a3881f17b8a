"""MAC and peak-RAM budgets: the RAM count against the built model's feature maps, the
space filling the tightest budget, a real search that rejects over-budget candidates of
each kind before they are built, and the size flags."""
from __future__ import annotations

import argparse

import optuna
import pytest

from budgetnas.cli import main
from budgetnas.config import size_int
from budgetnas.arch.build import build_model
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec, activation_table, macs, param_count, peak_ram
from budgetnas.space import Space, budget_use_summary, named_space, sample_spec, smallest_ram
from ram import traced_peak

optuna.logging.set_verbosity(optuna.logging.WARNING)


def measured_peak(spec: ArchSpec) -> int:
    """Peak bytes of an int8 inference measured on the built model (tests/ram.py)."""
    return traced_peak(build_model(spec), (spec.in_channels, spec.image_size, spec.image_size))


def test_peak_ram_equals_the_measured_feature_maps_of_presets_and_150_sampled_specs():
    specs = [p.spec for p in PRESETS.values()]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for i in range(150):
        trial = study.ask()
        specs.append(sample_spec(trial, Space(), [2_000, 10_000, 25_000][i % 3]))
        study.tell(trial, 0.0)
    heads = set()
    for spec in specs:
        assert peak_ram(spec) == measured_peak(spec), spec
        heads.add((spec.head, spec.linear, bool(spec.hidden)))
    assert len(heads) >= 5  # gap/flatten, hidden or not, conv logits (C, D)
    # the first conv counts the image it reads: 784 + 4 x 784 bytes at the narrowest
    assert smallest_ram(Space()) == 28 * 28 * 5
    assert activation_table(PRESETS["A"].spec)[0]["in"] == 784


@pytest.mark.parametrize("name", ["plain", "default", "resnet", "mobile"])
def test_sampled_specs_fill_the_tightest_budget_and_stay_inside_all_of_them(name):
    space = named_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    limits = (10_000, 300_000, 20_000)
    inside = 0
    for _ in range(200):
        trial = study.ask()
        spec = sample_spec(trial, space, *limits)
        fill = trial.params["fill"]
        study.tell(trial, 0.0)
        uses = (param_count(spec) / limits[0], macs(spec) / limits[1], peak_ram(spec) / limits[2])
        if max(uses) <= 1.0:
            inside += 1
            # the widths fit the sampled share of every budget (or are the narrowest there are)
            assert max(uses) <= fill + 1e-9 or spec.layers[0].out == 4, (uses, fill, spec)
    assert inside > (100 if name == "plain" else 30)  # residual blocks fit 300k MACs and 20k bytes less often
    if name != "plain":
        return
    s = budget_use_summary(10_000, n=300, seed=0, space=space, max_macs=100_000)
    assert s["binding"]["macs"] > 0.8 * s["within"]  # a tight MAC budget is the one filled
    assert s["quantiles"][0.5] > 0.55  # ... and filled well (not just the parameters)
    assert s["kinds"]["params"]["quantiles"][0.5] < 0.5


def test_size_flags_take_k_and_m_suffixes():
    assert size_int("300k") == 300_000 and size_int("2M") == 2_000_000 and size_int("20000") == 20_000
    assert size_int("20K") == 20_000 and size_int("1_000") == 1_000
    for bad in ("12q", "1.5k", "", "k", "-3k"):
        with pytest.raises(argparse.ArgumentTypeError):
            size_int(bad)


@pytest.fixture(scope="module")
def searched(mnist_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budgets")
    args = ["search", "--budget", "10000", "--max-macs", "150k", "--max-ram", "9k", "--trials", "4",
            "--train-limit", "1000", "--val-size", "500", "--sampler", "random", "--seed", "1",
            "--data-dir", str(mnist_dir), "--study", "m", "--storage", f"sqlite:///{tmp}/s.db",
            "--artifacts", str(tmp / "w"), "--no-progress", "--warm-start", "presets"]
    # presets A and D fit the parameter budget but not the MAC budget: rejections by MACs
    # happen whatever the sampler draws
    assert main(args) == 0
    return tmp, args, optuna.load_study(study_name="m", storage=f"sqlite:///{tmp}/s.db")


def test_a_search_trains_only_models_inside_every_budget(searched):
    tmp, _, study = searched
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for t in complete:
        a, spec = t.user_attrs, ArchSpec.from_dict(t.user_attrs["spec"])
        assert a["params"] == param_count(spec) <= 10_000
        assert a["macs"] == macs(spec) <= 150_000 and a["ram"] == peak_ram(spec) <= 9_000
        assert (a["max_macs"], a["max_ram"]) == (150_000, 9_000)
        assert t.system_attrs["constraints:macs_over_budget"] == a["macs"] - 150_000 <= 0
        assert t.system_attrs["constraints:ram_over_budget"] == a["ram"] - 9_000 <= 0
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    by = {k for t in rejected for k in t.user_attrs["rejected_by"]}
    assert "macs" in by, "candidates over 150k MACs are rejected"
    assert {t.user_attrs.get("preset") for t in rejected} >= {"A", "D"}
    for t in rejected:
        a = t.user_attrs
        assert t.state == optuna.trial.TrialState.PRUNED and "val_acc" not in a and not t.intermediate_values
        assert not (tmp / "w" / f"trial_{t.number}.pt").exists()
        for kind in a["rejected_by"]:
            assert t.system_attrs[f"constraints:{kind}_over_budget"] > 0
        assert set(a["rejected_by"]) == {k for k, v, limit in (("params", a["params"], 10_000),
                                                                ("macs", a["macs"], 150_000),
                                                                ("ram", a["ram"], 9_000)) if v > limit}
    assert study.user_attrs["settings"]["max_macs"] == 150_000 and study.user_attrs["settings"]["max_ram"] == 9_000


def test_the_mac_and_ram_budgets_are_pinned_in_the_study(searched, capsys):
    _, args, _ = searched
    for flag, value, stored in (("--max-macs", "200k", "150000"), ("--max-ram", "10k", "9000")):
        changed = list(args)
        changed[changed.index(flag) + 1] = value
        assert main(changed) == 2
        assert f"was made with {flag[2:].replace('-', '_')}={stored}" in capsys.readouterr().err


def test_leaderboard_formats_and_the_report_show_macs_and_peak_ram(searched, tmp_path, capsys):
    import csv
    import io
    import json
    _, args, study = searched
    url = args[args.index("--storage") + 1]
    best = max((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
               key=lambda t: t.user_attrs["val_acc"])
    a = best.user_attrs
    assert main(["leaderboard", "--study", "m", "--storage", url, "--format", "json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out)["entries"] if e["trial"] == best.number)
    assert (entry["macs"], entry["ram"]) == (a["macs"], a["ram"])
    assert main(["leaderboard", "--study", "m", "--storage", url, "--format", "csv"]) == 0
    row = next(r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["trial"] == str(best.number))
    assert (int(row["macs"]), int(row["ram"])) == (a["macs"], a["ram"])
    from budgetnas.results.formats import count_cell
    for fmt in ("table", "markdown"):
        assert main(["leaderboard", "--study", "m", "--storage", url, "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert "MACs" in text and "RAM bytes" in text and count_cell(a["ram"]) in text and count_cell(a["macs"]) in text
    out = tmp_path / "r.html"
    assert main(["report", "--study", "m", "--storage", url, "--out", str(out), "--cost", "ram"]) == 0
    page = out.read_text()
    assert "Accuracy vs peak RAM of an int8 inference" in page and f"peak RAM {a['ram']:,} bytes" in page
    assert "<b>max_ram</b> 9000" in page
