"""Files made by an earlier release still work: a study and an export written by budgetnas
0.1.0 (tests/fixtures/v0.1.0, README there) load, rank, export, resume and train with
this one. Only public entry points are used (the CLI, budgetnas.load_export), so the
test holds whatever the package's layout."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from budgetnas.cli import main

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "v0.1.0"


@pytest.fixture()
def old(tmp_path):
    """A copy of the 0.1.0 files (the committed ones are never opened for writing)."""
    for name in ("old.db", "old-weights", "export"):
        src = FIXTURE / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, tmp_path / name)
    return tmp_path


def args(old: Path) -> list[str]:
    return ["--study", "old", "--storage", f"sqlite:///{old / 'old.db'}"]


def test_an_old_study_still_ranks_the_same(old, capsys):
    assert main(["leaderboard", *args(old), "--format", "json", "--all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ranked = [e["trial"] for e in doc["entries"] if e["rank"] is not None]
    assert ranked == [1, 2, 0, 5]  # trial 1 first: measured by 2 runs (its re-run is trial 6)
    first = doc["entries"][0]
    assert first["n_runs"] == 2 and first["rerun_of"] is None and first["params"] == 4374
    assert doc["counts"] == {"complete": 4, "rejected": 2, "rerun": 1}
    assert [e["trial"] for e in doc["entries"] if e["state"] == "rejected"] == [3, 4]


def test_an_old_study_still_exports_from_its_stored_weights(old, mnist_dir, capsys):
    out = old / "again"
    assert main(["export", *args(old), "--artifacts", str(old / "old-weights"), "--out", str(out),
                 "--data-dir", str(mnist_dir)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    before = json.loads((old / "export" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["trial"] == before["trial"] == 1
    for key in ("spec", "params", "macs", "ram", "val_acc", "test_acc", "recipe", "seeds", "runs"):
        assert manifest[key] == before[key], key
    assert manifest["files"]["weights.pt"]["sha256"] == before["files"]["weights.pt"]["sha256"]
    assert manifest["checks"]["model.py"] == 0.0 and manifest["checks"]["model.onnx"] < 1e-4


def test_an_old_study_resumes_with_the_same_command(old, mnist_dir, capsys):
    """Its pinned settings (written by 0.1.0) accept the same command: one more trial."""
    rc = main(["search", "--budget", "5000", "--trials", "5", "--train-limit", "1000", "--val-size", "500",
               "--confirm-top", "1", "--reruns", "1", *args(old), "--artifacts", str(old / "old-weights"),
               "--data-dir", str(mnist_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "7 trials so far" in out
    assert main(["leaderboard", *args(old), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sum(doc["counts"].get(s, 0) for s in ("complete", "pruned")) == 5


def test_an_old_export_still_loads_and_trains(old, mnist_dir, capsys):
    import budgetnas
    bundle = budgetnas.load_export(old / "export")  # every sha256 checked
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    spec = importlib.util.spec_from_file_location("old_model", old / "export" / "model.py")
    standalone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone)  # the model.py 0.1.0 wrote, without budgetnas
    with torch.inference_mode():
        assert torch.equal(bundle.model(x), standalone.load(old / "export" / "weights.pt")(x))
    out = old / "trained"
    assert main(["train", str(old / "export"), "--epochs", "1", "--train-limit", "500", "--data-dir", str(mnist_dir),
                 "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["parent"]["trial"] == 1
    assert manifest["spec"] == bundle.manifest["spec"] and manifest["recipe"]["optimizer"] == \
        bundle.manifest["recipe"]["optimizer"]
