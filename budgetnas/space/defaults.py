"""The candidates a new study tries first, like a tuner's default hyperparameters:
ordinary, strong and deliberately different, scaled to the budget. Why each one, with
the measurements that chose it: docs/RESULTS.md ("The built-in first trials")."""
from __future__ import annotations

from typing import Any

from ..arch import over_budgets
from ..train.recipe import DEFAULT_RECIPE
from .family import Space, sample_recipe, sample_spec
from .named import named_space

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


# A residual net: the stem, one basic block per further stage growing 1.5x (a max pool
# between), flatten, the quick SGD recipe at half its peak lr; and an inverted-residual
# net: the stem and a block, then two blocks per stage (kernel 3, expand 4, no SE), GAP,
# the quick SGD recipe. Chosen on Fashion-MNIST, MNIST and a
# color set: docs/RESULTS.md ("Search spaces").
RES_TRIAL = {**PLAIN_SGD_TRIAL, "block": "res", "downsample": "max", "lr_sgd": 0.15}
MBCONV_TRIAL = {**PLAIN_SGD_TRIAL, "block": "mbconv", "convs_per_stage": 2, "head": "gap", "downsample": "max",
                "kernel": 3, "expand": 4, "se": False}
# each block kind's first trials, best first (those of the kinds a space offers are queued)
BY_BLOCK = {"conv": ("DEFAULT", "PLAIN_SGD"), "separable": ("SMALL",), "res": ("RES",), "mbconv": ("MBCONV",)}
TRIALS = {"MULTI_EPOCH": MULTI_EPOCH_TRIAL, "DEFAULT": DEFAULT_TRIAL, "SMALL": SMALL_DEFAULT_TRIAL,
          "PLAIN_SGD": PLAIN_SGD_TRIAL, "RES": RES_TRIAL, "MBCONV": MBCONV_TRIAL}


class Filled:
    """A trial that answers each suggestion with a default's value where the space offers
    it, else the space's first choice (a range: the value clipped into it), and records
    the answers: a default made into exactly the parameters a space samples."""

    def __init__(self, params: dict[str, Any]):
        self.params, self.used = params, {}

    def _answer(self, name: str, value: Any) -> Any:
        self.used[name] = value
        return value

    def suggest_categorical(self, name: str, choices: list) -> Any:
        want = self.params.get(name, choices[0])
        return self._answer(name, next((c for c in choices if type(c) is type(want) and c == want), choices[0]))

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return self._answer(name, min(high, max(low, int(self.params.get(name, low)))))

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return self._answer(name, min(high, max(low, float(self.params.get(name, low)))))


def fill(params: dict[str, Any], space: Space, budget: int, max_macs: int | None, max_ram: int | None,
         epochs: int) -> dict[str, Any]:
    trial = Filled({**params, "block": params.get("block", "separable" if params.get("separable") else "conv")})
    sample_spec(trial, space, budget, max_macs, max_ram)
    sample_recipe(trial, space, epochs)
    return trial.used


def default_trials(budget: int, space: Space | None = None, max_macs: int | None = None,
                   max_ram: int | None = None, epochs: int = 1) -> list[dict[str, Any]]:
    """The first candidates of a new study, in order, for each block kind the space
    offers: (conv) the two-conv net with augmentation when more than one epoch, AdamW
    with two convs per stage, (separable, small budgets) separable convs at a high lr,
    (conv) the plain SGD recipe of quick hand-tuned nets, (res) a residual net, (mbconv)
    an inverted-residual one; each made into the parameters the space samples (a value
    it does not offer becomes its first choice), with no more stages than its images
    allow. A default whose architecture cannot fit the budgets (two convs per stage under
    ~2.5k params) is left out rather than queued to be rejected. No space: the default one."""
    import optuna  # lazily: FixedTrial replays a default's parameters

    space = space or named_space("default")
    names = [n for b in space.blocks for n in BY_BLOCK[b] if n != "SMALL" or budget <= SMALL_BUDGET]
    if epochs > 1 and "conv" in space.blocks:
        names.insert(0, "MULTI_EPOCH")
    order = ("MULTI_EPOCH", "DEFAULT", "SMALL", "PLAIN_SGD", "RES", "MBCONV")
    wanted = []
    for name in sorted(set(names), key=order.index):
        t = fill({**TRIALS[name], "stages": min(TRIALS[name]["stages"], space.stages[1])}, space, budget, max_macs,
                 max_ram, epochs)
        if t not in wanted:
            wanted.append(t)
    return [t for t in wanted
            if not over_budgets(sample_spec(optuna.trial.FixedTrial(t), space, budget, max_macs, max_ram),
                                budget, max_macs, max_ram)]
