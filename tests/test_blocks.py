"""The residual, inverted-residual, stride-2 conv and average-pool kinds end to end: a
network of all of them trained on real MNIST, BatchNorm folded for evaluation, and its
export (standalone model.py in a fresh interpreter, TorchScript, ONNX, int8 with its
accuracy measured) matching the trained model; their one-line summaries."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from budgetnas.arch import (ArchSpec, AvgPool, MBConv, POOL, Residual, conv, layer_table, param_count, peak_ram,
                            summary)
from budgetnas.arch.build import build_model
from budgetnas.export import data_record, export_bundle, load_export
from budgetnas.export.int8 import MAX_DROP, calibration_sample, unavailable
from budgetnas.train.loop import evaluate, folded, train
from budgetnas.train.recipe import Recipe

pytestmark = pytest.mark.slow
# every new kind: a stride-2 conv, a residual block with and without projection, an average
# pool, inverted residuals with and without skip, squeeze-excite, kernels 3/5/7
SPEC = ArchSpec((conv(8), Residual(8), conv(12, stride=2), Residual(16, 2), AvgPool(), MBConv(16, 3, 5, 1, True),
                 MBConv(20, 2, 7, 2, False), MBConv(20, 1, 3, 1, True), POOL), head="flatten")


def test_the_summary_and_the_layer_table_name_every_block():
    assert summary(SPEC.to_dict()) == "8 r8 12/2 r16/2 A m16:5x3se m20:7x2/2 m20x1se P | flat"
    assert [row["layer"] for row in layer_table(SPEC)][1:9] == [
        "res 3x3 8->8 +BN +ReLU, 3x3 +BN, + identity +ReLU", "conv 3x3/2 8->12 +BN +ReLU",
        "res 3x3/2 12->16 +BN +ReLU, 3x3 +BN, + 1x1/2 proj +ReLU", "avgpool 2x2",
        "mbconv t3 1x1 16->48, dw 5x5, SE 4, 1x1 ->16 + skip", "mbconv t2 1x1 16->32, dw 7x7/2, 1x1 ->20",
        "mbconv t1 dw 3x3, SE 5, 1x1 ->20 + skip", "maxpool 2x2"]
    assert ArchSpec.from_json(SPEC.to_json()) == SPEC


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory):
    torch.manual_seed(0)
    net = build_model(SPEC)
    result = train(net, small_data, Recipe(optimizer="adamw", lr=1e-2, batch_size=32, epochs=2),
                   device=torch.device("cpu"), seed=0)
    out = tmp_path_factory.mktemp("blocks")
    int8_data = None if unavailable() else (calibration_sample(small_data.train_x), small_data.test_x,
                                            small_data.test_y)
    manifest = export_bundle(out, SPEC, net.state_dict(), {"data": data_record("mnist"),
                                                          "test_acc": result.test_acc}, int8_data=int8_data)
    return net, result, out, manifest


def test_a_net_of_every_new_block_learns_and_folds_its_batchnorms(trained, small_data):
    net, result, _, _ = trained
    assert result.test_acc > 0.85  # 2,000 images, 2 epochs
    fused = folded(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())  # every pair named and folded
    x = small_data.test_x[:256]
    with torch.inference_mode():
        assert torch.allclose(fused(x), net.eval()(x), atol=1e-4)
    assert evaluate(net, small_data.test_x, small_data.test_y) == pytest.approx(result.test_acc, abs=2e-4)


def test_every_export_format_matches_the_trained_net(trained, small_data, mnist_dir, tmp_path):
    net, result, out, manifest = trained
    assert manifest["params"] == param_count(SPEC) and manifest["ram"] == peak_ram(SPEC)
    checks = manifest["checks"]
    assert max(checks[k] for k in ("weights.pt", "model.py", "model.ts")) <= 1e-5
    assert checks["model.onnx"] is None or checks["model.onnx"] <= 1e-4
    bundle = load_export(out)
    with torch.inference_mode():
        assert torch.allclose(bundle.model(small_data.test_x[:64]), net.eval()(small_data.test_x[:64]), atol=1e-5)
    # the standalone model.py, in an isolated interpreter (no budgetnas), on the real test set
    run = subprocess.run([sys.executable, "-I", str(out / "model.py"), str(mnist_dir)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    acc = float(re.search(r"test accuracy ([\d.]+)%", run.stdout)[1])
    assert abs(acc - 100 * result.test_acc) <= 0.05
    if manifest.get("int8"):
        int8 = manifest["int8"]
        print("int8", {k: int8[k] for k in ("float_onnx_test_acc", "int8_test_acc", "agreement")})
        assert int8["ok"] is True and int8["float_onnx_test_acc"] - int8["int8_test_acc"] <= MAX_DROP
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
