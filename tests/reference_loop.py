"""The training loop and augmentation as they were before the CUDA work (#25), kept
verbatim (commit e8f3ce8) so that tests/test_graphstep.py can check that today's CPU
path trains bit-identically to them: same seed, same weights, same accuracy."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from budgetnas.train.loop import Diverged, TrainResult, epoch_steps, eval_steps, evaluate, INTERMEDIATE_VAL
from budgetnas.train.loop import make_optimizer, make_scheduler, use_bf16, exact_fp32
from budgetnas.train.recipe import Recipe


def augment(x: torch.Tensor, rotate: float, translate: float, background: float | tuple[float, ...],
            generator: torch.Generator | None = None, hflip: bool = False) -> torch.Tensor:
    """Random rotation (uniform +-rotate degrees) and shift (uniform +-translate of the
    side) of a whole batch in one affine_grid/grid_sample call. Pixels that come from
    outside the image get the background value (one per channel). ``hflip``: each image
    mirrored left-right with probability 1/2 (drawn before the affine part)."""
    n = x.shape[0]
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    if rotate <= 0 and translate <= 0:
        return x
    if isinstance(background, tuple):
        background = torch.tensor(background, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    u = torch.rand(n, 3, generator=generator, device="cpu").to(x.device, torch.float32) * 2 - 1
    angle = u[:, 0] * math.radians(rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in [-1, 1] coordinates: a shift of t * side is 2 * t there
    tx, ty = u[:, 1] * 2 * translate, u[:, 2] * 2 * translate
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background


def train(model: nn.Module, data: object, recipe: Recipe, *, device: torch.device | str = "cpu", seed: int = 0,
          report: Callable[[int, float], None] | None = None, eval_points: int = 4,
          progress: Callable[[int, int, float | None], None] | None = None,
          channels_last: bool = True, test_each_epoch: bool = False, bf16: bool | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``model`` (already built and seeded) on data.train_*; returns final val and
    test accuracy. data must already live on ``device``. ``on_epoch`` gets each epoch's
    history record (epoch, val_acc, loss, seconds; test_acc where measured) as it ends.

    Speed: channels_last (default) for the convs and max pools; ``bf16`` autocast where
    the CPU has native bf16 (use_bf16); a fused optimizer; batches gathered with
    index_select from tensors resident on ``device``; the loss read back to the host only
    at report points. The caller sets threads and the allocator (run/runtime.py)."""
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
    opt = make_optimizer(model, recipe)
    sched = make_scheduler(opt, recipe, total)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    points = eval_steps(steps, eval_points)
    inner_val = (data.val_x[:INTERMEDIATE_VAL], data.val_y[:INTERMEDIATE_VAL])
    history: list[dict] = []
    point_no = 0
    done = 0
    for epoch in range(recipe.epochs):
        # a curriculum keeps its easy-to-hard order for the first epoch only
        perm = torch.arange(n) if data.ordered and epoch == 0 else torch.randperm(n, generator=gen)
        perm = perm.to(device)
        loss_sum = torch.zeros((), device=device)
        for step in range(1, steps + 1):
            idx = perm[(step - 1) * bs: step * bs]
            xb = augment(data.train_x.index_select(0, idx), recipe.rotate, recipe.translate, data.background, gen,
                         recipe.hflip)
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
            elif progress is not None and step % 20 == 0:
                progress(done, total, None)
        # the epoch's last step is always a report point, on the full validation set
        history.append({"epoch": epoch + 1, "val_acc": acc, "loss": (loss_sum / steps).item(),
                        "seconds": time.perf_counter() - t0})
        if test_each_epoch and epoch < recipe.epochs - 1:
            history[-1]["test_acc"] = evaluate(model, data.test_x, data.test_y, channels_last)
        if on_epoch is not None and epoch < recipe.epochs - 1:
            on_epoch(history[-1])
    test_acc = evaluate(model, data.test_x, data.test_y, channels_last)
    history[-1]["test_acc"] = test_acc
    if on_epoch is not None:
        on_epoch(history[-1])
    return TrainResult(val_acc=history[-1]["val_acc"], test_acc=test_acc, seconds=time.perf_counter() - t0,
                       epochs=recipe.epochs, history=history, precision="bf16" if bf16 else "fp32")
