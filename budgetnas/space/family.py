"""The searched family: stage-wise CNNs whose widths are scaled to use a sampled share
of the tightest budget, so almost every sample is a useful candidate, and the recipe
ranges. Sampling works with a real trial and with ``optuna.trial.FixedTrial`` (so a
winner can be replayed); Optuna parameter names are a file format (stable).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from ..arch import POOL, ArchSpec, LayerKind, conv, param_count, separable, within
from ..train.recipe import Recipe, searched_lr, searched_schedules

if TYPE_CHECKING:  # types only: this module never imports optuna
    import optuna

MIN_WIDTH = 4  # channels: narrower convs are not worth their per-layer overhead


@dataclass(frozen=True)
class Space:
    """Ranges of the searched family, and the data's input (what the dataset decides)."""

    stages: tuple[int, int] = (2, 4)  # conv stages, each ends in a 2x2 max pool but maybe the last
    convs_per_stage: tuple[int, int] = (1, 3)
    growth: tuple[float, ...] = (1.0, 1.5, 2.0)  # width ratio between stages
    fill: tuple[float, float] = (0.5, 1.0)  # share of the budget the widths are scaled to use
    separable: tuple[bool, ...] = (False, True)  # convs after the first as depthwise 3x3 + 1x1
    heads: tuple[str, ...] = ("gap", "flatten")
    hidden: tuple[int, ...] = (0, 32, 64)
    conv_dropout: tuple[float, float] = (0.0, 0.1)
    head_dropout: tuple[float, float] = (0.0, 0.3)
    width_step: int = 2  # channel widths are multiples of this, and at least MIN_WIDTH
    # the recipe: optimizers with their peak-lr ranges and schedules from train/recipe.py
    lr: dict[str, tuple[float, float]] = field(default_factory=searched_lr)
    schedules: tuple[str, ...] = field(default_factory=searched_schedules)
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    rotate: tuple[float, float] = (0.0, 10.0)  # only when "augment" is sampled True
    translate: tuple[float, float] = (0.0, 0.1)
    label_smoothing: tuple[float, float] = (0.0, 0.1)
    # the input: channels, side in pixels, classes; whether horizontal flips are offered
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    hflip: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Space":
        """The space a study stored (JSON: lists for tuples). Spaces stored by 0.1.0 name
        the searched optimizers in ``optimizers`` and their ranges in ``lr_<name>``."""
        d = dict(d)
        if "lr" not in d:
            optimizers = d.pop("optimizers", ("adamw", "sgd"))
            d["lr"] = {o: d[f"lr_{o}"] for o in optimizers if f"lr_{o}" in d}
        names = {f.name for f in fields(cls)}
        frozen = lambda v: tuple(v) if isinstance(v, list) else {k: tuple(r) for k, r in v.items()} \
            if isinstance(v, dict) else v
        return cls(**{k: frozen(v) for k, v in d.items() if k in names})


def space_for(in_channels: int, image_size: int, num_classes: int, hflip: bool = False) -> Space:
    """The default space for images of ``in_channels`` x ``image_size``^2 and
    ``num_classes`` classes: as many stages (each halving the side) as the image allows,
    up to the default 4."""
    most = max(1, min(Space.stages[1], image_size.bit_length() - 1))  # the side stays >= 1 after the last pool
    return Space(stages=(min(Space.stages[0], most), most), in_channels=in_channels, image_size=image_size,
                 num_classes=num_classes, hflip=hflip)


def stage_spec(stages: int, convs: int, widths: list[int], last_pool: bool, head: str, hidden: int,
               conv_dropout: float, head_dropout: float, separable_convs: bool = False,
               in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> ArchSpec:
    """``stages`` stages of ``convs`` 3x3 convs each (stage i has widths[i] channels), a 2x2
    max pool after each stage (after the last one too with last_pool); separable_convs:
    every conv but the first is a depthwise 3x3 + 1x1 pair (see arch.separable). The input
    (channels, side) and the class count come from the data."""
    layers: list[LayerKind] = []
    cin = in_channels
    for i in range(stages):
        for _ in range(convs):
            if separable_convs and layers:
                layers += separable(cin, widths[i], conv_dropout)
            else:
                layers.append(conv(widths[i], dropout=conv_dropout))
            cin = widths[i]
        if i < stages - 1 or last_pool:
            layers.append(POOL)
    return ArchSpec(tuple(layers), head=head, hidden=(hidden,) if hidden else (), head_dropout=head_dropout,
                    in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def fit_widths(make: Callable[[list[int]], ArchSpec], budget_target: float, growth: float, step: int,
               fits: Callable[[ArchSpec], bool] | None = None) -> ArchSpec:
    """The widest spec ``make(widths)`` whose parameter count is <= budget_target (or, with
    ``fits``, for which ``fits(spec)`` holds), with widths base*growth^i rounded to
    ``step``; the narrowest one if none fits."""

    def widths(base: int) -> list[int]:
        return [max(MIN_WIDTH, int(round(base * growth ** i / step)) * step) for i in range(8)]

    ok = fits or (lambda spec: param_count(spec) <= budget_target)
    lo, hi = MIN_WIDTH, MIN_WIDTH
    while ok(make(widths(hi))) and hi < 4096:
        lo, hi = hi, hi * 2
    if not ok(make(widths(lo))):
        return make(widths(lo))
    while hi - lo > 1:  # invariant: lo fits, hi does not (or is the cap)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(make(widths(mid))) else (lo, mid)
    return make(widths(lo))


def sample_spec(trial: "optuna.trial.BaseTrial", space: Space, budget: int, max_macs: int | None = None,
                max_ram: int | None = None) -> ArchSpec:
    """Sample an architecture. The widths fill the sampled share of the tightest budget:
    the widest spec with params, MACs and peak RAM each <= fill x its limit (those given)."""
    stages = trial.suggest_int("stages", *space.stages)
    convs = trial.suggest_int("convs_per_stage", *space.convs_per_stage)
    growth = trial.suggest_categorical("growth", list(space.growth))
    sep = trial.suggest_categorical("separable", list(space.separable))
    fill = trial.suggest_float("fill", *space.fill)
    last_pool = trial.suggest_categorical("last_pool", [True, False])
    head = trial.suggest_categorical("head", list(space.heads))
    hidden = trial.suggest_categorical("hidden", list(space.hidden))
    conv_dropout = trial.suggest_float("conv_dropout", *space.conv_dropout)
    head_dropout = trial.suggest_float("head_dropout", *space.head_dropout)

    def make(widths: list[int]) -> ArchSpec:
        return stage_spec(stages, convs, widths, last_pool, head, hidden, conv_dropout, head_dropout, sep,
                          space.in_channels, space.image_size, space.num_classes)

    if max_macs is None and max_ram is None:
        return fit_widths(make, fill * budget, growth, space.width_step)
    return fit_widths(make, fill * budget, growth, space.width_step,
                      fits=lambda spec: within(spec, fill * budget, max_macs and fill * max_macs,
                                               max_ram and fill * max_ram))


def sample_recipe(trial: "optuna.trial.BaseTrial", space: Space, epochs: int) -> Recipe:
    optimizer = trial.suggest_categorical("optimizer", list(space.lr))
    lr = trial.suggest_float(f"lr_{optimizer}", *space.lr[optimizer], log=True)
    # augmentation usually slows a 1-epoch run down: a switch, so "off" is one choice
    augment = trial.suggest_categorical("augment", [False, True])
    # flips only where the data says they make sense; a parameter of its own, so spaces
    # without it (digits) sample exactly as before it existed
    hflip = trial.suggest_categorical("hflip", [False, True]) if space.hflip else False
    return Recipe(
        optimizer=optimizer,
        lr=lr,
        schedule=trial.suggest_categorical("schedule", list(space.schedules)),
        batch_size=trial.suggest_categorical("batch_size", list(space.batch_sizes)),
        weight_decay=trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        rotate=trial.suggest_float("rotate", *space.rotate) if augment else 0.0,
        translate=trial.suggest_float("translate", *space.translate) if augment else 0.0,
        label_smoothing=trial.suggest_float("label_smoothing", *space.label_smoothing),
        epochs=epochs,
        hflip=hflip,
    )
