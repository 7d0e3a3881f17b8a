"""The trainer's speed settings keep it learning: bf16 autocast, fused optimizers,
batched evaluation, the default thread count."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from budgetnas.run import runtime as cli
from budgetnas.train.recipe import Recipe
from budgetnas.arch.build import build_model, literal_order
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec, POOL, conv
from budgetnas.train.loop import evaluate, folded, make_optimizer, train


@pytest.fixture(scope="module")
def quick_data(small_data):
    """small_data with 2,000 test images (evaluation is not what these tests time)."""
    return dataclasses.replace(small_data, test_x=small_data.test_x[:2000], test_y=small_data.test_y[:2000])


def _train_b(data, bf16: bool, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(PRESETS["B"].spec)
    recipe = Recipe("adam", 0.01, "onecycle", 64, 0.0, grad_clip=1.0, epochs=2)
    return train(model, data, recipe, seed=seed, bf16=bf16)


def test_bf16_autocast_learns_like_fp32(quick_data):
    fp32, bf16 = _train_b(quick_data, bf16=False), _train_b(quick_data, bf16=True)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert bf16.test_acc > 0.85  # chance is 0.10; fp32 reaches ~0.89 on these 2,000 images
    assert abs(bf16.test_acc - fp32.test_acc) < 0.03


def test_bf16_keeps_weights_fp32(quick_data):
    torch.manual_seed(0)
    model = build_model(PRESETS["B"].spec)
    train(model, dataclasses.replace(quick_data, train_x=quick_data.train_x[:256], train_y=quick_data.train_y[:256]),
          Recipe(schedule="constant", epochs=1), bf16=True, eval_points=1)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_are_fused_on_cpu(name):
    model = build_model(PRESETS["A"].spec)
    opt = make_optimizer(model, Recipe(optimizer=name, lr=0.01))
    assert opt.defaults.get("fused") is True
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_evaluate_counts_every_image(quick_data):
    torch.manual_seed(0)
    model = build_model(PRESETS["A"].spec).eval()
    x, y = quick_data.val_x[:777], quick_data.val_y[:777]  # not a multiple of the batch size
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).sum().item() / len(x)
    assert evaluate(model, x, y, channels_last=False) == pytest.approx(expected)
    assert not model.training  # evaluate restores the mode it found
    model.train()
    evaluate(model, x, y)
    assert model.training


@pytest.mark.parametrize("spec", [PRESETS["A"].spec, PRESETS["B"].spec, PRESETS["C"].spec,
                                  ArchSpec((conv(8), conv(8, groups=8), POOL, conv(16)), head="gap")],
                         ids=["A conv bias", "B no bias", "C 1x1 convs", "depthwise with BN"])
def test_folded_batchnorm_is_the_same_function_and_leaves_the_model_alone(quick_data, spec):
    torch.manual_seed(0)
    model = build_model(spec)
    small = dataclasses.replace(quick_data, train_x=quick_data.train_x[:1024], train_y=quick_data.train_y[:1024])
    train(model, small, Recipe("adam", 0.01, "constant", 64, 0.0))  # running statistics far from 0 and 1
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    net = folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) and model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    x, y = quick_data.val_x[:500], quick_data.val_y[:500]
    with torch.no_grad():
        want = model.eval()(x)
        got = net(x)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert evaluate(model, x, y) == pytest.approx((want.argmax(1) == y).float().mean().item(), abs=1 / len(x))


@pytest.mark.parametrize("idle, workers, expected", [(2.0, 1, 2), (1.6, 1, 2), (2.0, 2, 1), (1.0, 1, 1), (0.2, 1, 1),
                                                     (0.0, 2, 1)])
def test_default_threads_leave_busy_cores_alone(monkeypatch, idle, workers, expected):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cli, "idle_cores", lambda: idle)
    assert cli.default_threads(workers) == expected


def test_default_threads_fall_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cli, "idle_cores", lambda: None)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert cli.default_threads(1) == 2
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert cli.default_threads(1) == 1


def test_idle_cores_reads_this_machine():
    idle = cli.idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= (cli.os.cpu_count() or 1) + 1e-9


@pytest.mark.parametrize("images", [64, 128, 192, 256, 320])
def test_onecycle_runs_on_a_few_steps(quick_data, images):
    """1-5 steps of OneCycle (4 steps at a 25% warm-up once divided by zero)."""
    small = dataclasses.replace(quick_data, train_x=quick_data.train_x[:images], train_y=quick_data.train_y[:images],
                                val_x=quick_data.val_x[:200], val_y=quick_data.val_y[:200],
                                test_x=quick_data.test_x[:200], test_y=quick_data.test_y[:200])
    torch.manual_seed(0)
    result = train(build_model(PRESETS["A"].spec), small, Recipe(schedule="onecycle", batch_size=64), eval_points=1)
    assert 0.0 <= result.test_acc <= 1.0 and result.history[0]["loss"] > 0


@pytest.mark.parametrize("preset", ["A", "B", "D"])
def test_pool_before_relu_is_the_same_network(preset):
    """Blocks without dropout run their max pool before the ReLU: outputs and gradients
    equal the spec's literal order (conv, BN, ReLU, pool), state_dict keys unchanged;
    blocks with dropout (D) keep the pool as its own layer."""
    from torch import nn

    torch.manual_seed(0)
    model = build_model(PRESETS[preset].spec).train()
    literal = literal_order(model)
    fused = sum(isinstance(getattr(m, "pool", None), nn.MaxPool2d) for m in model.features)
    kept = sum(isinstance(m, nn.MaxPool2d) for m in model.features)
    pools = sum(l.kind == "pool" for l in PRESETS[preset].spec.layers)
    assert fused + kept == pools and (fused == 0 if preset == "D" else kept == 0)
    assert sum(isinstance(m, nn.MaxPool2d) for m in literal[0]) == pools
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in literal.modules())
    assert [p.data_ptr() for p in literal.parameters()] == [p.data_ptr() for p in model.parameters()]
    x = torch.randn(8, 1, 28, 28)
    torch.manual_seed(1)
    out = model(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    ref = literal(x)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert all(k.startswith(("features.", "head.")) and ".pool" not in k for k in model.state_dict())
