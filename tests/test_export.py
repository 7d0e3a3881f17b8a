"""export: a real search's best trial -> bundle; model.py reproduces the stored test
accuracy in a fresh process without budgetnas; TorchScript and ONNX match; errors."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from budgetnas.cli import main
from budgetnas.config import ConfigError
from budgetnas.data.sources.idx import REGISTRY
from budgetnas.arch.build import standalone_source
from budgetnas.export import BUNDLE_FILES, FORMATS, build_loaded, load_export, resolve_weights, select_trial, sha256
from budgetnas.arch import ArchSpec, param_count

pytestmark = pytest.mark.slow
STUDY = "exp"
UNAVAILABLE = {f.file for f in FORMATS if f.unavailable()}  # formats this environment cannot write


@pytest.fixture(scope="module")
def searched(tmp_path_factory, mnist_dir):
    """A real 2-trial search on 2,000 training images (weights kept by the search)."""
    root = tmp_path_factory.mktemp("study")
    storage = f"sqlite:///{root / 'exp.db'}"
    rc = main(["search", "--budget", "8000", "--trials", "2", "--train-limit", "2000", "--val-size", "1000",
               "--data-dir", str(mnist_dir), "--study", STUDY, "--storage", storage, "--no-progress",
               "--seed", "0"])
    assert rc == 0
    import optuna
    study = optuna.load_study(study_name=STUDY, storage=storage)
    return SimpleNamespace(root=root, storage=storage, study=study)


@pytest.fixture(scope="module")
def bundle(searched, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "best"
    rc = main(["export", "--study", STUDY, "--storage", searched.storage, "--rank", "1", "--out", str(out)])
    assert rc == 0
    return out


def _best_trial(study):
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    return max(done, key=lambda t: (t.user_attrs["val_acc"], -t.user_attrs["params"], -t.number))


def test_export_rank_1_writes_a_self_describing_bundle(searched, bundle):
    best = _best_trial(searched.study)
    manifest = json.loads((bundle / "manifest.json").read_text())
    here = [n for n in BUNDLE_FILES if n not in UNAVAILABLE]  # a format whose optional package is absent is skipped
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*here, "model.int8.onnx", "manifest.json"])
    assert manifest["trial"] == best.number and manifest["study"] == STUDY
    spec = ArchSpec.from_json((bundle / "spec.json").read_text())
    assert spec.to_dict() == best.user_attrs["spec"] == manifest["spec"]
    assert manifest["params"] == param_count(spec) == best.user_attrs["params"]
    assert manifest["macs"] == best.user_attrs["macs"] and manifest["budget"] == 8000
    assert manifest["val_acc"] == best.user_attrs["val_acc"] and manifest["test_acc"] == best.user_attrs["test_acc"]
    assert manifest["seeds"] == {"trial": best.user_attrs["seed"], "sampler": 0, "split": 0}
    assert manifest["recipe"] == best.user_attrs["recipe"]
    assert manifest["data"]["md5"] == REGISTRY["mnist"].md5 and manifest["data"]["train_limit"] == 2000
    for lib in ("torch", "optuna", "budgetnas", "python", "onnxruntime"):
        assert manifest["versions"][lib], lib
    for name in here:
        assert manifest["files"][name]["sha256"] == sha256(bundle / name)
    checks = manifest["checks"]
    assert checks["weights.pt"] == checks["model.py"] == checks["model.ts"] == 0.0
    assert checks["model.onnx"] is not None and checks["model.onnx"] <= 1e-4
    # weights are a plain state_dict that loads with weights_only=True
    state = torch.load(bundle / "weights.pt", weights_only=True)
    assert set(state) == set(torch.load(best.user_attrs["weights"], weights_only=True))


def test_model_py_is_standalone_and_reproduces_stored_test_accuracy(bundle, mnist_dir, tmp_path):
    source = (bundle / "model.py").read_text()
    assert "budgetnas import" not in source and "import budgetnas" not in source
    spec = ArchSpec.from_json((bundle / "spec.json").read_text())
    assert standalone_source(spec) in source  # the classes are copied verbatim
    manifest = json.loads((bundle / "manifest.json").read_text())
    # a fresh, isolated interpreter (-I: no PYTHONPATH, no cwd on sys.path) where
    # importing budgetnas fails, in a folder that is not the repository
    code = (
        "import sys, json, importlib.util\n"
        "sys.modules['budgetnas'] = None\n"
        f"spec = importlib.util.spec_from_file_location('model', {str(bundle / 'model.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"net = m.load({str(bundle / 'weights.pt')!r})\n"
        "from pathlib import Path\n"
        f"d = Path({str(mnist_dir)!r})\n"
        "x = m.preprocess(m.read_idx(m._find(d, 't10k-images-idx3-ubyte')))\n"
        "y = m.read_idx(m._find(d, 't10k-labels-idx1-ubyte')).long()\n"
        "print(json.dumps({'acc': m.accuracy(net, x, y), 'n': len(y),\n"
        "                  'budgetnas': [k for k in sys.modules if k.startswith('budgetnas') and sys.modules[k]]}))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["n"] == 10_000 and got["budgetnas"] == []
    assert abs(got["acc"] - manifest["test_acc"]) <= 0.0005  # +-0.05 percentage points
    # and as a script: python model.py DATA_DIR
    script = subprocess.run([sys.executable, "-I", str(bundle / "model.py"), str(mnist_dir)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr
    assert f"test accuracy {100 * manifest['test_acc']:.2f}%" in script.stdout
    # a network trained on own data has no idx files: python model.py FILE.npz (x_test, y_test)
    import numpy as np
    from budgetnas.data.sources.idx import FILES, parse_idx, verify_files, REGISTRY
    raw = verify_files(REGISTRY["mnist"], mnist_dir)
    np.savez(tmp_path / "own.npz", x_test=parse_idx(raw[FILES[2]]), y_test=parse_idx(raw[FILES[3]]))
    script = subprocess.run([sys.executable, "-I", str(bundle / "model.py"), str(tmp_path / "own.npz")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr
    assert f"test accuracy {100 * manifest['test_acc']:.2f}%" in script.stdout


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_and_onnx_match_pytorch_on_real_images(bundle, small_data):
    loaded = load_export(bundle)
    x = small_data.test_x[:1000]
    with torch.inference_mode():
        ref = loaded.model(x)
        ts = torch.jit.load(str(bundle / "model.ts"))(x)
    assert torch.equal(ts, ref)
    if not os.environ.get("CI"):
        pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
    assert logits.shape == (1000, 10)
    assert (logits - ref).abs().max().item() <= 1e-4
    assert (logits.argmax(1) == ref.argmax(1)).all()


def test_load_export_rejects_a_changed_file(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    assert load_export(copy).spec.to_dict() == json.loads((bundle / "spec.json").read_text())
    state = torch.load(copy / "weights.pt", weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 1.0
    torch.save(state, copy / "weights.pt")
    with pytest.raises(ConfigError, match="weights.pt: sha256 does not match"):
        load_export(copy)


def test_export_by_trial_number(searched, tmp_path, capsys):
    number = min(t.number for t in searched.study.trials if t.state.name == "COMPLETE")
    rc = main(["export", "--study", STUDY, "--storage", searched.storage, "--trial", str(number),
               "--out", str(tmp_path / "t")])
    assert rc == 0
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["trial"] == number
    assert f"exported trial {number} of study" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["unknown study", "unknown trial", "rank too big", "out under a file",
                                  "out is a file", "trial and rank"])
def test_export_errors_are_one_line(searched, tmp_path, capsys, case):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    args = {"unknown study": ["--study", "nope", "--rank", "1"],
            "unknown trial": ["--study", STUDY, "--trial", "99"],
            "rank too big": ["--study", STUDY, "--rank", "50"],
            "out under a file": ["--study", STUDY, "--rank", "1", "--out", str(a_file / "sub")],
            "out is a file": ["--study", STUDY, "--rank", "1", "--out", str(a_file)],
            "trial and rank": ["--study", STUDY, "--rank", "1", "--trial", "0"]}[case]
    out_default = ["--out", str(tmp_path / "never")] if "--out" not in args else []
    rc = main(["export", "--storage", searched.storage, *args, *out_default])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("budgetnas: error: ")
    assert "Traceback" not in err
    assert not (tmp_path / "never").exists()
    expected = {"unknown study": "no study 'nope'", "unknown trial": "has no trial 99",
                "rank too big": f"only {sum(t.state.name == 'COMPLETE' for t in searched.study.trials)} completed", "out under a file": "cannot create --out",
                "out is a file": "is a file", "trial and rank": "not allowed with"}[case]
    assert expected in err


def test_export_of_a_missing_storage_is_one_line(tmp_path, capsys):
    rc = main(["export", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "o")])
    assert rc == 2 and "no study storage" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def _record(number, state, **attrs):
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), user_attrs=attrs)


def test_select_trial_refuses_trials_without_weights():
    trials = [_record(0, "COMPLETE", val_acc=0.9, params=100), _record(1, "PRUNED", val_acc=0.5, params=100),
              _record(2, "PRUNED", params=9000, rejected="over budget"), _record(3, "FAIL"),
              _record(4, "COMPLETE", val_acc=0.95, params=200)]
    assert select_trial(trials, "s").number == 4
    assert select_trial(trials, "s", rank=2).number == 0
    assert select_trial(trials, "s", rank=1, sort="params").number == 0
    for number, state in ((1, "pruned"), (2, "rejected"), (3, "failed")):
        with pytest.raises(ConfigError, match=f"trial {number} of study 's' is {state}, not complete"):
            select_trial(trials, "s", trial=number)
    with pytest.raises(ConfigError, match="--rank must be 1 or more"):
        select_trial(trials, "s", rank=0)


def test_resolve_weights_looks_in_the_artifacts_folder(tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "trial_7.pt").write_bytes(b"w")
    assert resolve_weights("/gone/trial_7.pt", [moved], 7) == moved / "trial_7.pt"
    with pytest.raises(ConfigError, match="pass --artifacts FOLDER"):
        resolve_weights("/gone/trial_7.pt", [tmp_path], 7)
    with pytest.raises(ConfigError, match="no stored weights"):
        resolve_weights(None, [moved], 7)


@pytest.mark.parametrize("name", ["A", "C", "D", "E"])  # GAP+hidden, no linear head (C, D), flatten (E)
def test_every_head_kind_exports_and_checks_itself(name, tmp_path):
    from budgetnas.export import data_record, export_bundle
    from budgetnas.arch.build import build_model
    from budgetnas.space.presets import PRESETS
    spec = PRESETS[name].spec
    torch.manual_seed(0)
    net = build_model(spec)
    for m in net.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    manifest = export_bundle(tmp_path, spec, net.state_dict(), {"data": data_record("mnist"), "preset": name})
    assert manifest["params"] == param_count(spec)
    checks = manifest["checks"]
    assert max(checks[k] for k in ("weights.pt", "model.py", "model.ts")) <= 1e-5
    assert checks["model.onnx"] is None or checks["model.onnx"] <= 1e-4
    bundle = load_export(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(bundle.model(x), net.eval()(x))


# --- ONNX is optional at run time: a user who removed onnx still gets every other file ---------


def test_export_without_onnx_writes_every_other_file_and_says_so(searched, tmp_path):
    from procs import WITHOUT_ONNX, cli_env, run
    out = tmp_path / "no-onnx"
    got = run([sys.executable, "-c", WITHOUT_ONNX, "export", "--study", STUDY, "--storage", searched.storage,
               "--out", str(out)], cwd=tmp_path, env=cli_env())
    assert got.returncode == 0, got.stdout + got.stderr
    assert "Traceback" not in got.stdout + got.stderr
    notes = [line for line in got.stdout.splitlines() if line.startswith("note: ")]
    assert notes[0] == ("note: model.onnx skipped: the onnx package is not installed; "
                        "add it with: pip install onnx onnxruntime")
    assert sorted(notes[1:]) == sorted(f"note: {n} skipped: {next(f for f in FORMATS if f.file == n).unavailable()}"
                                       for n in UNAVAILABLE)
    assert sorted(p.name for p in out.iterdir()) == sorted([n for n in BUNDLE_FILES if n != "model.onnx"
                                                            and n not in UNAVAILABLE] + ["manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and "model.onnx" in manifest["skipped"]
    assert manifest["checks"]["model.ts"] == 0.0 and manifest["checks"]["model.onnx"] is None
    assert load_export(out).manifest["val_acc"] == manifest["val_acc"]  # every listed file checks out


def test_a_failing_self_check_keeps_the_measured_files_and_says_so(searched, tmp_path, capsys, monkeypatch):
    """An exported file that no longer reproduces the network (here: model.ts replaced by
    another network's TorchScript before the check) fails the export with one line."""
    from budgetnas.export import formats as export
    real = export.save_torchscript

    def broken(net, path, example):
        how = real(net, path, example)
        other = copy.deepcopy(net)
        with torch.no_grad():
            next(other.parameters()).add_(0.5)  # corrupt what is on disk, as a broken exporter would
        real(other, path, example)
        return how

    monkeypatch.setattr(export, "save_torchscript", broken)
    out = tmp_path / "broken"
    rc = main(["export", "--study", STUDY, "--storage", searched.storage, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "model.ts: logits differ from the network by" in err
    assert f"the trained network is kept in {out}: weights.pt, spec.json and manifest.json" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and sorted(manifest["files"]) == ["spec.json", "weights.pt"]
    assert manifest["val_acc"] == _best_trial(searched.study).user_attrs["val_acc"]


def test_a_search_that_cannot_write_a_trial_s_weights_keeps_them_and_its_measurements(
        tmp_path, mnist_dir, capsys, monkeypatch):
    """The weights folder fails as on a full disk: the measurements are stored first, the
    weights go to a temporary folder recorded with the trial, and one line says where."""
    import tempfile

    import optuna
    from budgetnas.study import objective
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    real = objective.save_atomic

    def save(state, path):
        if path.parent == tmp_path / "weights":
            raise OSError(28, "No space left on device")
        return real(state, path)

    monkeypatch.setattr(objective, "save_atomic", save)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    rc = main(["search", "--budget", "8000", "--trials", "1", "--train-limit", "1000", "--val-size", "500",
               "--data-dir", str(mnist_dir), "--study", "full", "--storage", storage,
               "--artifacts", str(tmp_path / "weights"), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, lines
    kept = list((tmp_path / "tmp").glob("budgetnas-kept-*/trial_0.pt"))
    assert len(kept) == 1
    assert lines[0].startswith(f"budgetnas: error: cannot write the weights of trial 0 to {tmp_path / 'weights'} "
                               f"(No space left on device): they are kept in {kept[0]}, its measurements (val ")
    trial = optuna.load_study(study_name="full", storage=storage).trials[0]
    assert trial.user_attrs["val_acc"] > 0.1 and trial.user_attrs["test_acc"] > 0.1
    assert trial.user_attrs["weights"] == str(kept[0])
    # strict: every key of the kept weights fits the trial's spec
    build_loaded(ArchSpec.from_dict(trial.user_attrs["spec"]), torch.load(kept[0], weights_only=True), "kept")
