"""ArchSpec: a whole network as data (layers of the registered kinds, then a head), its
JSON round trip, its checks, and **the** analytic counts: parameters, MACs and peak
int8 activation RAM, each tested against the built model.

No torch here: models, trials and exports all derive from the spec.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Iterable

from ..config import ConfigError
from .kinds import MAX_SIDE, MAX_WIDTH, LayerKind, check_fields, layer_from_dict, registry, rule, shown
from .kinds.conv import Conv
from .kinds.pool import Pool

POOL = Pool()
MAX_LAYERS = 10_000  # a spec longer than this is refused before any counting
MAX_PARAMS = 1_000_000_000  # a network larger than this is refused before it is built


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. Head: 'gap' (global average pool) or 'flatten', then for each
    hidden width [dropout] -> linear -> ReLU, then [dropout] -> linear to the classes.
    With ``linear=False`` there is no linear layer: the last conv emits one channel per
    class and the pooled map is the logits (seeds C and D)."""

    layers: tuple[LayerKind, ...]
    head: str = rule("gap", choices=("gap", "flatten"))
    hidden: tuple[int, ...] = rule((), 1, MAX_WIDTH)
    head_dropout: float = rule(0.0, 0, below=1)
    head_bias: bool = True
    linear: bool = True
    in_channels: int = rule(1, 1, MAX_WIDTH)
    image_size: int = rule(28, 1, MAX_SIDE)
    num_classes: int = rule(10, 1, MAX_WIDTH)

    # --- JSON round trip -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["layers"] = [layer.to_dict() for layer in self.layers]
        d["hidden"] = list(self.hidden)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        """A spec from its JSON: the schema (every key known, of its type and in its range:
        kinds/__init__.py) is checked before anything is counted, then validate()."""
        if not isinstance(d, dict) or type(d.get("layers")) not in (list, tuple):
            got = shown(d.get("layers")) + " for 'layers'" if isinstance(d, dict) else shown(d)
            raise ConfigError(f"a spec is a JSON object with a 'layers' list (got {got}): "
                              "export one with 'budgetnas export'")
        if len(d["layers"]) > MAX_LAYERS:
            raise ConfigError(f"spec has {len(d['layers']):,} layers, more than {MAX_LAYERS:,}: pass a real spec")
        check_fields(cls, d, "spec", ignore=())
        layers = tuple(layer_from_dict(layer, i) for i, layer in enumerate(d["layers"]))
        rest = {k: v for k, v in d.items() if k != "layers"}
        rest["hidden"] = tuple(rest.get("hidden", ()))
        spec = cls(layers=layers, **rest)
        validate(spec)
        return spec

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"spec is not valid JSON ({e.msg} at line {e.lineno})") from None
        except RecursionError:
            raise ConfigError("spec is nested too deeply to be a spec: pass a spec.json made by budgetnas") from None
        except ValueError:  # an integer of more than 4,300 digits
            raise ConfigError("spec holds a number of over 4,300 digits: pass a spec.json made by budgetnas") from None
        return cls.from_dict(d)


def conv(out: int, kernel: int = 3, padding: int | None = None, *, bias: bool = False, bn: bool = True,
         act: bool = True, dropout: float = 0.0, groups: int = 1, stride: int = 1) -> Conv:
    """A conv layer; padding defaults to 'same' (kernel // 2)."""
    return Conv(out, kernel, kernel // 2 if padding is None else padding, bias, bn, act, dropout, groups, stride)


def separable(cin: int, out: int, dropout: float = 0.0, stride: int = 1) -> list[Conv]:
    """A 3x3 separable conv: depthwise 3x3 (no BN, no ReLU; stride 2 halves the side), then
    1x1 cin -> out with BN and ReLU: 9*cin + cin*out + 2*out params against 9*cin*out + 2*out
    for a full 3x3."""
    return [conv(cin, groups=cin, bn=False, act=False, stride=stride), conv(out, 1, dropout=dropout)]


# --- shapes and counts ----------------------------------------------------------------------
def walk(spec: ArchSpec) -> Iterable[tuple[LayerKind, int, int, int, int]]:
    """Yield (layer, in_channels, in_size, out_channels, out_size) for each layer."""
    c, s = spec.in_channels, spec.image_size
    for layer in spec.layers:
        c2, s2 = layer.out_shape(c, s)
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


def param_count(spec: ArchSpec) -> int:
    """The trainable parameter count: what a budget limits.

    Definition: the sum of each layer's own count (a conv: ``k*k*(c_in/groups)*c_out +
    c_out*[bias] + 2*c_out*[BN]``; a pool: 0) plus, over linear layers of the head,
    ``d_in*d_out + d_out*[bias]``. BatchNorm running statistics (buffers) are not
    trainable. Equal to ``sum(p.numel() for p in build_model(spec).parameters())`` (tested).
    """
    total = sum(layer.params(cin) for layer, cin, _, _, _ in walk(spec))
    dims = head_dims(spec)
    for d_in, d_out in zip(dims, dims[1:]):
        total += d_in * d_out + (d_out if spec.head_bias else 0)
    return total


def layer_table(spec: ArchSpec) -> list[dict[str, Any]]:
    """Per layer: name, output shape, parameters, MACs (multiply-accumulates per image)."""
    rows = [{"name": f"features.{i}", "layer": layer.describe(cin, cout), "shape": [cout, s, s],
             "params": layer.params(cin), "macs": layer.macs(cin, s_in, cout, s)}
            for i, (layer, cin, s_in, cout, s) in enumerate(walk(spec))]
    dims = head_dims(spec)
    c, _ = feature_shape(spec)
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
    alive while it runs (the layer kind's live_bytes: input + output at 1 byte per
    element, plus what it keeps alive for later). The steps are those of a deployed
    network: each layer (BatchNorm folded into its conv, ReLU in place), the global
    average pool, each linear layer. Flatten is a view of the feature map (no new
    tensor) and dropout is gone at inference: neither is a step."""
    rows = [{"name": f"features.{i}", "in": cin * s_in * s_in, "out": cout * s * s,
             "bytes": layer.live_bytes(cin, s_in, cout, s)}
            for i, (layer, cin, s_in, cout, s) in enumerate(walk(spec))]
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
    byte per element (int8), and whatever a layer keeps for a later one (a skip
    connection's tensor); the first layer counts the input image. Weights (flash) and the
    runtime's own scratch buffers are not counted. Equal to the same maximum measured on
    the built model's feature maps with forward hooks (tested).
    """
    return max(r["bytes"] for r in activation_table(spec))


def validate(spec: ArchSpec) -> None:
    """Raise ConfigError if the spec cannot be built: the schema's check of every value
    first (a spec made in Python is checked as one read from JSON), then what depends on
    the layers before (groups, the image side), then the whole (a conv, the head, size)."""
    if type(spec.layers) is not tuple or len(spec.layers) > MAX_LAYERS:
        raise ConfigError(f"spec layers must be a tuple of at most {MAX_LAYERS:,} layers")
    check_fields(ArchSpec, {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}, "spec", ignore=())
    kinds = registry()
    for i, layer in enumerate(spec.layers):
        if type(layer) is not kinds.get(getattr(layer, "kind", None)):
            raise ConfigError(f"spec layer {i} is not a layer kind of this version")
        layer.check_fields(i)
    for i, (layer, cin, _, _, s) in enumerate(walk(spec)):
        layer.check(i, cin)
        if s < 1:
            raise ConfigError(f"spec layer {i} shrinks the {spec.image_size}px image to nothing: use fewer pools or padding")
        if s > MAX_SIDE:
            raise ConfigError(f"spec layer {i} grows the image to {s:,}px, over {MAX_SIDE:,}: use less padding")
    if not any(layer.params(c) for layer, c, _, _, _ in walk(spec)):
        raise ConfigError("spec needs at least one conv layer")
    c, _ = feature_shape(spec)
    if not spec.linear and (c != spec.num_classes or spec.hidden):
        raise ConfigError(f"a spec without a linear head must end in a conv with {spec.num_classes} channels and no hidden layers")
    params = param_count(spec)
    if params > MAX_PARAMS:
        raise ConfigError(f"spec has {params:,} parameters, more than budgetnas builds ({MAX_PARAMS:,}): "
                          "pass a smaller spec")


# --- budgets ------------------------------------------------------------------------------------
UNITS = {"params": "params", "macs": "MACs", "ram": "bytes"}  # what each budget kind counts
COUNTS = {"params": param_count, "macs": macs, "ram": peak_ram}


def over_budgets(spec: ArchSpec, budget: int, max_macs: int | None = None, max_ram: int | None = None
                 ) -> dict[str, tuple[int, int]]:
    """The budgets a spec exceeds: {'params' | 'macs' | 'ram': (its value, the limit)}."""
    limits = {"params": budget, "macs": max_macs, "ram": max_ram}
    values = {kind: (COUNTS[kind](spec), limit) for kind, limit in limits.items() if limit is not None}
    return {kind: (v, limit) for kind, (v, limit) in values.items() if v > limit}


def within(spec: ArchSpec, budget: float, max_macs: float | None = None, max_ram: float | None = None) -> bool:
    """Whether a spec is inside every limit given: parameters, MACs, peak RAM (bytes)."""
    return (param_count(spec) <= budget and (max_macs is None or macs(spec) <= max_macs)
            and (max_ram is None or peak_ram(spec) <= max_ram))


def summary(spec: dict | None) -> str:
    """A short architecture string from a spec's JSON: each layer's token ('16' a 3x3 conv,
    '16:1' a 1x1, '16/2' stride 2, 'dw' a depthwise conv, 's16' a separable one (depthwise
    then 1x1), 'P' a 2x2 max pool, 'A' an average pool, 'r16' a residual block, 'm16x4se' an
    inverted residual of expand ratio 4 with squeeze-excite ('m16:5x4' kernel 5)), then the head, e.g. '8 8 P 16 16 P 32 | gap fc64', '8 P s16 P s24 | flat'.
    '-' for no spec; a layer of an unknown kind shows as '?'."""
    if not spec:
        return "-"
    tokens: list[str] = []
    for i, d in enumerate(spec.get("layers", [])):
        try:
            token = layer_from_dict(d, i).token()
        except ConfigError:
            token = "?"
        if tokens and tokens[-1] in ("dw", "dw/2") and token.endswith(":1") and token[:-2].isdigit():
            tokens[-1] = f"s{token[:-2]}{tokens[-1][2:]}"  # the 1x1 half of a separable conv
        else:
            tokens.append(token)
    if not spec.get("linear", True):
        head = "gap (conv logits)"
    else:
        head = " ".join(["flat" if spec.get("head") == "flatten" else "gap", *(f"fc{h}" for h in spec.get("hidden", ()))])
    return f"{' '.join(tokens)} | {head}"
