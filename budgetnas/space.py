"""Architectures as data: the spec, the search space, the one parameter count.

An ``ArchSpec`` is a plain list of layers (3x3/1x1 convs, 2x2 max pools) followed by a
head (global average pool or flatten, then optional hidden linear layers). It holds no
torch objects, round-trips through JSON, and is what moves between modules: models,
trials and exports all derive from it.

The search space is a family of stage-wise CNNs whose widths are scaled to use a sampled
share of the budget, so almost every sample is a useful candidate. Anything over the
budget is rejected from this count alone, before a model exists.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .config import ConfigError, Recipe

if TYPE_CHECKING:  # types only: this module never imports optuna at run time
    import optuna


@dataclass(frozen=True)
class Layer:
    """One feature-extractor layer. kind 'conv': conv -> [BN] -> [ReLU] -> [dropout];
    kind 'pool': 2x2 max pool, stride 2 (floor). ``groups`` splits a conv's channels into
    groups (in and out must be multiples of it): groups == in == out is a depthwise conv,
    which with a 1x1 conv after it makes a separable conv (dw: no BN, no ReLU)."""

    kind: str = "conv"
    out: int = 0  # output channels (conv only)
    kernel: int = 3
    padding: int = 1
    bias: bool = False
    bn: bool = True
    act: bool = True
    dropout: float = 0.0
    groups: int = 1


POOL = Layer(kind="pool")


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. Head: 'gap' (global average pool) or 'flatten', then for each
    hidden width [dropout] -> linear -> ReLU, then [dropout] -> linear to the classes.
    With ``linear=False`` there is no linear layer: the last conv emits one channel per
    class and the pooled map is the logits (seeds C and D)."""

    layers: tuple[Layer, ...]
    head: str = "gap"
    hidden: tuple[int, ...] = ()
    head_dropout: float = 0.0
    head_bias: bool = True
    linear: bool = True
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10

    # --- JSON round trip -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = [_layer_dict(l) for l in self.layers]
        d["hidden"] = list(self.hidden)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        if not isinstance(d, dict) or "layers" not in d:
            raise ConfigError("a spec is a JSON object with a 'layers' list: export one with 'budgetnas export'")
        try:
            layers = tuple(Layer(**l) for l in d["layers"])
            rest = {k: v for k, v in d.items() if k != "layers"}
            rest["hidden"] = tuple(rest.get("hidden", ()))
            spec = cls(layers=layers, **rest)
        except TypeError as e:
            raise ConfigError(f"malformed spec ({e}): export one with 'budgetnas export'") from None
        validate(spec)
        return spec

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"spec is not valid JSON ({e.msg} at line {e.lineno})") from None


def _layer_dict(layer: Layer) -> dict[str, Any]:
    if layer.kind == "pool":
        return {"kind": "pool"}
    d = dataclasses.asdict(layer)
    if layer.groups == 1:  # specs written before groups existed stay byte-identical
        del d["groups"]
    return d


def conv(out: int, kernel: int = 3, padding: int | None = None, *, bias: bool = False, bn: bool = True,
         act: bool = True, dropout: float = 0.0, groups: int = 1) -> Layer:
    """A conv layer; padding defaults to 'same' (kernel // 2)."""
    return Layer("conv", out, kernel, kernel // 2 if padding is None else padding, bias, bn, act, dropout, groups)


def separable(cin: int, out: int, dropout: float = 0.0) -> list[Layer]:
    """A 3x3 separable conv: depthwise 3x3 (no BN, no ReLU), then 1x1 cin -> out with BN
    and ReLU: 9*cin + cin*out + 2*out params against 9*cin*out + 2*out for a full 3x3."""
    return [conv(cin, groups=cin, bn=False, act=False), conv(out, 1, dropout=dropout)]


# --- shapes, parameters, MACs ------------------------------------------------------
def walk(spec: ArchSpec) -> Iterable[tuple[Layer, int, int, int, int]]:
    """Yield (layer, in_channels, in_size, out_channels, out_size) for each layer."""
    c, s = spec.in_channels, spec.image_size
    for layer in spec.layers:
        if layer.kind == "pool":
            c2, s2 = c, s // 2
        else:
            c2, s2 = layer.out, s + 2 * layer.padding - layer.kernel + 1
        yield layer, c, s, c2, s2
        c, s = c2, s2


def feature_shape(spec: ArchSpec) -> tuple[int, int]:
    """(channels, side) of the feature map that enters the head."""
    c, s = spec.in_channels, spec.image_size
    for _, _, _, c, s in walk(spec):
        pass
    return c, s


def head_dims(spec: ArchSpec) -> list[int]:
    """Widths through the linear head: [features, *hidden, classes] ([] if no linear)."""
    if not spec.linear:
        return []
    c, s = feature_shape(spec)
    return [c * (s * s if spec.head == "flatten" else 1), *spec.hidden, spec.num_classes]


def conv_params(layer: Layer, cin: int) -> int:
    """Weights k*k*(cin/groups)*out, plus out biases, plus 2*out BatchNorm affine parameters."""
    return layer.out * (cin // layer.groups) * layer.kernel ** 2 + (layer.out if layer.bias else 0) + (2 * layer.out if layer.bn else 0)


def param_count(spec: ArchSpec) -> int:
    """The trainable parameter count: what a budget limits.

    Definition: sum over conv layers of ``k*k*(c_in/groups)*c_out + c_out*[bias] + 2*c_out*[BN]``
    plus, over linear layers of the head, ``d_in*d_out + d_out*[bias]``. Pools, ReLU,
    dropout and BatchNorm running statistics (buffers) hold no trainable parameters.
    Equal to ``sum(p.numel() for p in build_model(spec).parameters())`` (tested).
    """
    total = sum(conv_params(l, cin) for l, cin, _, _, _ in walk(spec) if l.kind == "conv")
    dims = head_dims(spec)
    for d_in, d_out in zip(dims, dims[1:]):
        total += d_in * d_out + (d_out if spec.head_bias else 0)
    return total


def layer_table(spec: ArchSpec) -> list[dict[str, Any]]:
    """Per layer: name, output shape, parameters, MACs (multiply-accumulates per image)."""
    rows = []
    for i, (l, cin, _, cout, s) in enumerate(walk(spec)):
        if l.kind == "pool":
            rows.append({"name": f"features.{i}", "layer": "maxpool 2x2", "shape": [cout, s, s], "params": 0, "macs": 0})
            continue
        kind = "conv" if l.groups == 1 else "dwconv" if l.groups == cin == cout else f"conv g{l.groups}"
        desc = f"{kind} {l.kernel}x{l.kernel} {cin}->{cout}" + (" +BN" if l.bn else "") + (" +ReLU" if l.act else "")
        macs = cout * (cin // l.groups) * l.kernel ** 2 * s * s
        rows.append({"name": f"features.{i}", "layer": desc, "shape": [cout, s, s],
                     "params": conv_params(l, cin), "macs": macs})
    dims = head_dims(spec)
    c, s = feature_shape(spec)
    rows.append({"name": "head.pool", "layer": "flatten" if spec.head == "flatten" and spec.linear else "global avg pool",
                 "shape": [dims[0] if dims else c], "params": 0, "macs": 0})
    for j, (d_in, d_out) in enumerate(zip(dims, dims[1:])):
        rows.append({"name": f"head.fc{j}", "layer": f"linear {d_in}->{d_out}", "shape": [d_out],
                     "params": d_in * d_out + (d_out if spec.head_bias else 0), "macs": d_in * d_out})
    return rows


def macs(spec: ArchSpec) -> int:
    """Multiply-accumulates for one image's forward pass (convs and linears)."""
    return sum(r["macs"] for r in layer_table(spec))


def activation_table(spec: ArchSpec) -> list[dict[str, Any]]:
    """Per step of one int8 inference: name, input and output elements, and the bytes
    alive while it runs (input + output, 1 byte per element). The steps are those of a
    deployed network: each conv (BatchNorm folded into it, ReLU applied in place), each
    2x2 max pool, the global average pool, each linear layer. Flatten is a view of the
    feature map (no new tensor) and dropout is gone at inference: neither is a step."""
    rows = []
    for i, (l, cin, s_in, cout, s) in enumerate(walk(spec)):
        a, b = cin * s_in * s_in, cout * s * s
        rows.append({"name": f"features.{i}", "in": a, "out": b, "bytes": a + b})
    c, s = feature_shape(spec)
    if spec.head == "gap" or not spec.linear:
        rows.append({"name": "head.pool", "in": c * s * s, "out": c, "bytes": c * s * s + c})
    dims = head_dims(spec)
    for j, (d_in, d_out) in enumerate(zip(dims, dims[1:])):
        rows.append({"name": f"head.fc{j}", "in": d_in, "out": d_out, "bytes": d_in + d_out})
    return rows


def peak_ram(spec: ArchSpec) -> int:
    """Peak activation memory of one int8 inference, in bytes: what a ``--max-ram`` budget limits.

    Definition: the largest sum of the tensors that must be alive at once, step by step
    (see activation_table): while a layer runs, its input and its output are alive, at 1
    byte per element (int8), and nothing else, because these networks are plain chains
    (no skip connection keeps an earlier tensor alive for a later layer). So it is
    ``max over steps of (input elements + output elements)``; the first conv counts the
    input image. Weights (flash) and the runtime's own scratch buffers are not counted.
    Equal to the same maximum measured on the built model's feature maps with forward
    hooks (tested).
    """
    return max(r["bytes"] for r in activation_table(spec))


def validate(spec: ArchSpec) -> None:
    """Raise ConfigError if the spec cannot be built."""
    if spec.head not in ("gap", "flatten"):
        raise ConfigError(f"spec head must be 'gap' or 'flatten' (got {spec.head!r})")
    for i, (l, cin, s_in, c, s) in enumerate(walk(spec)):
        if l.kind not in ("conv", "pool"):
            raise ConfigError(f"spec layer {i}: kind must be 'conv' or 'pool' (got {l.kind!r})")
        if l.kind == "conv" and (l.out < 1 or l.kernel < 1 or l.padding < 0 or not 0 <= l.dropout < 1):
            raise ConfigError(f"spec layer {i}: needs out >= 1, kernel >= 1, padding >= 0, 0 <= dropout < 1")
        if l.kind == "conv" and (not isinstance(l.groups, int) or l.groups < 1 or cin % l.groups or l.out % l.groups):
            raise ConfigError(f"spec layer {i}: groups ({l.groups}) must divide its {cin} input and {l.out} output channels")
        if s < 1:
            raise ConfigError(f"spec layer {i} shrinks the {spec.image_size}px image to nothing: use fewer pools or padding")
    if not any(l.kind == "conv" for l in spec.layers):
        raise ConfigError("spec needs at least one conv layer")
    c, _ = feature_shape(spec)
    if not spec.linear and (c != spec.num_classes or spec.hidden):
        raise ConfigError(f"a spec without a linear head must end in a conv with {spec.num_classes} channels and no hidden layers")
    if any(h < 1 for h in spec.hidden) or not 0 <= spec.head_dropout < 1:
        raise ConfigError("spec hidden widths must be >= 1 and head_dropout in [0, 1)")


# --- the search space ------------------------------------------------------------
@dataclass(frozen=True)
class Space:
    """Ranges of the searched family. Parameter names are a file format (stable)."""

    stages: tuple[int, int] = (2, 4)  # conv stages, each ends in a 2x2 max pool but maybe the last
    convs_per_stage: tuple[int, int] = (1, 3)
    growth: tuple[float, ...] = (1.0, 1.5, 2.0)  # width ratio between stages
    fill: tuple[float, float] = (0.5, 1.0)  # share of the budget the widths are scaled to use
    separable: tuple[bool, ...] = (False, True)  # convs after the first as depthwise 3x3 + 1x1
    heads: tuple[str, ...] = ("gap", "flatten")
    hidden: tuple[int, ...] = (0, 32, 64)
    conv_dropout: tuple[float, float] = (0.0, 0.1)
    head_dropout: tuple[float, float] = (0.0, 0.3)
    width_step: int = 2  # channel widths are multiples of this, and at least 4
    # training recipe ranges
    optimizers: tuple[str, ...] = ("adamw", "sgd")
    lr_adamw: tuple[float, float] = (1e-3, 3e-2)
    lr_sgd: tuple[float, float] = (1e-2, 0.3)
    schedules: tuple[str, ...] = ("onecycle", "cosine")  # with 1-2 epochs an annealed lr matters most
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    rotate: tuple[float, float] = (0.0, 10.0)  # only when "augment" is sampled True
    translate: tuple[float, float] = (0.0, 0.1)
    label_smoothing: tuple[float, float] = (0.0, 0.1)
    # the data's input (what the dataset decides): channels, side in pixels, classes; and
    # whether horizontal flips are offered (natural images, not digits)
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    hflip: bool = False


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
    every conv but the first is a depthwise 3x3 + 1x1 pair (see separable). The input
    (channels, side) and the class count come from the data."""
    layers: list[Layer] = []
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


MIN_WIDTH = 4  # channels: narrower convs are not worth their per-layer overhead


def fit_widths(make, budget_target: float, growth: float, step: int, fits=None) -> ArchSpec:
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


def within(spec: ArchSpec, budget: float, max_macs: float | None = None, max_ram: float | None = None) -> bool:
    """Whether a spec is inside every limit given: parameters, MACs, peak RAM (bytes)."""
    return (param_count(spec) <= budget and (max_macs is None or macs(spec) <= max_macs)
            and (max_ram is None or peak_ram(spec) <= max_ram))


def over_budgets(spec: ArchSpec, budget: int, max_macs: int | None = None, max_ram: int | None = None
                 ) -> dict[str, tuple[int, int]]:
    """The budgets a spec exceeds: {'params' | 'macs' | 'ram': (its value, the limit)}."""
    values = {"params": (param_count(spec), budget), "macs": (macs(spec) if max_macs else 0, max_macs),
              "ram": (peak_ram(spec) if max_ram else 0, max_ram)}
    return {kind: (v, limit) for kind, (v, limit) in values.items() if limit is not None and v > limit}


def sample_spec(trial: "optuna.trial.BaseTrial", space: Space, budget: int, max_macs: int | None = None,
                max_ram: int | None = None) -> ArchSpec:
    """Sample an architecture. Works with a real trial and with optuna.trial.FixedTrial.
    The widths fill the sampled share of the tightest budget: the widest spec with
    params, MACs and peak RAM each <= fill x its limit (those given)."""
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
    optimizer = trial.suggest_categorical("optimizer", list(space.optimizers))
    lr = trial.suggest_float(f"lr_{optimizer}", *getattr(space, f"lr_{optimizer}"), log=True)
    # augmentation usually slows a 1-epoch run down: a switch, so "off" is one choice
    augment = trial.suggest_categorical("augment", [False, True])
    # flips only where the data says they make sense; a new parameter, so spaces without
    # it (digits) sample exactly as before
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


# A strong, ordinary starting point (like a tuner's default hyperparameters): three
# stages of two 3x3 convs growing 1.5x in width, a flatten head, AdamW with OneCycle at
# batch 64. A new study tries it first, so even a short search starts from a good model.
DEFAULT_TRIAL = {
    "stages": 3, "convs_per_stage": 2, "growth": 1.5, "separable": False, "fill": 0.95, "last_pool": True,
    "head": "flatten", "hidden": 0, "conv_dropout": 0.0, "head_dropout": 0.1, "optimizer": "adamw", "lr_adamw": 5e-3,
    "augment": False, "schedule": "onecycle", "batch_size": 64, "weight_decay": 1e-4, "label_smoothing": 0.05,
}
# For small budgets (a plain 3x3 net of <= 10k params has only 4-12 channels per layer):
# one conv per stage, separable after the first, a higher peak lr and batch 32. On full
# MNIST, 1 epoch, seed 0, it scored val 97.90% at 2k (1,666 params; plain DEFAULT_TRIAL
# does not fit there) and val 98.48% at 5k (plain: 98.12%).
SMALL_DEFAULT_TRIAL = {**DEFAULT_TRIAL, "convs_per_stage": 1, "separable": True, "lr_adamw": 2e-2, "batch_size": 32}
SMALL_BUDGET = 10_000
# A different kind of strong start: the quick hand-tuned recipe people use for MNIST (one
# plain conv per stage growing 1.5x, flatten, SGD Nesterov with OneCycle to lr 0.3, batch
# 64, no dropout, no label smoothing). Few MACs, so it costs seconds. Full MNIST, 1 epoch,
# seeds 0/1 (test): 2k budget 97.89/98.18 (1,450 params), 5k 98.79/98.77 (4,586: above the
# 98.72 of the earlier 5k search winner), 10k 99.03/98.89, 25k 99.12/98.97.
PLAIN_SGD_TRIAL = {**DEFAULT_TRIAL, "convs_per_stage": 1, "head_dropout": 0.0, "optimizer": "sgd", "lr_sgd": 0.3,
                   "weight_decay": 5e-5, "label_smoothing": 0.0}
PLAIN_SGD_TRIAL.pop("lr_adamw")
# For a multi-epoch search (--epochs > 1), one more default first: the two-conv default
# with mild augmentation (rotate +-7 degrees, shift +-5%) and a doubled peak lr. One epoch
# is too short for augmentation to pay; over many it is what a person would switch on.
# Measured before adding it (scripts/probe.py at 8k, 15 epochs, full MNIST, on the GPU;
# docs/gpu/h100-probe8k15-2026-11-26.jsonl), validation mean over 6 seeds: 99.38 +- 0.08
# against 99.26 +- 0.16 for the plain two-conv default; the best of 11 variants by validation.
MULTI_EPOCH_TRIAL = {**DEFAULT_TRIAL, "lr_adamw": 1e-2, "augment": True, "rotate": 7.0, "translate": 0.05}


def default_trials(budget: int, space: Space | None = None, max_macs: int | None = None,
                   max_ram: int | None = None, epochs: int = 1) -> list[dict[str, Any]]:
    """The ordinary strong candidates a new study tries first (like a tuner's defaults),
    diverse on purpose: (more than one epoch) the two-conv net with augmentation, AdamW
    with two convs per stage, (small budgets) separable convs at a high lr, and the plain
    SGD recipe of quick hand-tuned nets; with no more stages than the space's images
    allow. A default whose architecture cannot fit the budgets (two convs per stage under
    ~2.5k params) is left out rather than queued to be rejected."""
    import optuna  # lazily, as in budget_use_summary: FixedTrial builds the default's spec

    space = space or Space()
    wanted = [{**t, "stages": min(t["stages"], space.stages[1])} for t in
              (*([MULTI_EPOCH_TRIAL] if epochs > 1 else []), DEFAULT_TRIAL,
               *([SMALL_DEFAULT_TRIAL] if budget <= SMALL_BUDGET else []), PLAIN_SGD_TRIAL)]
    return [t for t in wanted
            if not over_budgets(sample_spec(optuna.trial.FixedTrial(t), space, budget, max_macs, max_ram),
                                budget, max_macs, max_ram)]


def smallest_params(space: Space) -> int:
    """The fewest parameters any spec of the space can have (narrowest, fewest stages,
    GAP head with no hidden layer): a budget below it can find nothing."""
    return min(param_count(stage_spec(space.stages[0], space.convs_per_stage[0], [MIN_WIDTH] * 8, True, "gap", 0,
                                      0.0, 0.0, sep, space.in_channels, space.image_size, space.num_classes))
               for sep in space.separable)


def smallest_of(space: Space, count) -> int:
    """The least ``count(spec)`` (macs, peak_ram...) of the narrowest specs of the space
    with the fewest stages and convs, plain or separable, with a pool after the last stage."""
    return min(count(stage_spec(space.stages[0], space.convs_per_stage[0], [MIN_WIDTH] * 8, True, "gap", 0,
                                0.0, 0.0, sep, space.in_channels, space.image_size, space.num_classes))
               for sep in space.separable)


def smallest_macs(space: Space) -> int:
    """The fewest MACs a spec of the space can have: a --max-macs below it finds nothing."""
    return smallest_of(space, macs)


def smallest_ram(space: Space) -> int:
    """The least peak RAM (bytes) a spec of the space can have: a --max-ram below it finds nothing."""
    return smallest_of(space, peak_ram)


def _use_stats(uses: list[float]) -> dict[str, Any]:
    inside = sorted(uses)
    quant = {q: inside[min(len(inside) - 1, int(q * len(inside)))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if inside else {}
    hist = [0] * 10
    for u in inside:
        hist[min(9, int(u * 10))] += 1
    return {"quantiles": quant, "histogram": hist}


def budget_use_summary(budget: int, n: int = 2000, seed: int = 0, space: Space | None = None,
                       max_macs: int | None = None, max_ram: int | None = None) -> dict[str, Any]:
    """Sample n candidates with a random sampler: share within budget and the
    distribution of budget use (params / budget) among them. With MAC or RAM limits,
    'within' means inside every limit, and ``kinds`` holds the use of each budget
    (value / limit) among those within, and ``binding`` how often each was the tightest."""
    import optuna  # lazily: space.py needs optuna only to drive sampling here

    space = space or Space()
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    limits = {k: v for k, v in (("params", budget), ("macs", max_macs), ("ram", max_ram)) if v}
    counts = {"params": param_count, "macs": macs, "ram": peak_ram}
    uses, ok = [], []  # the tightest use of each candidate; the use of each budget by those within
    for _ in range(n):
        trial = study.ask()
        spec = sample_spec(trial, space, budget, max_macs, max_ram)
        use = {k: counts[k](spec) / limit for k, limit in limits.items()}
        uses.append(max(use.values()))
        if uses[-1] <= 1.0:
            ok.append(use)
        study.tell(trial, 0.0)
    extra: dict[str, Any] = {}
    if len(limits) > 1:
        extra["kinds"] = {k: {"limit": limit, **_use_stats([u[k] for u in ok])} for k, limit in limits.items()}
        extra["binding"] = {k: sum(1 for u in ok if max(u, key=u.get) == k) for k in limits}
    inside = sorted(u for u in uses if u <= 1.0)
    quant = {q: inside[min(len(inside) - 1, int(q * len(inside)))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if inside else {}
    hist = [0] * 10
    for u in inside:
        hist[min(9, int(u * 10))] += 1
    return {"budget": budget, "n": n, "within": len(inside), "share_within": len(inside) / n,
            "quantiles": quant, "histogram": hist, **extra}
