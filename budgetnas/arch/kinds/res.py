"""kind 'res': a residual basic block (ResNet): 3x3 conv (stride 1 or 2) -> BN -> ReLU ->
3x3 conv -> BN, plus the input (a 1x1 conv with BN where the channels or the side
change), -> ReLU -> [dropout].

Its peak int8 RAM keeps the input alive for the skip: while the second conv runs, the
input, the first conv's output and its own output are all held."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from . import MAX_WIDTH, LayerKind, rule


@dataclass(frozen=True)
class Residual(LayerKind):
    kind = "res"
    out: int = rule(0, 1, MAX_WIDTH)  # output channels (both convs)
    stride: int = rule(1, choices=(1, 2))  # 2: the first conv and the projection halve the side
    dropout: float = rule(0.0, 0, below=1)

    def projects(self, cin: int) -> bool:
        """Whether the skip needs a 1x1 projection (the shape changes)."""
        return self.stride != 1 or cin != self.out

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return self.out, (s - 1) // self.stride + 1

    def params(self, cin: int) -> int:
        """Two 3x3 convs without bias, each with BN (2 per channel), and the projection's
        1x1 conv with BN where there is one."""
        o = self.out
        return 9 * cin * o + 2 * o + 9 * o * o + 2 * o + ((cin * o + 2 * o) if self.projects(cin) else 0)

    def macs(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        return (9 * cin * cout + 9 * cout * cout + (cin * cout if self.projects(cin) else 0)) * s_out * s_out

    def live_bytes(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        """The input (kept for the skip) and two maps of the output's size: the first conv's
        output and the second's while it runs (the projection, after it, holds as much)."""
        return cin * s_in * s_in + 2 * cout * s_out * s_out

    def describe(self, cin: int, cout: int) -> str:
        stride = "/2" if self.stride == 2 else ""
        skip = f"1x1{stride} proj" if self.projects(cin) else "identity"
        return f"res 3x3{stride} {cin}->{cout} +BN +ReLU, 3x3 +BN, + {skip} +ReLU"

    def token(self) -> str:
        return f"r{self.out}" + ("/2" if self.stride == 2 else "")

    @staticmethod
    @functools.cache
    def torch_part():
        import torch
        from torch import nn

        class ResBlock(nn.Module):
            """conv1 -> bn1 -> ReLU -> conv2 -> bn2, + the input (or proj -> proj_bn of it),
            -> ReLU -> dropout. The branch runs before the projection, so the input is the
            only tensor held across it."""

            bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("proj", "proj_bn"))

            def __init__(self, cin: int, out: int, stride: int, dropout: float):
                super().__init__()
                self.conv1 = nn.Conv2d(cin, out, 3, stride, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(out)
                self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(out)
                project = stride != 1 or cin != out
                self.proj = nn.Conv2d(cin, out, 1, stride, 0, bias=False) if project else nn.Identity()
                self.proj_bn = nn.BatchNorm2d(out) if project else nn.Identity()
                self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                return self.drop(torch.relu(y + self.proj_bn(self.proj(x))))

        def res_block(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            return ResBlock(cin, layer["out"], layer["stride"], layer["dropout"]), layer["out"], False

        return res_block, (ResBlock, res_block)
