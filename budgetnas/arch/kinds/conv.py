"""kind 'conv': conv -> [BatchNorm] -> [ReLU] -> [dropout].

``stride`` 2 halves the side (rounding up with 'same' padding): the strided conv that
replaces a max pool. ``groups`` splits the channels into groups (in and out must be multiples of it):
groups == in == out is a depthwise conv, which with a 1x1 conv after it makes a
separable conv (the depthwise half without BN or ReLU)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ...config import ConfigError
from . import MAX_KERNEL, MAX_WIDTH, LayerKind, rule


@dataclass(frozen=True)
class Conv(LayerKind):
    kind = "conv"
    out: int = rule(0, 1, MAX_WIDTH)  # output channels
    kernel: int = rule(3, 1, MAX_KERNEL, odd=True)
    padding: int = rule(1, 0, MAX_KERNEL // 2)
    bias: bool = False
    bn: bool = True
    act: bool = True
    dropout: float = rule(0.0, 0, below=1)
    groups: int = rule(1, 1, MAX_WIDTH)
    stride: int = rule(1, choices=(1, 2))

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        for key in ("groups", "stride"):  # specs written before these existed stay byte-identical
            if d[key] == 1:
                del d[key]
        return d

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return self.out, (s + 2 * self.padding - self.kernel) // self.stride + 1

    def params(self, cin: int) -> int:
        """Weights k*k*(cin/groups)*out, plus out biases, plus 2*out BatchNorm affine parameters."""
        return (self.out * (cin // self.groups) * self.kernel ** 2 + (self.out if self.bias else 0)
                + (2 * self.out if self.bn else 0))

    def macs(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        return cout * (cin // self.groups) * self.kernel ** 2 * s_out * s_out

    def _name(self, cin: int) -> str:
        return "conv" if self.groups == 1 else "dwconv" if self.groups == cin == self.out else f"conv g{self.groups}"

    def describe(self, cin: int, cout: int) -> str:
        stride = f"/{self.stride}" if self.stride > 1 else ""
        return (f"{self._name(cin)} {self.kernel}x{self.kernel}{stride} {cin}->{cout}" + (" +BN" if self.bn else "")
                + (" +ReLU" if self.act else ""))

    def token(self) -> str:
        k = ("" if self.kernel == 3 else f":{self.kernel}") + (f"/{self.stride}" if self.stride > 1 else "")
        return f"dw{k}" if self.groups > 1 and self.groups == self.out else f"{self.out}{k}"

    def check(self, i: int, cin: int) -> None:
        if cin % self.groups or self.out % self.groups:
            raise ConfigError(f"spec layer {i} (conv): groups ({self.groups}) must divide its {cin} input and "
                              f"{self.out} output channels")

    @staticmethod
    @functools.cache
    def torch_part():
        import torch
        from torch import nn

        class ConvBlock(nn.Module):
            """conv -> BN -> ReLU -> dropout. With ``pool`` (built where the spec has a max
            pool right after a block without dropout) the pool runs before the ReLU: the
            same function and gradients (ReLU and max commute), the ReLU on a quarter of
            the data. ``bn_pairs``: the (conv, BatchNorm) attributes to fold for inference."""

            bn_pairs = (("conv", "bn"),)

            def __init__(self, cin: int, out: int, kernel: int, padding: int, bias: bool, bn: bool, act: bool,
                         dropout: float, pool: bool = False, groups: int = 1, stride: int = 1):
                super().__init__()
                self.conv = nn.Conv2d(cin, out, kernel, stride, padding, bias=bias, groups=groups)
                self.bn = nn.BatchNorm2d(out) if bn else nn.Identity()
                self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
                self.act = nn.ReLU(inplace=True) if act else nn.Identity()
                self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.drop(self.act(self.pool(self.bn(self.conv(x)))))

            @staticmethod
            def build(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
                pool = layer["dropout"] == 0 and nxt is not None and nxt["kind"] == "pool"
                block = ConvBlock(cin, layer["out"], layer["kernel"], layer["padding"], layer["bias"], layer["bn"],
                                  layer["act"], layer["dropout"], pool, layer.get("groups", 1),
                                  layer.get("stride", 1))
                return block, layer["out"], pool

        return ConvBlock.build, (ConvBlock,)
