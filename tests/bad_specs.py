"""Bad-input cases for specs and export manifests (merged into tests/test_bad_input.py's table).

CASES: (id, argv after 'budgetnas', extra environment, text the one stderr line must
contain); argv may use {S} (a copy of the study folder), {mnist}, {root}, {afile}, and
{specs}: the folder make() filled. make(folder) writes the inputs the cases read.

Every case is refused by the schema (budgetnas/arch/kinds/__init__.py for specs,
export/bundle.py's MANIFEST_KEYS for manifests) before any data loads or any count is
made: exit 2 at once, never training (a manifest's budget "lots" once trained and then
threw the network away)."""
from __future__ import annotations

import json
from pathlib import Path

from budgetnas.export import FORMAT
from budgetnas.space.presets import PRESETS

TRAIN = ("--epochs", "1", "--data-dir", "{mnist}")
GOOD = PRESETS["A"].spec.to_dict()


def spec_with(layer0: dict | None = None, **top) -> dict:
    """Preset A's spec with its first layer's keys and the top keys changed."""
    return {**GOOD, **top, "layers": [{**GOOD["layers"][0], **(layer0 or {})}, *GOOD["layers"][1:]]}


# file name under {specs} -> its text
SPECS = {
    "out-str.json": json.dumps(spec_with({"out": "8"})),
    "kernel-null.json": json.dumps(spec_with({"kernel": None})),
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "a-list.json": json.dumps([GOOD]),
    "unknown-key.json": json.dumps(spec_with({"width": 3})),
    "unknown-top-key.json": json.dumps(spec_with(colour="red")),
    "bool-out.json": json.dumps(spec_with({"out": True})),
    "nan-dropout.json": json.dumps(spec_with({"dropout": float("nan")})),
    "out-huge.json": json.dumps(spec_with({"out": 10 ** 12})),
    "image-size-huge.json": json.dumps(spec_with(image_size=10 ** 9)),
    "hidden-junk.json": json.dumps(spec_with(hidden=[[{"a": [1]}]])),
    "kind-object.json": json.dumps(spec_with({"kind": {"name": "conv"}})),
    "digits.json": json.dumps(GOOD).replace('"image_size": 28', '"image_size": ' + "9" * 5000),
    "groups-not-dividing.json": json.dumps(spec_with({"groups": 3})),
}
# export folder under {specs} -> its manifest.json text (None: no spec.json beside it)
MANIFEST = {"format": FORMAT, "title": "t", "budget": 5000, "recipe": PRESETS["A"].recipe.to_dict(),
            "data": {"dataset": "mnist"}, "files": {}}
EXPORTS = {
    "manifest-list": json.dumps([MANIFEST]),
    "manifest-budget-lots": json.dumps({**MANIFEST, "budget": "lots"}),
    "manifest-recipe-string": json.dumps({**MANIFEST, "recipe": "fast"}),
    "manifest-recipe-lr-string": json.dumps({**MANIFEST, "recipe": {**MANIFEST["recipe"], "lr": "high"}}),
    "manifest-unknown-optimizer": json.dumps({**MANIFEST, "recipe": {**MANIFEST["recipe"], "optimizer": "magic"}}),
    "manifest-image-size-string": json.dumps({**MANIFEST, "data": {"dataset": "mnist", "image_size": "28"}}),
    "manifest-deep": '{"format": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "manifest-files-escape": json.dumps({**MANIFEST, "files": {"../../etc/passwd": {"sha256": "0" * 64}}}),
    "no-spec-json": json.dumps(MANIFEST),
}
BIG = 9 << 20  # bytes of the oversized spec: over the 8 MiB any spec.json may have

CASES: list[tuple] = [
    ("spec-out-is-a-string", ("train", "{specs}/out-str.json", *TRAIN), {},
     'out-str.json: spec layer 0 (conv): out must be a whole number from 1 to 65,536 (got "8")'),
    ("spec-kernel-null", ("train", "{specs}/kernel-null.json", *TRAIN), {},
     "kernel-null.json: spec layer 0 (conv): kernel must be an odd whole number from 1 to 31 (got null)"),
    ("spec-nested-100000-deep", ("train", "{specs}/deep.json", *TRAIN), {},
     "deep.json: spec is nested too deeply to be a spec: pass a spec.json made by budgetnas"),
    ("spec-is-a-list", ("train", "{specs}/a-list.json", *TRAIN), {},
     "a-list.json: a spec is a JSON object with a 'layers' list (got a list of 1)"),
    ("spec-unknown-layer-key", ("train", "{specs}/unknown-key.json", *TRAIN), {},
     'unknown-key.json: spec layer 0 (conv): unknown key "width": remove it (the keys are out, kernel, padding'),
    ("spec-unknown-top-key", ("train", "{specs}/unknown-top-key.json", *TRAIN), {},
     'unknown-top-key.json: spec: unknown key "colour": remove it'),
    ("spec-bool-for-int", ("train", "{specs}/bool-out.json", *TRAIN), {},
     "bool-out.json: spec layer 0 (conv): out must be a whole number from 1 to 65,536 (got true)"),
    ("spec-nan-dropout", ("train", "{specs}/nan-dropout.json", *TRAIN), {},
     "nan-dropout.json: spec layer 0 (conv): dropout must be a number from 0 to below 1 (got NaN)"),
    ("spec-out-huge", ("train", "{specs}/out-huge.json", *TRAIN), {},
     "out-huge.json: spec layer 0 (conv): out must be a whole number from 1 to 65,536 (got 1000000000000)"),
    ("spec-image-size-huge", ("train", "{specs}/image-size-huge.json", *TRAIN), {},
     "image-size-huge.json: spec: image_size must be a whole number from 1 to 4,096 (got 1000000000)"),
    ("spec-hidden-nested-junk", ("train", "{specs}/hidden-junk.json", *TRAIN), {},
     "hidden-junk.json: spec: hidden must be a list of at most 16 whole numbers from 1 to 65,536 (got a list of 1)"),
    ("spec-kind-an-object", ("train", "{specs}/kind-object.json", *TRAIN), {},
     "kind-object.json: spec layer 0: kind must be one of 'avgpool', 'conv', 'mbconv', 'pool', 'res' (got an object)"),
    ("spec-number-of-5000-digits", ("train", "{specs}/digits.json", *TRAIN), {},
     "digits.json: spec holds a number of over 4,300 digits"),
    ("spec-groups-not-dividing", ("train", "{specs}/groups-not-dividing.json", *TRAIN), {},
     "spec layer 0 (conv): groups (3) must divide its 1 input and"),
    ("spec-file-huge", ("train", "{specs}/huge.json", *TRAIN), {},
     "huge.json: 9 MiB is too large for a spec.json (at most 8 MiB): pass one made by budgetnas"),
    ("manifest-is-a-list", ("train", "{specs}/manifest-list", *TRAIN), {},
     "manifest-list/manifest.json: a manifest is a JSON object, not a list of 1: export again"),
    ("manifest-budget-lots", ("train", "{specs}/manifest-budget-lots", *TRAIN), {},
     "manifest-budget-lots/manifest.json: key 'budget' must be a whole number >= 1 or null (got \"lots\")"),
    ("manifest-recipe-not-an-object", ("train", "{specs}/manifest-recipe-string", *TRAIN), {},
     "manifest-recipe-string/manifest.json: key 'recipe' must be an object or null (got \"fast\")"),
    ("manifest-recipe-lr-a-string", ("train", "{specs}/manifest-recipe-lr-string", *TRAIN), {},
     "manifest-recipe-lr-string/manifest.json: key 'recipe.lr' must be a number or null (got \"high\")"),
    ("manifest-recipe-unknown-optimizer", ("train", "{specs}/manifest-unknown-optimizer", *TRAIN), {},
     "manifest-unknown-optimizer/manifest.json: key 'recipe': unknown optimizer 'magic'"),
    ("manifest-image-size-a-string", ("train", "{specs}/manifest-image-size-string", *TRAIN), {},
     "key 'data.image_size' must be a whole number from 8 to 1,024 or null (got \"28\")"),
    ("manifest-nested-100000-deep", ("train", "{specs}/manifest-deep", *TRAIN), {},
     "manifest-deep/manifest.json: not valid JSON (nested too deeply): export again"),
    ("manifest-file-outside-the-folder", ("train", "{specs}/manifest-files-escape", *TRAIN), {},
     "key 'files.../../etc/passwd' must be a file of the folder with its sha256"),
    ("manifest-export-without-spec-json", ("train", "{specs}/no-spec-json", *TRAIN), {},
     "no-spec-json has no spec.json: export it again, or pass a spec.json"),
]


def make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SPECS.items():
        (folder / name).write_text(text)
    with open(folder / "huge.json", "w") as f:  # a valid start, then megabytes of blanks
        f.write(json.dumps(GOOD) + " " * BIG)
    for name, text in EXPORTS.items():
        (folder / name).mkdir()
        (folder / name / "manifest.json").write_text(text)
        if name != "no-spec-json":
            (folder / name / "spec.json").write_text(json.dumps(GOOD))
