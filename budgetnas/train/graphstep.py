"""The training step as device work only, replayed from a CUDA graph.

Everything one step reads is a tensor on the device: the epoch's permutation, the step
number (a counter on the device), the learning rate and momentum of every step (tables
made once from the recipe's own torch schedule: schedule_tables), the optimizer state.
One call of ``DeviceStep.run()`` picks the batch, augments it, runs forward, loss,
backward, gradient clipping and the optimizer update with this step's lr, and moves the
counter on; no Python value in it depends on the data. So the same call is recorded
once into a CUDA graph (after a few eager warm-up steps on a side stream, which are
real training steps) and then replayed: one launch per step instead of hundreds of
small kernels launched from Python.

The optimizer updates (UPDATES) are torch's AdamW, Adam and SGD (momentum, Nesterov)
written with foreach ops whose lr and momentum are device tensors, so that a replay
reads this step's values. Run eagerly (the CPU tests do), a DeviceStep trains like the
loop in train/loop.py with torch's optimizer and scheduler, up to float rounding. An
optimizer not in UPDATES trains eagerly (loop.py); so does any recipe whose capture
fails: said once per process.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import augment
from .recipe import OPTIMIZERS, SCHEDULES, Recipe

if TYPE_CHECKING:
    from ..data.load import Data

WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuDNN and cuBLAS set up their work areas)
ADAM_BETA2, ADAM_EPS = 0.999, 1e-8  # torch's defaults, as the recipe's Adam and AdamW use them


def schedule_tables(recipe: Recipe, total: int, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, momentum) of each of ``total`` steps on ``device`` (in the parameters' dtype): what the recipe's
    torch optimizer and schedule would use at each step (momentum: Adam's beta1 or SGD's
    momentum, which OneCycle cycles). Read off a stand-in optimizer stepped ``total``
    times, so every entry of SCHEDULES is followed exactly."""
    stand_in = [nn.Parameter(torch.zeros(1))]
    opt = OPTIMIZERS[recipe.optimizer].make(stand_in, recipe)
    make = SCHEDULES[recipe.schedule].make
    sched = None if make is None else make(opt, recipe, total)
    group = opt.param_groups[0]
    lrs, moms = [], []
    for _ in range(total):
        lrs.append(float(group["lr"]))
        moms.append(float(group["betas"][0] if "betas" in group else group.get("momentum", 0.0)))
        opt.step()  # no gradient: changes nothing, but the schedule expects it before its own step
        if sched is not None:
            sched.step()
    return torch.tensor(lrs, dtype=dtype, device=device), torch.tensor(moms, dtype=dtype, device=device)


def _adam(decoupled: bool) -> Callable:
    """torch's Adam (L2 weight decay) or AdamW (decoupled), amsgrad off, as foreach ops on
    device scalars."""
    def make(params: list[torch.Tensor], recipe: Recipe):
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        t = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
        wd = recipe.weight_decay

        def update(lr: torch.Tensor, beta1: torch.Tensor) -> None:
            grads = [p.grad for p in params]
            if wd and decoupled:
                torch._foreach_mul_(params, 1 - lr * wd)
            elif wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            t.add_(1)
            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, torch._foreach_mul(grads, 1 - beta1))
            torch._foreach_mul_(v, ADAM_BETA2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - ADAM_BETA2)
            step_size = lr / (1 - torch.pow(beta1, t))
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, torch.sqrt(1 - torch.pow(ADAM_BETA2, t)))
            torch._foreach_add_(denom, ADAM_EPS)
            step = torch._foreach_div(m, denom)
            torch._foreach_mul_(step, step_size)
            torch._foreach_sub_(params, step)
        return update
    return make


def _sgd(params: list[torch.Tensor], recipe: Recipe):
    """torch's SGD with momentum (Nesterov where momentum > 0, as OPTIMIZERS makes it),
    L2 weight decay, dampening 0."""
    buf = [torch.zeros_like(p) for p in params]
    wd, nesterov = recipe.weight_decay, recipe.momentum > 0

    def update(lr: torch.Tensor, momentum: torch.Tensor) -> None:
        grads = [p.grad for p in params]
        if wd:
            grads = torch._foreach_add(grads, params, alpha=wd)
        if nesterov:
            torch._foreach_mul_(buf, momentum)
            torch._foreach_add_(buf, grads)
            step = torch._foreach_add(grads, torch._foreach_mul(buf, momentum))
        else:
            step = list(grads)
        step = torch._foreach_mul(step, lr)
        torch._foreach_sub_(params, step)
    return update


UPDATES: dict[str, Callable] = {"adamw": _adam(decoupled=True), "adam": _adam(decoupled=False), "sgd": _sgd}


class DeviceStep:
    """One training step whose every input lives on the device (see the module's doc).
    ``new_epoch`` sets the epoch's order (outside any graph); ``run`` is the step."""

    def __init__(self, model: nn.Module, data: "Data", recipe: Recipe, total: int, device: torch.device,
                 memory_format: torch.memory_format, generator: torch.Generator | None):
        self.model, self.data, self.recipe, self.memory_format = model, data, recipe, memory_format
        self.gen = generator  # None: the device's default generator (the one a CUDA graph can replay)
        n = len(data.train_x)
        self.bs = min(recipe.batch_size, n)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.update = UPDATES[recipe.optimizer](self.params, recipe)
        self.lrs, self.moms = schedule_tables(recipe, total, device, self.params[0].dtype)
        self.perm = torch.zeros(n, dtype=torch.long, device=device)
        self.offsets = torch.arange(self.bs, device=device)
        self.k = torch.zeros((), dtype=torch.long, device=device)  # steps done in the run
        self.in_epoch = torch.zeros((), dtype=torch.long, device=device)  # steps done in this epoch
        self.loss_sum = torch.zeros((), device=device)
        bg = data.background
        self.background = torch.tensor(bg, device=device).view(1, -1, 1, 1) if isinstance(bg, tuple) else bg

    def new_epoch(self, perm: torch.Tensor) -> None:
        self.perm.copy_(perm)
        self.in_epoch.zero_()
        self.loss_sum.zero_()

    def run(self) -> None:
        r = self.recipe
        for p in self.params:
            p.grad = None  # backward writes each gradient afresh (in a graph: into the graph's memory)
        idx = self.perm.index_select(0, self.in_epoch * self.bs + self.offsets)
        xb = augment(self.data.train_x.index_select(0, idx), r.rotate, r.translate, self.background, self.gen,
                     r.hflip)
        logits = self.model(xb.contiguous(memory_format=self.memory_format))
        loss = F.cross_entropy(logits.float(), self.data.train_y.index_select(0, idx),
                               label_smoothing=r.label_smoothing)
        loss.backward()
        with torch.no_grad():
            if r.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.params, r.grad_clip, foreach=True)
            at = self.k.view(1)
            self.update(self.lrs.index_select(0, at).squeeze(0), self.moms.index_select(0, at).squeeze(0))
            self.loss_sum.add_(loss.detach())
            self.k.add_(1)
            self.in_epoch.add_(1)


_said: set[str] = set()


def say_once(message: str) -> None:
    """A warning shown once per process (the first trial that meets it)."""
    if message not in _said:
        _said.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class CapturedSteps:
    """DeviceStep.run on CUDA: WARMUP_STEPS eager calls on a side stream, then one call
    recorded into a CUDA graph, replayed for every later step. If recording fails the
    rest of the run calls DeviceStep.run eagerly (the same arithmetic), said once."""

    def __init__(self, step: DeviceStep):
        self.step, self.graph, self.eager, self.warm = step, None, False, 0

    @property
    def mode(self) -> str:
        return "captured" if self.graph is not None else "eager"

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.eager:
            self.step.run()
        elif self.warm < WARMUP_STEPS:
            self.warm += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step.run()
            torch.cuda.current_stream().wait_stream(side)
        else:
            graph = torch.cuda.CUDAGraph()
            checking = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(0)  # recording starts with a synchronize: once a run, not a step
            try:
                with torch.cuda.graph(graph):
                    self.step.run()
            except Exception as e:  # an op that cannot be recorded: this run goes on eagerly
                why = (str(e).splitlines() or [type(e).__name__])[0][:200]
                say_once(f"budgetnas: a CUDA graph of the training step could not be recorded ({why}); "
                         "trials train eagerly where that happens")
                self.eager = True
                self.step.run()
                return
            finally:
                torch.cuda.set_sync_debug_mode(checking)
            self.graph = graph
            graph.replay()  # recording ran nothing: this is the step itself

    def close(self) -> None:
        """Free the graph's memory pool (a search records one graph per trial), and the
        gradients that live in it."""
        for p in self.step.params:
            p.grad = None
        if self.graph is not None:
            self.graph.reset()
            self.graph = None


def capturable(recipe: Recipe, device: torch.device) -> bool:
    """Whether the step can be recorded: CUDA, and an optimizer written in UPDATES."""
    return device.type == "cuda" and recipe.optimizer in UPDATES
