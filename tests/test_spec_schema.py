"""The schema of specs and export manifests: every field of the spec and of every layer
kind refuses a wrong type, null, a value out of range and an unknown key with one
ConfigError naming the field (never another exception, never a hang), valid specs
still load and serialise byte for byte, and a manifest is checked key by key."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time

import optuna
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from budgetnas.arch import (ArchSpec, AvgPool, Conv, MBConv, Residual, conv, param_count, registry, separable,
                            validate)
from budgetnas.config import ConfigError
from budgetnas.export import FORMAT, read_manifest
from budgetnas.space import named_space, sample_spec
from budgetnas.space.presets import PRESETS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sampled() -> list[dict]:
    """Spec dicts of every preset and of 6 samples from each built-in space of blocks."""
    out = [p.spec.to_dict() for p in PRESETS.values()]
    for name in ("plain", "default", "resnet", "mobile"):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        for _ in range(6):
            trial = study.ask()
            out.append(sample_spec(trial, named_space(name), 25_000).to_dict())
            study.tell(trial, 0.0)
    out.append(ArchSpec((conv(8), AvgPool(), conv(16, stride=2), *separable(16, 24), MBConv(24, 2, 5, 2, True, 0.1),
                         Residual(32, 2, 0.2)), hidden=(32, 16), head="flatten", head_dropout=0.5,
                        in_channels=3, image_size=32, num_classes=7).to_dict())
    return out


VALID = _sampled()
KIND_OF = {layer["kind"] for spec in VALID for layer in spec["layers"]}

# --- valid specs are untouched ------------------------------------------------------------------


def test_the_base_specs_cover_every_kind():
    assert KIND_OF == set(registry()), KIND_OF


@pytest.mark.parametrize("i", range(len(VALID)))
def test_valid_specs_load_and_serialise_byte_for_byte(i):
    text = json.dumps(VALID[i], sort_keys=True)
    assert ArchSpec.from_json(text).to_json() == text


def test_a_0_1_0_pool_with_a_conv_s_keys_still_loads():
    """0.1.0 accepted (and ignored) a conv's keys on a pool; any other key is refused."""
    spec = {"layers": [{"kind": "conv", "out": 4}, {"kind": "pool", "out": 0, "kernel": 3, "padding": 1,
                                                    "bias": False, "bn": True, "act": True, "dropout": 0.0,
                                                    "groups": 1}]}
    assert ArchSpec.from_dict(spec).to_dict()["layers"][1] == {"kind": "pool"}
    spec["layers"][1]["stride"] = 2
    with pytest.raises(ConfigError, match=r'spec layer 1 \(pool\): unknown key "stride": remove it'):
        ArchSpec.from_dict(spec)


# --- one message per field ------------------------------------------------------------------------
WRONG = {  # a field's type -> values it must refuse whatever its range
    "int": [True, False, 1.0, "1", None, [1], {"a": 1}, 10 ** 30, -1],
    "float": [True, "0.1", None, float("nan"), float("inf"), [0.1], -0.5, 1.0, 10 ** 30],
    "bool": [1, 0, "true", None, [True]],
    "str": [1, None, ["gap"], "GAP"],
}
FIELDS = [(kind, f.name, f.type) for kind, cls in sorted(registry().items()) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("kind,name,ftype", FIELDS)
def test_every_layer_field_refuses_every_wrong_value_naming_it(kind, name, ftype):
    base = next(layer for spec in VALID for layer in spec["layers"] if layer["kind"] == kind)
    good = {"layers": [{"kind": "conv", "out": 4}, dict(base)]}
    for bad in WRONG[ftype]:
        spec = copy.deepcopy(good)
        spec["layers"][1][name] = bad
        with pytest.raises(ConfigError, match=rf"^spec layer 1 \({kind}\): {name} must be "):
            ArchSpec.from_dict(spec)


TOP = [f for f in dataclasses.fields(ArchSpec) if f.name != "layers"]


@pytest.mark.parametrize("field", TOP, ids=lambda f: f.name)
def test_every_spec_field_refuses_every_wrong_value_naming_it(field):
    wrong = ([1, None, "12", [1.5], [True], [0], [10 ** 12], [[1]], list(range(1, 40))]
             if field.type.startswith("tuple") else WRONG[field.type])
    for bad in wrong:
        with pytest.raises(ConfigError, match=rf"^spec: {field.name} must be "):
            ArchSpec.from_dict({**VALID[0], field.name: bad})


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r'^spec: unknown key "colour": remove it \(the keys are head, '):
        ArchSpec.from_dict({**VALID[0], "colour": 1})
    spec = copy.deepcopy(VALID[0])
    spec["layers"][0]["width"] = 3
    with pytest.raises(ConfigError, match=r'^spec layer 0 \(conv\): unknown key "width": remove it'):
        ArchSpec.from_dict(spec)


@pytest.mark.parametrize("change", [
    {"image_size": 10 ** 9}, {"in_channels": 10 ** 12}, {"num_classes": 10 ** 18}, {"hidden": [10 ** 12]},
    {"image_size": 10 ** 4000}, {"layers": [{"kind": "conv", "out": 10 ** 12}]},
    {"layers": [{"kind": "conv", "out": 65_536}] * 3},  # each in range, 77 billion parameters together
    {"layers": [{"kind": "res", "out": 8}] * 10_001},
])
def test_huge_values_are_refused_at_once(change):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        ArchSpec.from_dict({**VALID[0], **change})
    assert time.perf_counter() - t0 < 0.5 and "\n" not in str(e.value)


def test_a_spec_made_in_python_is_checked_like_one_read():
    with pytest.raises(ConfigError, match=r"spec layer 0 \(conv\): out must be a whole number"):
        validate(ArchSpec((Conv("8"),)))
    with pytest.raises(ConfigError, match=r"spec: head_dropout must be a number from 0 to below 1 \(got NaN\)"):
        validate(ArchSpec((Conv(8),), head_dropout=math.nan))


def test_deep_nesting_and_giant_numbers_in_json_are_one_line():
    for text, expected in (("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                           ('{"layers": [], "image_size": ' + "9" * 5000 + "}", "over 4,300 digits"),
                           ('{"layers": [{"out": ' + "[" * 50_000 + "]" * 50_000 + "}]}", "nested too deeply")):
        with pytest.raises(ConfigError, match=expected):
            ArchSpec.from_json(text)


# --- hypothesis: any junk anywhere is a spec or a ConfigError -----------------------------------------
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10 ** 30, max_value=10 ** 30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["conv", "pool", "res", "mbconv", "avgpool", "gap", "flatten"]) | st.integers(0, 70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def mutated(draw) -> dict:
    """A valid spec dict with 1-3 changes: a key of the spec or of one layer set to junk
    (or a key of another field's name, or a new key), a layer replaced or removed."""
    spec = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "layer", "layer", "layers"]))
        names = [f.name for cls in registry().values() for f in dataclasses.fields(cls)] + ["kind", "x"]
        if where == "top":
            spec[draw(st.sampled_from([f.name for f in TOP] + ["x"]))] = draw(JUNK)
        elif where == "layer" and any(isinstance(layer, dict) for layer in spec["layers"]):
            layer = draw(st.sampled_from([layer for layer in spec["layers"] if isinstance(layer, dict)]))
            layer[draw(st.sampled_from(names))] = draw(JUNK)
        elif spec["layers"]:
            i = draw(st.integers(0, len(spec["layers"]) - 1))
            if draw(st.booleans()):
                del spec["layers"][i]
            else:
                spec["layers"][i] = draw(JUNK)
    return spec


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_spec_is_a_valid_spec_or_one_config_error(d):
    try:
        spec = ArchSpec.from_dict(d)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
        return
    # accepted: a buildable spec whose counts are sane and whose JSON reads back the same
    assert 0 < param_count(spec) <= 10 ** 9
    assert ArchSpec.from_json(spec.to_json()) == spec


# --- manifests ------------------------------------------------------------------------------------
MANIFEST = {"format": FORMAT, "budget": 5000, "recipe": PRESETS["A"].recipe.to_dict(),
            "data": {"dataset": "mnist", "image_size": 28, "channels": 1, "fingerprint": "abc"},
            "study": "s", "trial": 3, "val_acc": 0.9, "test_acc": 0.8,
            "files": {"weights.pt": {"sha256": "0" * 64, "bytes": 1}}}


def _write(folder, manifest) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))


@pytest.mark.parametrize("change,expected", [
    ({"budget": "lots"}, "key 'budget' must be a whole number >= 1 or null (got \"lots\")"),
    ({"budget": 2.5}, "key 'budget' must be a whole number >= 1 or null (got 2.5)"),
    ({"budget": True}, "key 'budget' must be a whole number >= 1 or null (got true)"),
    ({"recipe": "fast"}, "key 'recipe' must be an object or null (got \"fast\")"),
    ({"recipe": {"lr": "high"}}, "key 'recipe.lr' must be a number or null (got \"high\")"),
    ({"recipe": {"batch_size": 6.4}}, "key 'recipe.batch_size' must be a whole number or null (got 6.4)"),
    ({"recipe": {"optimizer": ["adamw"]}}, "key 'recipe.optimizer' must be a string or null (got [\"adamw\"])"),
    ({"recipe": {"lr": -1}}, "key 'recipe': "),  # the recipe's own range check, its words
    ({"data": []}, "key 'data' must be an object or null (got [])"),
    ({"data": {"image_size": 10 ** 9}}, "key 'data.image_size' must be a whole number from 8 to 1,024 or null"),
    ({"data": {"channels": 2}}, "key 'data.channels' must be 1 or 3 or null (got 2)"),
    ({"val_acc": "90%"}, "key 'val_acc' must be a number from 0 to 1 or null (got \"90%\")"),
    ({"trial": -1}, "key 'trial' must be a whole number >= 0 or null (got -1)"),
    ({"files": None}, "key 'files' must be an object (file name: its sha256) (got null)"),
    ({"files": {"/etc/passwd": {"sha256": "0"}}}, "key 'files./etc/passwd' must be a file of the folder"),
    ({"files": {"weights.pt": "0" * 64}}, "key 'files.weights.pt' must be a file of the folder with its sha256"),
])
def test_a_manifest_key_of_the_wrong_type_is_one_line_naming_the_file_and_key(tmp_path, change, expected):
    _write(tmp_path / "e", {**MANIFEST, **change})
    with pytest.raises(ConfigError) as e:
        read_manifest(tmp_path / "e")
    assert str(e.value).startswith(f"{tmp_path / 'e' / 'manifest.json'}: ") and expected in str(e.value)
    assert "\n" not in str(e.value)


def test_a_valid_manifest_and_an_old_one_read(tmp_path):
    _write(tmp_path / "e", MANIFEST)
    assert read_manifest(tmp_path / "e") == MANIFEST
    _write(tmp_path / "old", {"format": FORMAT, "budget": None, "files": {}})  # keys absent or null: older bundles
    read_manifest(tmp_path / "old")


@pytest.mark.parametrize("text,expected", [
    ("[1, 2]", "a manifest is a JSON object, not [1, 2]"),
    ('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON (nested too deeply)"),
    ('{"format": 1' + "0" * 5000 + "}", "not valid JSON (a number of over 4,300 digits)"),
    ("{", "not valid JSON (Expecting property name"),
    ('{"format": "other/1"}', "format \"other/1\" is not 'budgetnas-export/1'"),
])
def test_a_manifest_that_is_not_a_manifest_is_one_line(tmp_path, text, expected):
    _write(tmp_path / "e", text)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        read_manifest(tmp_path / "e")


def test_a_huge_manifest_is_refused_unread(tmp_path):
    _write(tmp_path / "e", json.dumps(MANIFEST) + " " * (9 << 20))
    with pytest.raises(ConfigError, match=r"manifest.json: 9 MiB is too large for a manifest.json \(at most 8 MiB\)"):
        read_manifest(tmp_path / "e")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["budget", "recipe", "data", "files", "study", "trial", "val_acc", "test_acc"]),
       sub=st.sampled_from([None, "lr", "optimizer", "batch_size", "hflip", "dataset", "image_size", "weights.pt"]),
       junk=JUNK)
def test_junk_in_a_manifest_is_read_or_one_config_error(tmp_path, key, sub, junk):
    manifest = copy.deepcopy(MANIFEST)
    if sub and isinstance(manifest[key], dict):
        manifest[key][sub] = junk
    else:
        manifest[key] = junk
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    try:
        read_manifest(tmp_path)
    except ConfigError as e:
        assert "\n" not in str(e)
