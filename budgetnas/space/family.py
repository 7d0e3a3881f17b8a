"""The searched family: stage-wise CNNs whose widths are scaled to use a sampled share
of the tightest budget, so almost every sample is a useful candidate, and the recipe
ranges. A stage is blocks of one kind (plain or separable 3x3 convs, residual blocks,
inverted residuals); stages are joined by a max or average pool or a stride-2 block. Sampling works with a real trial and with ``optuna.trial.FixedTrial`` (so a
winner can be replayed); Optuna parameter names are a file format (stable).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable

from ..arch import POOL, ArchSpec, AvgPool, LayerKind, MBConv, Residual, conv, param_count, separable, within
from ..train.recipe import Recipe, searched_lr, searched_schedules

if TYPE_CHECKING:  # types only: this module never imports optuna
    import optuna

MIN_WIDTH = 4  # channels: narrower convs are not worth their per-layer overhead


@dataclass(frozen=True)
class Space:
    """Ranges of the searched family, and the data's input (what the dataset decides)."""

    # The defaults are the 'plain' space (a study stored before a field existed meant its default).
    stages: tuple[int, int] = (2, 4)  # stages, each ends in a downsampling but maybe the last
    blocks_per_stage: tuple[int, int] = (1, 3)  # (Optuna parameter "convs_per_stage")
    growth: tuple[float, ...] = (1.0, 1.5, 2.0)  # width ratio between stages
    fill: tuple[float, float] = (0.5, 1.0)  # share of the budget the widths are scaled to use
    # the stages' block kinds: conv (3x3), separable (depthwise 3x3 + 1x1), res, mbconv; the
    # first layer is always a plain 3x3 conv (the stem); res and mbconv stages come after it
    blocks: tuple[str, ...] = ("conv", "separable")
    downsample: tuple[str, ...] = ("max",)  # between stages: max or avg pool, or stride (2) in a block
    kernels: tuple[int, ...] = (3, 5)  # mbconv's depthwise kernel
    expand: tuple[int, ...] = (2, 4, 6)  # mbconv's expand ratio
    se: tuple[bool, ...] = (False, True)  # mbconv's squeeze-excite
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
    augment: tuple[bool, ...] = (False, True)  # random rotations and shifts
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
        the searched optimizers in ``optimizers`` and their ranges in ``lr_<name>``; before
        0.3 the blocks were ``separable`` (False: plain convs, True: separable) and their
        count ``convs_per_stage``."""
        d = dict(d)
        if "lr" not in d:
            optimizers = d.pop("optimizers", ("adamw", "sgd"))
            d["lr"] = {o: d[f"lr_{o}"] for o in optimizers if f"lr_{o}" in d}
        if "separable" in d and "blocks" not in d:
            d["blocks"] = ["separable" if sep else "conv" for sep in d.pop("separable")]
        if "convs_per_stage" in d:
            d.setdefault("blocks_per_stage", d.pop("convs_per_stage"))
        names = {f.name for f in fields(cls)}
        frozen = lambda v: tuple(v) if isinstance(v, list) else {k: tuple(r) for k, r in v.items()} \
            if isinstance(v, dict) else v
        return cls(**{k: frozen(v) for k, v in d.items() if k in names})


def space_for(in_channels: int, image_size: int, num_classes: int, hflip: bool = False,
              base: Space | None = None) -> Space:
    """``base`` (default: the plain space) for images of ``in_channels`` x ``image_size``^2
    and ``num_classes`` classes: no more stages (each halving the side) than the image
    allows."""
    base = base or Space()
    most = max(1, min(base.stages[1], image_size.bit_length() - 1))  # the side stays >= 1 after the last pool
    return replace(base, stages=(min(base.stages[0], most), most), in_channels=in_channels, image_size=image_size,
                   num_classes=num_classes, hflip=hflip)


def stage_spec(stages: int, convs: int, widths: list[int], last_pool: bool, head: str, hidden: int,
               conv_dropout: float, head_dropout: float, separable_convs: bool = False,
               in_channels: int = 1, image_size: int = 28, num_classes: int = 10, *, block: str | None = None,
               downsample: str = "max", kernel: int = 3, expand: int = 4, se: bool = False) -> ArchSpec:
    """``stages`` stages of ``convs`` blocks each (stage i has widths[i] channels), joined
    by ``downsample``: a 2x2 max or average pool after each stage (after the last one too
    with last_pool), or ``stride``: the first block of each later stage has stride 2 (and
    a last pool is a max pool). ``block``: conv (3x3), separable (every conv but the first
    a depthwise 3x3 + 1x1 pair, see arch.separable; ``separable_convs`` says the same),
    res (residual blocks after the stem conv, which is the first of stage 0's ``convs``),
    mbconv (likewise, inverted residuals of ``kernel``, ``expand`` and ``se``). The input
    (channels, side) and the class count come from the data."""
    block = block or ("separable" if separable_convs else "conv")
    pool = AvgPool() if downsample == "avg" else POOL
    layers: list[LayerKind] = []
    cin = in_channels
    for i in range(stages):
        w = widths[i]
        for j in range(convs):
            stride = 2 if downsample == "stride" and i > 0 and j == 0 else 1
            if not layers:
                layers.append(conv(w, dropout=conv_dropout))  # the stem
            elif block == "separable":
                layers += separable(cin, w, conv_dropout, stride)
            elif block == "res":
                layers.append(Residual(w, stride, conv_dropout))
            elif block == "mbconv":
                layers.append(MBConv(w, expand, kernel, stride, se, conv_dropout))
            else:
                layers.append(conv(w, dropout=conv_dropout, stride=stride))
            cin = w
        if (i < stages - 1 and downsample != "stride") or (i == stages - 1 and last_pool):
            layers.append(pool)
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


def choice(trial: "optuna.trial.BaseTrial", name: str, values: tuple) -> Any:
    """The one value, or a categorical parameter over several."""
    return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))


def sample_spec(trial: "optuna.trial.BaseTrial", space: Space, budget: int, max_macs: int | None = None,
                max_ram: int | None = None) -> ArchSpec:
    """Sample an architecture. The widths fill the sampled share of the tightest budget:
    the widest spec with params, MACs and peak RAM each <= fill x its limit (those given)."""
    stages = trial.suggest_int("stages", *space.stages)
    convs = trial.suggest_int("convs_per_stage", *space.blocks_per_stage)
    growth = trial.suggest_categorical("growth", list(space.growth))
    if set(space.blocks) <= {"conv", "separable"}:  # the parameter of the spaces before res and mbconv
        block = "separable" if trial.suggest_categorical("separable", [b == "separable" for b in space.blocks]) \
            else "conv"
    else:
        block = trial.suggest_categorical("block", list(space.blocks))
    fill = trial.suggest_float("fill", *space.fill)
    last_pool = trial.suggest_categorical("last_pool", [True, False])
    head = trial.suggest_categorical("head", list(space.heads))
    hidden = trial.suggest_categorical("hidden", list(space.hidden))
    conv_dropout = trial.suggest_float("conv_dropout", *space.conv_dropout)
    head_dropout = trial.suggest_float("head_dropout", *space.head_dropout)
    # each further choice is a parameter only where the space offers more than one value
    # (so a space without it samples as before it existed), and only for the block it shapes
    downsample = choice(trial, "downsample", space.downsample)
    kernel, expand, se = ((choice(trial, "kernel", space.kernels), choice(trial, "expand", space.expand),
                           choice(trial, "se", space.se)) if block == "mbconv" else (3, 4, False))

    def make(widths: list[int]) -> ArchSpec:
        return stage_spec(stages, convs, widths, last_pool, head, hidden, conv_dropout, head_dropout, False,
                          space.in_channels, space.image_size, space.num_classes, block=block,
                          downsample=downsample, kernel=kernel, expand=expand, se=se)

    if max_macs is None and max_ram is None:
        return fit_widths(make, fill * budget, growth, space.width_step)
    return fit_widths(make, fill * budget, growth, space.width_step,
                      fits=lambda spec: within(spec, fill * budget, max_macs and fill * max_macs,
                                               max_ram and fill * max_ram))


def sample_recipe(trial: "optuna.trial.BaseTrial", space: Space, epochs: int) -> Recipe:
    optimizer = trial.suggest_categorical("optimizer", list(space.lr))
    lr = trial.suggest_float(f"lr_{optimizer}", *space.lr[optimizer], log=True)
    # augmentation usually slows a 1-epoch run down: a switch, so "off" is one choice
    augment = trial.suggest_categorical("augment", list(space.augment))
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
