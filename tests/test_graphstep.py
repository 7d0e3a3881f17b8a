"""The training step without host-device syncs (#25): on CPU the loop trains bit-identically
to the loop before the change; the device step (what a CUDA graph records) trains like
torch's optimizers and schedules; on a GPU, where one is visible, nothing inside the
step waits for the device and the captured step is replayed."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from budgetnas.arch.build import build_model
from budgetnas.space.presets import PRESETS
from budgetnas.train import Recipe
from budgetnas.train.graphstep import UPDATES, DeviceStep, schedule_tables
from budgetnas.train.loop import make_optimizer, make_scheduler, train
from budgetnas.train.recipe import OPTIMIZERS, SCHEDULES

from reference_loop import train as reference_train

CUDA = torch.cuda.is_available()


def subset(data, n: int = 640):
    return dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n],
                               val_x=data.val_x[:300], val_y=data.val_y[:300],
                               test_x=data.test_x[:300], test_y=data.test_y[:300])


def net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(PRESETS["A"].spec)


RECIPES = {
    "augmented adamw onecycle": Recipe(lr=0.01, rotate=10, translate=0.1, label_smoothing=0.1, grad_clip=1.0),
    "sgd cosine, flips": Recipe(optimizer="sgd", lr=0.05, schedule="cosine", hflip=True, weight_decay=5e-4),
    "adam constant": Recipe(optimizer="adam", lr=0.003, schedule="constant", batch_size=32),
}


@pytest.mark.parametrize("name", RECIPES)
def test_cpu_training_is_bit_identical_to_the_loop_before_the_change(small_data, name):
    """Random numbers now come from a generator on the batch's device: on CPU the same
    draws in the same order, so the same weights to the last bit."""
    data, recipe = subset(small_data), dataclasses.replace(RECIPES[name], epochs=2)
    got, want = net(), net()
    torch.manual_seed(7)  # dropout draws from the global generator
    a = train(got, data, recipe, seed=3, eval_points=2, bf16=False)
    torch.manual_seed(7)
    b = reference_train(want, data, recipe, seed=3, eval_points=2, bf16=False)
    for (k, x), (_, y) in zip(got.state_dict().items(), want.state_dict().items()):
        assert torch.equal(x, y), k
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert a.step == "eager"


def eager_steps(model, data, recipe, total, gen):
    """The classic step (torch's fused optimizer and scheduler), as train() runs it."""
    import torch.nn.functional as F

    from budgetnas.data.augment import augment
    opt, bs = make_optimizer(model, recipe), min(recipe.batch_size, len(data.train_x))
    sched = make_scheduler(opt, recipe, total)
    perm = torch.randperm(len(data.train_x), generator=gen)
    for step in range(total):
        idx = perm[step * bs:(step + 1) * bs]
        xb = augment(data.train_x.index_select(0, idx), recipe.rotate, recipe.translate, data.background, gen,
                     recipe.hflip).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(xb), data.train_y.index_select(0, idx), label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), recipe.grad_clip)
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("optimizer", sorted(UPDATES))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_the_device_step_trains_like_torchs_optimizer_and_schedule(small_data, optimizer, schedule):
    """What a CUDA graph records, run eagerly on CPU: 10 steps from the same weights with
    the same batches and draws end where torch's own optimizer and schedule do. In
    float64, so that the comparison checks the arithmetic, not float32 rounding (which
    Adam amplifies in parameters whose gradient is near 0)."""
    lr = OPTIMIZERS[optimizer].lr[0] * 3 if OPTIMIZERS[optimizer].lr else 0.003
    recipe = Recipe(optimizer=optimizer, schedule=schedule, lr=lr, rotate=5, translate=0.05, grad_clip=2.0,
                    weight_decay=1e-3, batch_size=32)
    data, total = subset(small_data), 10
    data = dataclasses.replace(data, train_x=data.train_x.double())
    a, b = net(1).double(), net(1).double()
    start = {k: v.clone() for k, v in a.state_dict().items()}
    a.to(memory_format=torch.channels_last).train()
    b.to(memory_format=torch.channels_last).train()
    torch.manual_seed(9)  # dropout draws from the global generator
    eager_steps(a, data, recipe, total, torch.Generator().manual_seed(5))
    torch.manual_seed(9)
    gen = torch.Generator().manual_seed(5)
    step = DeviceStep(b, data, recipe, total, torch.device("cpu"), torch.channels_last, gen)
    step.new_epoch(torch.randperm(len(data.train_x), generator=gen))
    for _ in range(total):
        step.run()
    moved = 0.0
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if x.is_floating_point():
            assert torch.allclose(x, y, rtol=1e-6, atol=1e-7), (k, (x - y).abs().max().item())
            moved += (x - start[k]).abs().sum().item()
    assert moved > 1  # it trained
    assert step.k.item() == total and step.in_epoch.item() == total and step.loss_sum.item() > 0


def test_schedule_tables_follow_the_torch_schedule():
    recipe = Recipe(lr=0.02)  # adamw, onecycle: lr from max/25 up to max and down; beta1 0.95 -> 0.85 -> 0.95
    lrs, moms = schedule_tables(recipe, 40, torch.device("cpu"))
    assert lrs[0].item() == pytest.approx(0.02 / 25)
    assert lrs.max().item() == pytest.approx(0.02)
    assert lrs[-1].item() < 1e-5
    assert moms[0].item() == pytest.approx(0.95) and moms.min().item() == pytest.approx(0.85)
    flat, _ = schedule_tables(dataclasses.replace(recipe, schedule="constant"), 5, torch.device("cpu"))
    assert flat.tolist() == pytest.approx([0.02] * 5)


# --- on a GPU (skipped where none is visible) ----------------------------------------------
gpu = pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")


@gpu
@pytest.mark.parametrize("capture", [False, True])
def test_no_host_device_sync_between_reports_on_cuda(small_data, capture):
    """Under torch.cuda.set_sync_debug_mode('error') any sync inside a step raises."""
    data = subset(small_data).to("cuda")
    recipe = Recipe(rotate=10, translate=0.1, grad_clip=1.0, hflip=True, epochs=2)
    try:
        result = train(net(), data, recipe, device="cuda", eval_points=2, capture=capture, sync_debug="error")
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.step == ("captured" if capture else "eager")


@gpu
def test_captured_and_eager_steps_reach_the_same_accuracy(small_data):
    data = small_data.to("cuda")
    accs = {}
    for capture in (False, True):
        accs[capture] = [train(net(s), data, Recipe(lr=0.01), device="cuda", seed=s, capture=capture).test_acc
                         for s in range(3)]
    mean = lambda v: sum(v) / len(v)
    assert abs(mean(accs[True]) - mean(accs[False])) < 0.02, accs
