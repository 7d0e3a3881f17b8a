"""Train one model for N epochs on resident tensors; evaluate. Knows nothing of trials.

``report(point, val_acc)`` is called ``eval_points`` times per epoch; whatever it raises
(a pruning signal, say) ends training and propagates to the caller.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import Recipe
from .data import Data, augment

EVAL_BATCH = 1000
INTERMEDIATE_VAL = 2000  # images of the val set used for reports inside an epoch
# `budgetnas train SPEC.json` without an exported recipe. On a 19.8k-param net, 1 epoch
# of full MNIST: lr 4e-3 98.60% val, 8e-3 98.80% (README, "Train"); 5e-3 leaves room
# for longer runs.
DEFAULT_RECIPE = Recipe("adamw", 5e-3, "onecycle", 64, 1e-4)


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    val_acc: float
    test_acc: float
    seconds: float  # wall time of training and evaluation
    epochs: int
    history: list[dict] = field(default_factory=list)  # per epoch: val_acc, test_acc, loss, seconds


def resolve_device(name: str = "auto") -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from .config import ConfigError
            raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch: use --device cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = model.parameters()
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total_steps, pct_start=0.25)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool = True) -> float:
    """Top-1 accuracy in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        correct += (model(xb).argmax(1) == y[i:i + EVAL_BATCH]).sum().item()
    model.train(was_training)
    return correct / max(1, len(x))


def eval_steps(steps: int, points: int) -> list[int]:
    """The step numbers (1-based, within an epoch) after which validation is reported."""
    return sorted({max(1, round(steps * k / points)) for k in range(1, points + 1)})


def train(model: nn.Module, data: Data, recipe: Recipe, *, device: torch.device | str = "cpu", seed: int = 0,
          report: Callable[[int, float], None] | None = None, eval_points: int = 4,
          progress: Callable[[int, int, float | None], None] | None = None,
          channels_last: bool = True, test_each_epoch: bool = False,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``model`` (already built and seeded) on data.train_*; returns final val and
    test accuracy. data must already live on ``device``. ``on_epoch`` gets each epoch's
    history record (epoch, val_acc, loss, seconds; test_acc where measured) as it ends."""
    t0 = time.perf_counter()
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format).train()
    n = len(data.train_x)
    bs = min(recipe.batch_size, n)
    steps = n // bs  # drop the last partial batch: a batch of 1 breaks BatchNorm
    total = steps * recipe.epochs
    opt = make_optimizer(model, recipe)
    sched = make_scheduler(opt, recipe, total)
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
            xb = augment(data.train_x[idx], recipe.rotate, recipe.translate, data.background, gen)
            xb = xb.contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(xb), data.train_y[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
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
                       epochs=recipe.epochs, history=history)
