import json

import optuna
import pytest
import torch
from hypothesis import given, settings, strategies as st

from budgetnas.config import ConfigError
from budgetnas.arch.build import build_model
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec, POOL, conv, macs, param_count, peak_ram, validate, walk
from budgetnas.space import Space, budget_use_summary, named_space, sample_recipe, sample_spec, smallest_params

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
        seen.add((len(spec.layers), spec.head, spec.hidden, any(getattr(l, 'groups', 1) > 1 for l in spec.layers)))
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
    from budgetnas.results.formats import arch_summary
    from budgetnas.arch import separable
    from budgetnas.space import stage_spec

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


# --- hypothesis: drawn specs against the built model ---------------------------------------------
# fixed examples (derandomized) and no example database: the same cases on every run and machine
PROPERTY = settings(deadline=None, derandomize=True, database=None)


@st.composite
def specs(draw) -> ArchSpec:
    """A valid spec of any shape build_model takes: convs of kernel 1/3/5 with any legal
    padding, stride 1 or 2, groups (depthwise too), with or without bias/BN/ReLU/dropout;
    max and average pools; residual blocks (stride 1/2, same or other width); inverted
    residuals (expand 1-6, kernel 3/5/7, stride 1/2, squeeze-excite or not); a GAP or
    flatten head with 0-2 hidden layers, or no linear layer at all; 1 or 3 input
    channels, image sides 6-32, 2-12 classes."""
    from budgetnas.arch import AvgPool, Conv, MBConv, Residual
    in_channels, side = draw(st.sampled_from([1, 3])), draw(st.integers(6, 32))
    classes = draw(st.integers(2, 12))
    c, s, layers = in_channels, side, []
    for i in range(draw(st.integers(1, 6))):
        what = draw(st.sampled_from(["conv", "conv", "pool", "res", "mbconv"]) if i else st.just("conv"))
        if what == "pool" and s >= 2:
            layers.append(draw(st.sampled_from([POOL, AvgPool()])))
            s //= 2
            continue
        if what in ("res", "mbconv"):
            stride, out = draw(st.sampled_from([1, 2])), draw(st.sampled_from([c, draw(st.integers(1, 12))]))
            layers.append(Residual(out, stride, draw(st.sampled_from([0.0, 0.1]))) if what == "res" else
                          MBConv(out, draw(st.integers(1, 6)), draw(st.sampled_from([3, 5, 7])), stride,
                                 draw(st.booleans()), draw(st.sampled_from([0.0, 0.1]))))
            c, s = out, (s - 1) // stride + 1
            continue
        kernel = draw(st.sampled_from([k for k in (1, 3, 5) if k <= s + 2 * (k // 2)]))
        padding = draw(st.integers(max(0, (kernel - s + 1) // 2), kernel // 2))  # the output keeps >= 1 pixel
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        out = groups * draw(st.integers(1, max(1, 12 // groups)))
        stride = draw(st.sampled_from([1, 2]))
        layers.append(Conv(out, kernel, padding, draw(st.booleans()), draw(st.booleans()),
                           draw(st.booleans()), draw(st.sampled_from([0.0, 0.1])), groups, stride))
        c, s = out, (s + 2 * padding - kernel) // stride + 1
    linear = draw(st.booleans())
    if not linear:  # the logits are the pooled map of a last conv with one channel per class
        layers.append(conv(classes, 1))
    spec = ArchSpec(tuple(layers), head=draw(st.sampled_from(["gap", "flatten"])) if linear else "gap",
                    hidden=tuple(draw(st.lists(st.integers(1, 24), max_size=2))) if linear else (),
                    head_dropout=draw(st.sampled_from([0.0, 0.2])), head_bias=draw(st.booleans()), linear=linear,
                    in_channels=in_channels, image_size=side, num_classes=classes)
    validate(spec)
    return spec


def hooked_macs(spec: ArchSpec) -> int:
    """MACs of one image's forward pass counted on the built model: every Conv2d output
    element costs (in/groups)*k*k multiply-adds, every Linear output in_features."""
    model = build_model(spec).eval()
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(count)
    with torch.no_grad():
        logits = model(torch.zeros(1, spec.in_channels, spec.image_size, spec.image_size))
    assert logits.shape == (1, spec.num_classes)
    return total


@settings(PROPERTY, max_examples=200)
@given(specs())
def test_drawn_spec_json_round_trip_is_exact(spec):
    text = spec.to_json()
    assert ArchSpec.from_json(text) == spec
    assert ArchSpec.from_json(text).to_json() == text
    assert ArchSpec.from_dict(json.loads(text)) == spec


@settings(PROPERTY, max_examples=120)
@given(specs())
def test_drawn_spec_counts_match_the_built_model(spec):
    """Parameters, MACs and peak int8 RAM (the whole model's, and each layer's on its own
    module, skip tensors included: tests/ram.py) against the built model."""
    from ram import traced_peak
    assert param_count(spec) == torch_count(spec)
    assert macs(spec) == hooked_macs(spec)
    assert peak_ram(spec) == traced_peak(build_model(spec), (spec.in_channels, spec.image_size, spec.image_size))
    model = build_model(spec)
    for i, (layer, cin, s_in, cout, s_out) in enumerate(walk(spec)):
        if layer.kind in ("res", "mbconv"):
            assert layer.live_bytes(cin, s_in, cout, s_out) == traced_peak(model.features[i], (cin, s_in, s_in)), layer


# --- the commands: presets and space ---------------------------------------------------------------
def test_presets_command_prints_the_exact_counts(capsys):
    from budgetnas.cli import main
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["preset", "params", "MACs"]
    printed = {line.split()[0]: (int(line.split()[1].replace(",", "")), int(line.split()[2].replace(",", "")))
               for line in lines[1:]}
    # the parameter counts the README states, and MACs counted on each built model
    assert {k: p for k, (p, _) in printed.items()} == {"A": 8_762, "B": 24_048, "C": 12_400, "D": 9_798,
                                                       "E": 421_642}
    assert {k: m for k, (_, m) in printed.items()} == {k: hooked_macs(PRESETS[k].spec) for k in printed}


def test_space_command_counts_what_it_samples(capsys):
    import re

    from budgetnas.cli import main
    budget, n, seed = 5000, 300, 3
    assert main(["space", "--budget", str(budget), "--samples", str(n), "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    m = re.search(r"^budget 5,000: (\d+)/(\d+) sampled candidates within budget \(([\d.]+)%\)", out, re.M)
    within, total, share = int(m[1]), int(m[2]), float(m[3])
    # the same draws, counted here: the random sampler with that seed, one spec per trial
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = []
    for _ in range(n):
        trial = study.ask()
        drawn.append(sample_spec(trial, named_space("default"), budget))  # the space it samples unless told
        study.tell(trial, 0.0)
    inside = [param_count(spec) for spec in drawn if param_count(spec) <= budget]
    assert all(torch_count(spec) <= budget for spec in drawn if param_count(spec) <= budget)  # built: within
    assert (within, total) == (len(inside), n) and share == round(100 * len(inside) / n, 1)
    assert 0 < within < n  # both kinds occur, so the count means something
    s = budget_use_summary(budget, n, seed)
    assert (s["within"], s["n"]) == (within, total)
    hist = [int(m[1]) for m in re.finditer(r"^ +\d+- *\d+% +(\d+)", out, re.M)]
    assert hist == s["histogram"] == [sum(1 for p in inside if min(9, int(10 * p / budget)) == b) for b in range(10)]


@pytest.mark.parametrize("side", [1, 2, 5])
def test_every_block_variant_counts_its_live_tensors(side):
    """Each residual and inverted-residual variant on its own (every step of it may be the
    peak: the squeeze-excite one on the smallest maps), against the traced module."""
    from ram import traced_peak
    from budgetnas.arch import MBConv, Residual
    blocks = [Residual(out, stride) for out in (8, 12) for stride in (1, 2)]
    blocks += [MBConv(out, t, k, stride, se) for out in (8, 12) for t in (1, 3) for k in (3, 7) for stride in (1, 2)
               for se in (False, True)]
    for block in blocks:
        spec = ArchSpec((conv(8), block), head="gap", image_size=side)
        (_, cin, s_in, cout, s_out), = list(walk(spec))[1:]
        module = build_model(spec).features[1]
        assert block.live_bytes(cin, s_in, cout, s_out) == traced_peak(module, (cin, s_in, s_in)), block
        assert param_count(spec) == torch_count(spec) and macs(spec) == hooked_macs(spec), block
