"""The candidates a new study tries first, like a tuner's default hyperparameters:
ordinary, strong and deliberately different, scaled to the budget. Why each one, with
the measurements that chose it: docs/RESULTS.md ("The built-in first trials")."""
from __future__ import annotations

from typing import Any

from ..arch import over_budgets
from ..train.recipe import DEFAULT_RECIPE
from .family import Space, sample_spec

# Three stages of two 3x3 convs growing 1.5x in width, a flatten head, AdamW with
# OneCycle at the default recipe's lr, batch and weight decay.
DEFAULT_TRIAL = {
    "stages": 3, "convs_per_stage": 2, "growth": 1.5, "separable": False, "fill": 0.95, "last_pool": True,
    "head": "flatten", "hidden": 0, "conv_dropout": 0.0, "head_dropout": 0.1, "optimizer": "adamw",
    "lr_adamw": DEFAULT_RECIPE.lr, "augment": False, "schedule": "onecycle", "batch_size": DEFAULT_RECIPE.batch_size,
    "weight_decay": DEFAULT_RECIPE.weight_decay, "label_smoothing": 0.05,
}
# Small budgets (a plain 3x3 net of <= 10k params has only 4-12 channels per layer): one
# conv per stage, separable after the first, a higher peak lr and batch 32.
SMALL_DEFAULT_TRIAL = {**DEFAULT_TRIAL, "convs_per_stage": 1, "separable": True, "lr_adamw": 2e-2, "batch_size": 32}
SMALL_BUDGET = 10_000
# The quick hand-tuned recipe people use for MNIST: one plain conv per stage growing
# 1.5x, flatten, SGD Nesterov with OneCycle to lr 0.3; few MACs, so it costs seconds.
PLAIN_SGD_TRIAL = {**DEFAULT_TRIAL, "convs_per_stage": 1, "head_dropout": 0.0, "optimizer": "sgd", "lr_sgd": 0.3,
                   "weight_decay": 5e-5, "label_smoothing": 0.0}
PLAIN_SGD_TRIAL.pop("lr_adamw")
# More than one epoch: the two-conv default with mild augmentation (rotate +-7 degrees,
# shift +-5%) and a doubled peak lr; over many epochs augmentation pays, in one it does not.
MULTI_EPOCH_TRIAL = {**DEFAULT_TRIAL, "lr_adamw": 1e-2, "augment": True, "rotate": 7.0, "translate": 0.05}


def default_trials(budget: int, space: Space | None = None, max_macs: int | None = None,
                   max_ram: int | None = None, epochs: int = 1) -> list[dict[str, Any]]:
    """The first candidates of a new study, in order: (more than one epoch) the two-conv
    net with augmentation, AdamW with two convs per stage, (small budgets) separable convs
    at a high lr, and the plain SGD recipe of quick hand-tuned nets; with no more stages
    than the space's images allow. A default whose architecture cannot fit the budgets
    (two convs per stage under ~2.5k params) is left out rather than queued to be rejected."""
    import optuna  # lazily: FixedTrial replays a default's parameters

    space = space or Space()
    wanted = [{**t, "stages": min(t["stages"], space.stages[1])} for t in
              (*([MULTI_EPOCH_TRIAL] if epochs > 1 else []), DEFAULT_TRIAL,
               *([SMALL_DEFAULT_TRIAL] if budget <= SMALL_BUDGET else []), PLAIN_SGD_TRIAL)]
    return [t for t in wanted
            if not over_budgets(sample_spec(optuna.trial.FixedTrial(t), space, budget, max_macs, max_ram),
                                budget, max_macs, max_ram)]
