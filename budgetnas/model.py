"""build_model(spec) -> nn.Module, nothing else.

state_dict keys are a file format: features.<i>.conv/.bn for conv layers, head.fc<j>
for the head's linear layers. export.py copies this file's classes verbatim into the
standalone model.py it writes, so keep them free of budgetnas imports.
"""
from __future__ import annotations

import torch
from torch import nn

from .space import ArchSpec, head_dims


# --- standalone part (copied into exported model.py) ---------------------------------
class ConvBlock(nn.Module):
    """conv -> BN -> ReLU -> dropout. With ``pool`` (only built where the spec has a max
    pool right after a block without dropout) the pool runs before the ReLU: the same
    function and gradients (ReLU and max commute), with the ReLU on a quarter of the data."""

    def __init__(self, cin: int, out: int, kernel: int, padding: int, bias: bool, bn: bool, act: bool,
                 dropout: float, pool: bool = False, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, out, kernel, padding=padding, bias=bias, groups=groups)
        self.bn = nn.BatchNorm2d(out) if bn else nn.Identity()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.pool(self.bn(self.conv(x)))))


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


def build_from_dict(spec: dict) -> Net:
    """Build from the spec's JSON dict (what export's model.py embeds)."""
    features: list[nn.Module] = []
    cin = spec["in_channels"]
    layers = spec["layers"]

    def takes_pool(j: int) -> bool:  # conv block j runs the max pool that follows it
        return (layers[j]["kind"] == "conv" and layers[j]["dropout"] == 0 and j + 1 < len(layers)
                and layers[j + 1]["kind"] == "pool")

    for i, l in enumerate(layers):
        if l["kind"] == "pool":  # an Identity where the block before took the pool in: same indices
            features.append(nn.Identity() if i > 0 and takes_pool(i - 1) else nn.MaxPool2d(2))
            continue
        features.append(ConvBlock(cin, l["out"], l["kernel"], l["padding"], l["bias"], l["bn"], l["act"], l["dropout"],
                                  takes_pool(i), l.get("groups", 1)))
        cin = l["out"]
    head = Head(spec["head"] if spec["linear"] else "gap", spec["_head_dims"], spec["head_dropout"], spec["head_bias"])
    return Net(features, head)
# --- end of standalone part ----------------------------------------------------------


def spec_dict_for_build(spec: ArchSpec) -> dict:
    """The spec as a dict, with the head's widths resolved (so the standalone builder
    needs no shape arithmetic)."""
    d = spec.to_dict()
    d["_head_dims"] = head_dims(spec)
    return d


def build_model(spec: ArchSpec) -> nn.Module:
    return build_from_dict(spec_dict_for_build(spec))


def literal_order(model: Net) -> nn.Module:
    """``model`` with its layers in the spec's literal order, as a plain script writes
    them: conv -> BN -> ReLU (not in place) -> dropout, then the max pool as a layer of
    its own. The same modules (so the same weights): the same function and gradients as
    ``model``, whose blocks run a following pool before the ReLU. What that order is
    tested against, and what scripts/bench.py's reference loop trains."""
    layers: list[nn.Module] = []
    for m in model.features:
        if isinstance(m, ConvBlock):
            layers += [m.conv, m.bn, nn.ReLU() if isinstance(m.act, nn.ReLU) else m.act, m.drop]
            if isinstance(m.pool, nn.MaxPool2d):
                layers.append(nn.MaxPool2d(2))
        elif not isinstance(m, nn.Identity):  # the Identity a fused pool left behind
            layers.append(m)
    return nn.Sequential(nn.Sequential(*layers), model.head)
