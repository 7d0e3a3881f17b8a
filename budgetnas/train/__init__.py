"""Training: the recipe with the optimizers and schedules by name (recipe.py, no torch)
and the loop that trains and evaluates one model on resident tensors, calling back at
each report (loop.py). Knows nothing of trials. ``budgetnas.train.train`` and the other
names of loop.py load torch on first use."""
from .recipe import DEFAULT_RECIPE, OPTIMIZERS, SCHEDULES, Optimizer, Recipe, Schedule

_LOOP = {"train", "evaluate", "folded", "Diverged", "TrainResult", "report_count", "eval_steps", "epoch_steps",
         "make_optimizer", "make_scheduler", "INTERMEDIATE_VAL", "use_bf16"}


def __getattr__(name: str):
    if name in _LOOP:
        from . import loop
        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Recipe", "DEFAULT_RECIPE", "OPTIMIZERS", "SCHEDULES", "Optimizer", "Schedule", *sorted(_LOOP)]
