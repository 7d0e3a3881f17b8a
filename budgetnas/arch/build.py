"""build_model(spec) -> nn.Module, and the standalone source an export's model.py holds.

state_dict keys are a file format: features.<i>.<the kind's own names> (a conv layer:
features.<i>.conv / .bn) for the layers, head.fc<j> for the head's linear layers. The
classes between the marker comments below, with each used kind's torch part, are
copied verbatim into the standalone model.py an export writes, so keep them free of
budgetnas imports.
"""
from __future__ import annotations

import inspect
import textwrap

import torch
from torch import nn

from .kinds import registry
from .spec import ArchSpec, head_dims

START_MARK = "# --- standalone part"
END_MARK = "# --- end of standalone part"


# --- standalone part (copied into exported model.py) ---------------------------------
class Head(nn.Module):
    """GAP or flatten, then [dropout -> linear -> ReLU] per hidden width, [dropout -> linear]."""

    def __init__(self, pool: str, dims: list[int], dropout: float, bias: bool):
        super().__init__()
        self.pool = pool
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims, dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3)) if self.pool == "gap" else x.flatten(1)
        for i, fc in enumerate(self.fcs):
            x = fc(self.drop(x))
            if i < len(self.fcs) - 1:
                x = torch.relu(x)
        return x


class Net(nn.Module):
    def __init__(self, features: list[nn.Module], head: Head):
        super().__init__()
        self.features = nn.Sequential(*features)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_from_dict(spec: dict, blocks: dict) -> Net:
    """Build from the spec's JSON dict (what export's model.py embeds); ``blocks`` maps
    each layer kind to its build function. A layer that the one before it runs (a max
    pool inside a conv block) is an nn.Identity in its place: the same indices."""
    features: list[nn.Module] = []
    cin = spec["in_channels"]
    layers = spec["layers"]
    taken = False
    for i, layer in enumerate(layers):
        if taken:
            features.append(nn.Identity())
            taken = False
            continue
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        module, cin, taken = blocks[layer["kind"]](layer, cin, nxt)
        features.append(module)
    head = Head(spec["head"] if spec["linear"] else "gap", spec["_head_dims"], spec["head_dropout"], spec["head_bias"])
    return Net(features, head)
# --- end of standalone part ----------------------------------------------------------


def spec_dict_for_build(spec: ArchSpec) -> dict:
    """The spec as a dict, with the head's widths resolved (so the standalone builder
    needs no shape arithmetic)."""
    d = spec.to_dict()
    d["_head_dims"] = head_dims(spec)
    return d


def blocks(kinds: set[str] | None = None) -> dict:
    """{kind: build function} of the registered kinds (only ``kinds`` if given)."""
    return {name: cls.torch_part()[0] for name, cls in registry().items() if kinds is None or name in kinds}


def build_model(spec: ArchSpec) -> nn.Module:
    return build_from_dict(spec_dict_for_build(spec), blocks())


def standalone_source(spec: ArchSpec) -> str:
    """The source model.py needs to build ``spec`` without budgetnas: the torch part of each
    kind it uses, this file's standalone part, and ``BLOCKS`` naming each kind's builder."""
    used = sorted({layer.kind for layer in spec.layers})
    parts = []
    for name in used:
        build, objects = registry()[name].torch_part()
        parts += [textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects]
    source = inspect.getsource(inspect.getmodule(build_from_dict))
    start = source.index("\n", source.index("\n" + START_MARK) + 1) + 1  # the marker lines, not the constants
    parts.append(source[start:source.index("\n" + END_MARK)].rstrip())
    names = {name: registry()[name].torch_part()[0].__qualname__.rsplit("<locals>.", 1)[-1] for name in used}
    parts.append("BLOCKS = {" + ", ".join(f"{k!r}: {v}" for k, v in names.items()) + "}")
    return "\n\n\n".join(parts) + "\n"


def literal_order(model: Net) -> nn.Module:
    """``model`` with its layers in the spec's literal order, as a plain script writes
    them: conv -> BN -> ReLU (not in place) -> dropout, then the max pool as a layer of
    its own. The same modules (so the same weights): the same function and gradients as
    ``model``, whose conv blocks run a following pool before the ReLU. What that order is
    tested against, and what scripts/bench.py's reference loop trains."""
    layers: list[nn.Module] = []
    for m in model.features:
        if all(hasattr(m, a) for a in ("conv", "bn", "pool", "act", "drop")):  # a conv block
            layers += [m.conv, m.bn, nn.ReLU() if isinstance(m.act, nn.ReLU) else m.act, m.drop]
            if isinstance(m.pool, nn.MaxPool2d):
                layers.append(nn.MaxPool2d(2))
        elif not isinstance(m, nn.Identity):  # the Identity a fused pool left behind
            layers.append(m)
    return nn.Sequential(nn.Sequential(*layers), model.head)
