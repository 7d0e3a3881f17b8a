import json

import optuna
import pytest
import torch

from budgetnas.config import ConfigError
from budgetnas.model import build_model
from budgetnas.presets import PRESETS
from budgetnas.space import (POOL, ArchSpec, Space, budget_use_summary, conv, macs, param_count, sample_recipe,
                             sample_spec, smallest_params, validate)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def torch_count(spec: ArchSpec) -> int:
    return sum(p.numel() for p in build_model(spec).parameters())


@pytest.mark.parametrize("name,expected", [("A", 8_762), ("B", 24_048), ("C", 12_400), ("D", 9_798), ("E", 421_642)])
def test_seed_architectures_have_their_exact_parameter_counts(name, expected):
    spec = PRESETS[name].spec
    assert param_count(spec) == expected
    assert torch_count(spec) == expected
    assert build_model(spec)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_analytic_count_equals_torch_count_for_600_sampled_specs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    budgets = [500, 2_000, 5_000, 25_000, 100_000]
    seen = set()
    for i in range(600):
        trial = study.ask()
        spec = sample_spec(trial, Space(), budgets[i % len(budgets)])
        study.tell(trial, 0.0)
        assert param_count(spec) == torch_count(spec), spec
        seen.add((len(spec.layers), spec.head, spec.hidden, any(l.groups > 1 for l in spec.layers)))
    assert len(seen) > 30  # the property covered many different shapes
    assert {s[3] for s in seen} == {False, True}  # plain and separable convs


def test_spec_json_round_trip_is_exact():
    for p in PRESETS.values():
        again = ArchSpec.from_json(p.spec.to_json())
        assert again == p.spec
        assert json.loads(again.to_json()) == json.loads(p.spec.to_json())


def test_fixed_trial_replays_a_sampled_trial():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    spec, recipe = sample_spec(trial, Space(), 10_000), sample_recipe(trial, Space(), 1)
    fixed = optuna.trial.FixedTrial(trial.params)
    assert sample_spec(fixed, Space(), 10_000) == spec
    assert sample_recipe(fixed, Space(), 1) == recipe


def test_widths_are_scaled_to_use_the_budget():
    summary = budget_use_summary(25_000, n=400, seed=0)
    assert summary["share_within"] > 0.7
    assert summary["quantiles"][0.9] > 0.75  # the upper samples come close to the budget
    assert sum(summary["histogram"]) == summary["within"]


def test_smallest_params_is_a_real_lower_bound():
    floor = smallest_params(Space())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        assert param_count(sample_spec(trial, Space(), 100)) >= floor
        study.tell(trial, 0.0)


def test_macs_counts_convs_and_linears():
    spec = ArchSpec((conv(4), POOL), head="gap")
    # conv 1->4 3x3 on 28x28: 4*9*784 ; linear 4->10: 40
    assert macs(spec) == 4 * 9 * 28 * 28 + 40


@pytest.mark.parametrize("bad", [
    '{"layers": []}',
    '{"layers": [{"kind": "conv", "out": 4}, {"kind": "pool"}, {"kind": "pool"}, {"kind": "pool"}, '
    '{"kind": "pool"}, {"kind": "pool"}]}',
    '{"layers": [{"kind": "conv", "out": 4, "colour": 1}]}',
    '{"layers": [{"kind": "conv", "out": 4}], "linear": false}',
    '{"layers": [{"kind": "conv", "out": 4}, {"kind": "conv", "out": 6, "groups": 4}]}',
    '{"layers": [{"kind": "conv", "out": 4, "groups": 0}]}',
    'not json',
])
def test_malformed_specs_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ArchSpec.from_json(bad)


def test_validate_accepts_every_preset():
    for p in PRESETS.values():
        validate(p.spec)


def test_separable_conv_counts_and_builds():
    from budgetnas.leaderboard import arch_summary
    from budgetnas.space import separable, stage_spec

    spec = ArchSpec((conv(8), *separable(8, 16), POOL), head="gap")
    # 1->8 3x3 + BN: 72+16 ; depthwise 3x3 on 8: 72 ; 1x1 8->16 + BN: 128+32 ; linear 16->10: 170
    assert param_count(spec) == torch_count(spec) == 72 + 16 + 72 + 128 + 32 + 170
    assert macs(spec) == 8 * 9 * 784 + 8 * 9 * 784 + 16 * 8 * 784 + 160
    model = build_model(spec)
    assert model.features[1].conv.groups == 8
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert "groups" not in json.loads(ArchSpec((conv(8),)).to_json())["layers"][0]  # old specs unchanged
    assert arch_summary(spec.to_dict()) == "8 s16 P | gap"
    plain = stage_spec(3, 2, [16, 24, 32], True, "gap", 0, 0.0, 0.0)
    sep = stage_spec(3, 2, [16, 24, 32], True, "gap", 0, 0.0, 0.0, True)
    assert param_count(sep) < param_count(plain) / 4
