"""Train one model for N epochs on resident tensors; evaluate. Knows nothing of trials.

``report(point, val_acc)`` is called ``eval_points`` times per epoch (fewer on an epoch
of fewer steps: report_count); whatever it raises (a pruning signal, say) ends training
and propagates to the caller. Why each speed choice was made, with measurements:
docs/PERFORMANCE.md.
"""
from __future__ import annotations

import math
import time
from copy import deepcopy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..data.augment import augment
from .graphstep import CapturedSteps, DeviceStep, capturable
from .recipe import OPTIMIZERS, SCHEDULES, Recipe

if TYPE_CHECKING:
    from ..data.load import Data

EVAL_BATCH = 256  # images per evaluation batch on CPU (fits the caches better than 1000)
EVAL_BATCH_GPU = 2000
INTERMEDIATE_VAL = 2000  # images of the val set used for reports inside an epoch


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    val_acc: float
    test_acc: float
    seconds: float  # wall time of training and evaluation
    epochs: int
    history: list[dict] = field(default_factory=list)  # per epoch: val_acc, test_acc, loss, seconds
    precision: str = "fp32"  # of the training forward passes: "fp32" or "bf16" (autocast)
    step: str = "eager"  # "captured": the training step replayed from a CUDA graph (train/graphstep.py)


def bf16_native(device: torch.device) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so autocast pays."""
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(device: torch.device, bf16: bool | None) -> bool:
    """bf16 autocast of the training forward pass. Default (None): on CPUs with native
    bf16, where it costs less time per epoch at the same accuracy; fp32 elsewhere.
    Weights, optimizer state, loss and evaluation stay fp32."""
    return bf16_native(device) if bf16 is None else bf16


def exact_fp32(device: torch.device) -> None:
    """On CUDA, fp32 convolutions and matmuls in full precision, not TF32 (PyTorch's
    default for cuDNN convolutions): with TF32 the test accuracy measured on a GPU
    disagreed with the same exported weights evaluated on a CPU, and these nets are too
    small for TF32 to pay."""
    if device.type != "cuda":
        return
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:  # torch < 2.9
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer (train/recipe.py: OPTIMIZERS)."""
    return OPTIMIZERS[recipe.optimizer].make(list(model.parameters()), recipe)


def make_scheduler(opt: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    """The recipe's schedule (train/recipe.py: SCHEDULES), or None for a constant lr."""
    make = SCHEDULES[recipe.schedule].make
    return None if make is None else make(opt, recipe, total_steps)


def folded(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with each BatchNorm folded into the conv before
    it (the same function up to float rounding): evaluation then skips a pass over every
    conv's output. A block names its pairs in ``bn_pairs`` ((conv attribute, BN attribute), ...)."""
    with torch.no_grad():
        copy = deepcopy(model).eval()
        for block in copy.modules():
            for conv_name, bn_name in getattr(block, "bn_pairs", ()):
                conv, bn = getattr(block, conv_name), getattr(block, bn_name)
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None:
                    setattr(block, conv_name, fuse_conv_bn_eval(conv, bn))
                    setattr(block, bn_name, nn.Identity())
    return copy


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool = True) -> float:
    """Top-1 accuracy in [0, 1] (fp32; one host sync at the end). On CPU each BatchNorm
    is folded into a copy of the model first (a pass less over every conv's output); on
    a GPU, where that pass is cheap and the copy is not, the model itself is evaluated
    in eval mode (the same function up to float rounding), then put back in its mode."""
    cpu = x.device.type == "cpu"
    was_training = model.training
    net = folded(model) if cpu else model.eval()
    if channels_last and cpu:
        net = net.to(memory_format=torch.channels_last)
    batch = EVAL_BATCH if cpu else EVAL_BATCH_GPU
    try:
        with torch.inference_mode():
            correct = torch.zeros((), dtype=torch.long, device=x.device)
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                correct += (net(xb).argmax(1) == y[i:i + batch]).sum()
    finally:
        if not cpu:
            model.train(was_training)
    return correct.item() / max(1, len(x))


def eval_steps(steps: int, points: int) -> list[int]:
    """The step numbers (1-based, within an epoch) after which validation is reported."""
    return sorted({max(1, round(steps * k / points)) for k in range(1, points + 1)})


def epoch_steps(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch on ``n`` images: the last partial batch is dropped (a
    batch of 1 breaks BatchNorm)."""
    return n // min(batch_size, n)


def report_count(n: int, recipe: Recipe, eval_points: int) -> int:
    """How many times train() calls ``report`` on ``n`` training images: ``eval_points``
    per epoch, fewer when an epoch has fewer steps than that (tiny data, large batches)."""
    return recipe.epochs * len(eval_steps(epoch_steps(n, recipe.batch_size), eval_points))


def train(model: nn.Module, data: "Data", recipe: Recipe, *, device: torch.device | str = "cpu", seed: int = 0,
          report: Callable[[int, float], None] | None = None, eval_points: int = 4,
          progress: Callable[[int, int, float | None], None] | None = None,
          channels_last: bool = True, test_each_epoch: bool = False, bf16: bool | None = None,
          on_epoch: Callable[[dict], None] | None = None, capture: bool | None = None,
          sync_debug: str | int = 0) -> TrainResult:
    """Train ``model`` (already built and seeded) on data.train_*; returns final val and
    test accuracy. data must already live on ``device``. ``on_epoch`` gets each epoch's
    history record (epoch, val_acc, loss, seconds; test_acc where measured) as it ends.

    Speed: channels_last (default) for the convs and max pools; ``bf16`` autocast where
    the CPU has native bf16 (use_bf16); a fused optimizer; batches gathered with
    index_select from tensors resident on ``device``; random numbers drawn on ``device``;
    the loss read back to the host only at report points, so on CUDA nothing between two
    reports waits for the device. ``capture`` (default: on CUDA): the step recorded once
    in a CUDA graph and replayed (train/graphstep.py). ``sync_debug`` ("warn" or "error",
    CUDA only): torch.cuda.set_sync_debug_mode while steps run, off at report points
    and while a graph is recorded (once per run): how the tests and scripts/gpu-check.sh
    show that no step waits for the device. The caller sets threads and the allocator
    (run/runtime.py)."""
    t0 = time.perf_counter()
    device = torch.device(device)
    bf16 = use_bf16(device, bf16)
    exact_fp32(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format).train()
    n = len(data.train_x)
    bs = min(recipe.batch_size, n)
    steps = epoch_steps(n, recipe.batch_size)
    total = steps * recipe.epochs
    gen = torch.Generator(device=device).manual_seed(seed)
    graph = None
    if capture is not False and capturable(recipe, device) and not bf16:
        graph = CapturedSteps(DeviceStep(model, data, recipe, total, device, memory_format, None))
    else:
        opt = make_optimizer(model, recipe)
        sched = make_scheduler(opt, recipe, total)
        params = list(model.parameters())
    points = eval_steps(steps, eval_points)
    inner_val = (data.val_x[:INTERMEDIATE_VAL], data.val_y[:INTERMEDIATE_VAL])
    history: list[dict] = []
    point_no = 0
    done = 0

    def check_syncs(on: bool) -> None:
        if sync_debug and device.type == "cuda":
            torch.cuda.set_sync_debug_mode(sync_debug if on else 0)

    try:
        for epoch in range(recipe.epochs):
            # a curriculum keeps its easy-to-hard order for the first epoch only
            perm = (torch.arange(n, device=device) if data.ordered and epoch == 0 else
                    torch.randperm(n, generator=gen, device=device))
            if graph is not None:
                graph.step.new_epoch(perm)
                loss_sum = graph.step.loss_sum
            else:
                loss_sum = torch.zeros((), device=device)
            check_syncs(True)
            for step in range(1, steps + 1):
                if graph is not None:
                    graph()
                else:
                    idx = perm[(step - 1) * bs: step * bs]
                    xb = augment(data.train_x.index_select(0, idx), recipe.rotate, recipe.translate,
                                 data.background, gen, recipe.hflip)
                    xb = xb.contiguous(memory_format=memory_format)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = model(xb)
                    loss = F.cross_entropy(logits.float(), data.train_y.index_select(0, idx),
                                           label_smoothing=recipe.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if recipe.grad_clip > 0:
                        nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                    opt.step()
                    if sched is not None:
                        sched.step()
                    loss_sum += loss.detach()
                done += 1
                if step in points:
                    check_syncs(False)
                    mean_loss = (loss_sum / step).item()
                    if not math.isfinite(mean_loss):
                        raise Diverged(f"loss became {mean_loss} in epoch {epoch + 1}, step {step}")
                    last = step == steps
                    vx, vy = (data.val_x, data.val_y) if last else inner_val
                    acc = evaluate(model, vx, vy, channels_last)
                    point_no += 1
                    if report is not None:
                        report(point_no, acc)
                    if progress is not None:
                        progress(done, total, acc)
                    check_syncs(step < steps)
                elif progress is not None and step % 20 == 0:
                    progress(done, total, None)
            # the epoch's last step is always a report point, on the full validation set
            history.append({"epoch": epoch + 1, "val_acc": acc, "loss": (loss_sum / steps).item(),
                            "seconds": time.perf_counter() - t0})
            if test_each_epoch and epoch < recipe.epochs - 1:
                history[-1]["test_acc"] = evaluate(model, data.test_x, data.test_y, channels_last)
            if on_epoch is not None and epoch < recipe.epochs - 1:
                on_epoch(history[-1])
        mode = "eager" if graph is None else graph.mode
    finally:
        check_syncs(False)
        if graph is not None:
            graph.close()
    test_acc = evaluate(model, data.test_x, data.test_y, channels_last)
    history[-1]["test_acc"] = test_acc
    if on_epoch is not None:
        on_epoch(history[-1])
    return TrainResult(val_acc=history[-1]["val_acc"], test_acc=test_acc, seconds=time.perf_counter() - t0,
                       epochs=recipe.epochs, history=history, precision="bf16" if bf16 else "fp32", step=mode)
