"""budgetnas train: presets and spec files train for real, print per-epoch accuracies and
leave a loadable export bundle; bad input is one line on stderr, exit 2."""
from __future__ import annotations

import json
import re

import pytest
import torch

from budgetnas.cli import main
from budgetnas.export import BUNDLE_FILES, FORMATS, build_loaded, load_export
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec
from budgetnas.space import stage_spec
from budgetnas.train.loop import evaluate
from budgetnas.train.recipe import DEFAULT_RECIPE

EPOCH_LINE = re.compile(r"epoch +(\d+)/(\d+) +loss [\d.]+ +val ([\d.]+)% +test ([\d.]+)%")


def _data_args(mnist_dir, limit: int) -> list[str]:
    return ["--train-limit", str(limit), "--val-size", "1000", "--data-dir", str(mnist_dir), "--no-progress"]


@pytest.mark.slow
def test_train_preset_b_writes_a_bundle_and_reports_accuracy(mnist_dir, small_data, tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["train", "--preset", "B", "--epochs", "1", "--out", str(out), *_data_args(mnist_dir, 2000)])
    stdout = capsys.readouterr().out
    assert rc == 0
    lines = EPOCH_LINE.findall(stdout)
    assert [(e, n) for e, n, _, _ in lines] == [("1", "1")]
    manifest = json.loads((out / "manifest.json").read_text())
    unavailable = {f.file for f in FORMATS if f.unavailable()}  # an optional package absent here
    assert sorted(manifest["files"]) == sorted([*(n for n in BUNDLE_FILES if n not in unavailable), "model.int8.onnx"])
    assert manifest["preset"] == "B" and manifest["params"] == 24_048
    assert manifest["recipe"] == {**PRESETS["B"].recipe.to_dict(), "epochs": 1}  # the preset's own recipe
    assert f"{100 * manifest['test_acc']:.2f}" == lines[0][3] and f"{100 * manifest['val_acc']:.2f}" == lines[0][2]
    assert manifest["test_acc"] > 0.5  # 2,000 images, one epoch: far above chance (0.1)
    assert manifest["data"]["train_size"] == 2000 and manifest["seeds"]["init"] == 0
    # the saved weights are the trained ones: the bundle reproduces the reported test accuracy
    bundle = load_export(out)
    assert evaluate(bundle.model, small_data.test_x, small_data.test_y) == pytest.approx(manifest["test_acc"], abs=5e-4)


@pytest.mark.slow
def test_train_spec_file_then_retrain_the_bundle(mnist_dir, tmp_path, capsys):
    spec = stage_spec(2, 1, [8, 12], True, "gap", 0, 0.0, 0.0)
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(spec.to_json())
    out = tmp_path / "tiny"
    rc = main(["train", str(spec_file), "--epochs", "2", "--lr", "0.01", "--out", str(out), "--budget", "5000",
               *_data_args(mnist_dir, 1000)])
    stdout = capsys.readouterr().out
    assert rc == 0
    assert [(e, n) for e, n, _, _ in EPOCH_LINE.findall(stdout)] == [("1", "2"), ("2", "2")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"] == {**DEFAULT_RECIPE.to_dict(), "lr": 0.01, "epochs": 2}  # default + override
    assert manifest["spec"] == spec.to_dict() and manifest["budget"] == 5000
    assert [h["epoch"] for h in manifest["history"]] == [1, 2] and all("test_acc" in h for h in manifest["history"])

    # an export folder as input: its spec and its recipe (with the new epochs)
    again = tmp_path / "again"
    rc = main(["train", str(out), "--epochs", "1", "--seed", "5", "--out", str(again), *_data_args(mnist_dir, 1000)])
    assert rc == 0
    m2 = json.loads((again / "manifest.json").read_text())
    assert m2["recipe"] == {**manifest["recipe"], "epochs": 1} and m2["seeds"]["init"] == 5
    assert m2["spec"] == manifest["spec"] and m2["parent"]["test_acc"] == manifest["test_acc"]
    assert not torch.equal(torch.load(again / "weights.pt", weights_only=True)["features.0.conv.weight"],
                           torch.load(out / "weights.pt", weights_only=True)["features.0.conv.weight"])


BAD_SPECS = {
    "not json": ("{layers: [", "not valid JSON"),
    "no layers": ('{"head": "gap"}', "'layers' list"),
    "unknown field": ('{"layers": [{"kind": "conv", "out": 8, "width": 3}]}',
                      'spec layer 0 (conv): unknown key "width": remove it'),
    "bad kind": ('{"layers": [{"kind": "conv", "out": 8}, {"kind": "dense", "out": 8}]}', "kind must be one of 'avgpool', 'conv', 'mbconv', 'pool', 'res'"),
    "no conv": ('{"layers": [{"kind": "pool"}]}', "at least one conv"),
    "too many pools": ('{"layers": [{"kind": "conv", "out": 4}' + ', {"kind": "pool"}' * 6 + "]}", "to nothing"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_malformed_spec_is_one_line_exit_2(tmp_path, capsys, case):
    text, expected = BAD_SPECS[case]
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(text)
    rc = main(["train", str(spec_file), "--epochs", "1", "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("budgetnas: error: ") and expected in err
    assert str(spec_file) in err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("case", ["missing file", "over budget", "spec and preset", "neither", "unknown preset",
                                  "no epochs", "export folder without manifest", "bad recipe override"])
def test_bad_train_input_is_one_line_exit_2(tmp_path, capsys, case):
    spec_file = tmp_path / "b.json"
    spec_file.write_text(PRESETS["B"].spec.to_json())
    args = {"missing file": [str(tmp_path / "nope.json"), "--epochs", "1"],
            "over budget": [str(spec_file), "--epochs", "1", "--budget", "20k"],
            "spec and preset": [str(spec_file), "--preset", "A", "--epochs", "1"],
            "neither": ["--epochs", "1"],
            "unknown preset": ["--preset", "Z", "--epochs", "1"],
            "no epochs": ["--preset", "A"],
            "export folder without manifest": [str(tmp_path), "--epochs", "1"],
            "bad recipe override": ["--preset", "A", "--epochs", "1", "--optimizer", "nope"]}[case]
    expected = {"missing file": "no such spec file", "over budget": "24,048 parameters, over --budget 20,000",
                "spec and preset": "either a spec", "neither": "either a spec", "unknown preset": "unknown preset 'Z'",
                "no epochs": "--epochs", "export folder without manifest": "not a budgetnas export",
                "bad recipe override": "unknown optimizer 'nope'"}[case]
    rc = main(["train", *args, "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("change,key", [({"budget": "lots"}, "'budget'"), ({"recipe": "fast"}, "'recipe'"),
                                        ({"data": {"dataset": ["mnist"]}}, "'data.dataset'")])
def test_a_bad_manifest_fails_before_any_data_loads_or_training(tmp_path, capsys, monkeypatch, change, key):
    """A manifest whose budget was "lots" once trained, then lost the network when the
    bundle divided by it: now its keys are checked before anything is loaded."""
    import budgetnas.data.load
    import budgetnas.train.loop
    from budgetnas.export import FORMAT

    def never(*args, **kwargs):
        raise AssertionError("reached after a bad manifest")

    monkeypatch.setattr(budgetnas.data.load, "load_data", never)
    monkeypatch.setattr(budgetnas.train.loop, "train", never)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "spec.json").write_text(PRESETS["A"].spec.to_json())
    (folder / "manifest.json").write_text(json.dumps({"format": FORMAT, "files": {}, **change}))
    rc = main(["train", str(folder), "--epochs", "1", "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"budgetnas: error: {folder / 'manifest.json'}: key {key} must be ")
    assert not (tmp_path / "never").exists()


def test_unwritable_out_is_one_line_exit_2(mnist_dir, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    rc = main(["train", "--preset", "A", "--epochs", "1", "--out", str(a_file / "sub"), *_data_args(mnist_dir, 500)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "cannot create --out" in err


# --- nothing a run measured is ever lost -----------------------------------------------------
def _epoch_accuracies(stdout: str) -> tuple[float, float]:
    (_, _, val, test), = EPOCH_LINE.findall(stdout)
    return float(val), float(test)


def _kept(folder, val: float, test: float) -> dict:
    """The measured files in ``folder``: the manifest's accuracies are the printed ones,
    and the weights are the trained network's."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (f"{100 * manifest['val_acc']:.2f}", f"{100 * manifest['test_acc']:.2f}") == (f"{val:.2f}", f"{test:.2f}")
    assert manifest["complete"] is False and manifest["history"] and manifest["recipe"]["epochs"] == 1
    spec = ArchSpec.from_json((folder / "spec.json").read_text())
    assert spec == PRESETS["A"].spec
    build_loaded(spec, torch.load(folder / "weights.pt", weights_only=True), "kept")  # strict: every key fits
    return manifest


@pytest.mark.slow
def test_a_failure_after_training_keeps_weights_spec_and_manifest(mnist_dir, small_data, tmp_path, capsys, monkeypatch):
    from budgetnas.export import formats as export

    def fail(*args, **kwargs):
        raise RuntimeError("injected: TorchScript could not be written")

    monkeypatch.setattr(export, "save_torchscript", fail)
    out = tmp_path / "a"
    rc = main(["train", "--preset", "A", "--epochs", "1", "--out", str(out), *_data_args(mnist_dir, 1000)])
    captured = capsys.readouterr()
    assert rc == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert "writing model.ts failed (RuntimeError: injected: TorchScript could not be written)" in lines[0]
    assert f"the trained network is kept in {out}: weights.pt, spec.json and manifest.json" in lines[0]
    val, test = _epoch_accuracies(captured.out)
    assert f"(measured: val {val:.2f}%, test {test:.2f}%)" in lines[0]
    manifest = _kept(out, val, test)
    bundle = load_export(out)  # the files the manifest lists check out (sha256) and load
    assert evaluate(bundle.model, small_data.test_x, small_data.test_y) == pytest.approx(manifest["test_acc"], abs=5e-4)
    assert not (out / "model.ts").exists() and not (out / "model.onnx").exists()


def _inject(monkeypatch, where: str) -> None:
    """Make one step after training fail: the record's data, the int8 images, the bundle's
    version list (before its first file), the final manifest write, the printed summary."""
    import budgetnas.cli.files as cli_files
    from budgetnas.export import bundle, trial

    def fail(*args, **kwargs):
        raise {"int8": MemoryError, "versions": AttributeError}.get(where, KeyError)("injected")

    if where == "manifest":  # the second manifest.json write (the first holds the measurements)
        real, seen = bundle._write_text, []

        def write(path, text):
            seen.append(path.name)
            if seen.count("manifest.json") == 2:
                raise OSError(28, "No space left on device")
            real(path, text)

        monkeypatch.setattr(bundle, "_write_text", write)
        return
    target = {"data": (bundle, "data_record"), "int8": (trial, "int8_inputs"), "versions": (bundle, "versions"),
              "summary": (cli_files, "print_bundle")}[where]
    monkeypatch.setattr(*target, fail)


@pytest.mark.slow
@pytest.mark.parametrize("where,expected", [
    ("data", "writing the bundle failed (KeyError: 'injected'); "),
    ("int8", "writing the bundle failed (MemoryError: injected); "),
    ("versions", "writing the bundle failed (AttributeError: injected); "),
    ("manifest", "writing manifest.json failed (OSError: [Errno 28] No space left on device); "),
    ("summary", "printing the summary failed (KeyError: 'injected'); the bundle in {out} is complete"),
])
def test_whatever_fails_after_training_the_network_and_its_measurements_are_on_disk(
        mnist_dir, tmp_path, capsys, monkeypatch, where, expected):
    _inject(monkeypatch, where)
    out = tmp_path / "a"
    rc = main(["train", "--preset", "A", "--epochs", "1", "--out", str(out), *_data_args(mnist_dir, 1000)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert expected.format(out=out) in lines[0], lines[0]
    val, test = _epoch_accuracies(captured.out)
    if where == "summary":  # the bundle is whole: it loads, every sha256 checked
        assert load_export(out).manifest["complete"] is True
        assert f"{100 * load_export(out).manifest['val_acc']:.2f}" == f"{val:.2f}"
        return
    assert f"the trained network is kept in {out}: weights.pt, spec.json and manifest.json (measured: " \
           f"val {val:.2f}%, test {test:.2f}%)" in lines[0]
    _kept(out, val, test)
    load_export(out)  # the files it lists check out


@pytest.mark.slow
def test_an_out_folder_that_fails_mid_write_keeps_the_network_in_a_temporary_folder(
        mnist_dir, tmp_path, capsys, monkeypatch):
    """The weights cannot be written where asked (a folder sits where the file must go:
    the write fails as on a full disk): they go to a temporary folder, named in one line."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "a"
    (out / "weights.pt.part").mkdir(parents=True)
    rc = main(["train", "--preset", "A", "--epochs", "1", "--out", str(out), *_data_args(mnist_dir, 1000)])
    captured = capsys.readouterr()
    assert rc == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"budgetnas: error: cannot write to {out} ("), captured.err
    kept = list((tmp_path / "tmp").glob("budgetnas-kept-*"))
    assert len(kept) == 1 and f"the trained network is kept in {kept[0]}:" in lines[0]
    _kept(kept[0], *_epoch_accuracies(captured.out))


@pytest.mark.slow
def test_train_without_onnx_writes_every_other_file_and_exits_0(mnist_dir, tmp_path):
    import sys

    from procs import WITHOUT_ONNX, cli_env, run
    out = tmp_path / "a"
    got = run([sys.executable, "-c", WITHOUT_ONNX, "train", "--preset", "A", "--epochs", "1", "--out", str(out),
               *_data_args(mnist_dir, 500)], cwd=tmp_path, env=cli_env())
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stdout + got.stderr
    assert "note: model.onnx skipped: the onnx package is not installed; add it with: pip install onnx onnxruntime" \
        in got.stdout.splitlines()
    assert sorted(json.loads((out / "manifest.json").read_text())["files"]) == \
        sorted(n for n in BUNDLE_FILES if n != "model.onnx" and n not in {f.file for f in FORMATS if f.unavailable()})
    load_export(out)
