"""How a candidate is trained: the Recipe, and the optimizers and schedules by name.

The one place for a recipe option: a new optimizer is an entry of OPTIMIZERS (how to
make it, and the peak learning rates the search samples for it; none: not searched), a
new schedule an entry of SCHEDULES. The train command's override flags, the search
space's choices and the checks all read them. No torch at import: the makers import it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..config import MAX_EPOCHS, ConfigError, check_real, check_whole, finite_float, flag, whole_in

MAX_BATCH = 1 << 20


@dataclass(frozen=True)
class Optimizer:
    make: Callable[..., Any]  # (params, recipe) -> torch.optim.Optimizer
    lr: tuple[float, float] | None = None  # the search's peak-lr range (log scale); None: not searched


def _torch_optimizer(name: str, **extra: Callable[[Any], Any]) -> Callable[..., Any]:
    """A maker of torch.optim.<name>, fused (one kernel for all parameters) where this
    torch and device support it; ``extra`` maps keyword arguments to recipe readers."""
    def make(params, recipe):
        import torch
        cls = getattr(torch.optim, name)
        kwargs = {k: read(recipe) for k, read in extra.items()}
        try:
            return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or torch
            return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **kwargs)
    return make


OPTIMIZERS: dict[str, Optimizer] = {
    "adamw": Optimizer(_torch_optimizer("AdamW"), lr=(1e-3, 3e-2)),
    "adam": Optimizer(_torch_optimizer("Adam")),
    "sgd": Optimizer(_torch_optimizer("SGD", momentum=lambda r: r.momentum, nesterov=lambda r: r.momentum > 0),
                     lr=(1e-2, 0.3)),
}


@dataclass(frozen=True)
class Schedule:
    make: Callable[..., Any] | None  # (optimizer, recipe, total_steps) -> scheduler; None: a constant lr
    searched: bool = True


def _onecycle(opt, recipe, total_steps: int):
    """OneCycle also cycles the optimizer's momentum (SGD) or beta1 (Adam-like) between
    0.85 and 0.95; an optimizer with neither cannot take it."""
    import torch
    # warm-up on 25% of the steps; on runs of a few steps at least 1.5 of them (OneCycleLR
    # divides by zero when the warm-up phase ends at step 0, e.g. 4 steps at 25%)
    pct = max(0.25, min(0.75, 1.5 / total_steps))
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total_steps, pct_start=pct)


def _cosine(opt, recipe, total_steps: int):
    import torch
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


SCHEDULES: dict[str, Schedule] = {  # with 1-2 epochs an annealed lr matters most: constant is not searched
    "onecycle": Schedule(_onecycle),
    "cosine": Schedule(_cosine),
    "constant": Schedule(None, searched=False),
}


@dataclass(frozen=True)
class Recipe:
    """How one candidate is trained. Sampled per trial, stored with it, replayable. The
    defaults are what ``budgetnas train SPEC.json`` uses for a spec without a recipe."""

    optimizer: str = flag("adamw", "recipe override: " + ", ".join(OPTIMIZERS), commands=("train",),
                          show_default=False)
    lr: float = flag(5e-3, "recipe override: peak learning rate", commands=("train",), type=finite_float,
                     show_default=False)
    schedule: str = flag("onecycle", "recipe override: " + ", ".join(SCHEDULES), commands=("train",),
                         show_default=False)
    batch_size: int = flag(64, "recipe override: batch size", commands=("train",), type=whole_in(1, MAX_BATCH),
                           show_default=False)
    weight_decay: float = flag(1e-4, "recipe override: weight decay", commands=("train",), type=finite_float,
                               show_default=False)
    momentum: float = 0.9  # SGD only
    rotate: float = flag(0.0, "recipe override: max rotation in degrees", commands=("train",), type=finite_float,
                         show_default=False)  # uniform in +-rotate
    translate: float = flag(0.0, "recipe override: max shift, fraction of the side", commands=("train",),
                            type=finite_float, show_default=False)
    label_smoothing: float = flag(0.0, "recipe override: label smoothing", commands=("train",), type=finite_float,
                                  show_default=False)
    grad_clip: float = 0.0  # max grad norm; 0 = off
    epochs: int = 1
    hflip: bool = False  # random horizontal flips (only offered for natural images)

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        check(isinstance(self.optimizer, str) and self.optimizer in OPTIMIZERS,
              f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        check(isinstance(self.schedule, str) and self.schedule in SCHEDULES,
              f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        # the ranges torch takes (and a search samples within): nan and inf nowhere
        finite = isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
        check_real(self.lr, "--lr", 0.0, lo_open=True,
                   message=f"learning rate must be {'positive' if finite else 'a finite number'} (got {self.lr!r})")
        check_whole(self.batch_size, "--batch-size", 1, MAX_BATCH)
        check_real(self.weight_decay, "--weight-decay", 0.0,
                   message=f"--weight-decay must be a finite number >= 0 (got {self.weight_decay})")
        check_real(self.momentum, "momentum", 0.0, 1.0, hi_open=True)
        check_real(self.rotate, "--rotate", 0.0, 180.0)
        check_real(self.translate, "--translate", 0.0, 1.0, hi_open=True)
        check_real(self.label_smoothing, "--label-smoothing", 0.0, 1.0, hi_open=True)
        check_real(self.grad_clip, "grad_clip", 0.0, message=f"grad_clip must be a finite number >= 0 "
                                                              f"(0: off; got {self.grad_clip})")
        check_whole(self.epochs, "--epochs", 1, MAX_EPOCHS)
        check(isinstance(self.hflip, bool), f"hflip must be true or false (got {self.hflip!r})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


DEFAULT_RECIPE = Recipe()


def searched_lr() -> dict[str, tuple[float, float]]:
    """{optimizer: peak-lr range} of the optimizers the search samples."""
    return {name: o.lr for name, o in OPTIMIZERS.items() if o.lr is not None}


def searched_schedules() -> tuple[str, ...]:
    return tuple(name for name, s in SCHEDULES.items() if s.searched)
