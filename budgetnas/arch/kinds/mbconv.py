"""kind 'mbconv': an inverted residual (MobileNetV2's MBConv): 1x1 expand to ``expand``
times the input channels -> BN -> ReLU (no expand layer at ratio 1), k x k depthwise
(k 3, 5 or 7; stride 1 or 2) -> BN -> ReLU, optional squeeze-excite (global average
pool -> 1x1 conv to a quarter of the input channels -> ReLU -> 1x1 conv back -> sigmoid,
scaling the channels), 1x1 project -> BN (no ReLU), plus the input where the shape is
kept (stride 1, as many channels out as in) -> [dropout].

Its peak int8 RAM counts every map alive at each of those steps: the input is held to
the end where there is a skip."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from . import MAX_WIDTH, LayerKind, rule

KERNELS = (3, 5, 7)


@dataclass(frozen=True)
class MBConv(LayerKind):
    kind = "mbconv"
    out: int = rule(0, 1, MAX_WIDTH)  # output channels
    expand: int = rule(4, 1, 16)  # hidden channels = expand x input channels
    kernel: int = rule(3, choices=KERNELS)  # the depthwise conv's
    stride: int = rule(1, choices=(1, 2))
    se: bool = False  # squeeze-excite
    dropout: float = rule(0.0, 0, below=1)

    def mid(self, cin: int) -> int:
        return cin * self.expand

    @staticmethod
    def squeezed(cin: int) -> int:
        """Squeeze-excite's hidden width: a quarter of the block's input channels (EfficientNet)."""
        return max(1, cin // 4)

    def skips(self, cin: int) -> bool:
        return self.stride == 1 and cin == self.out

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return self.out, (s - 1) // self.stride + 1

    def params(self, cin: int) -> int:
        """[1x1 expand + BN] + depthwise k x k + BN + [SE: two 1x1 convs with bias] + 1x1 project + BN."""
        m, r, o = self.mid(cin), self.squeezed(cin), self.out
        return ((cin * m + 2 * m if self.expand > 1 else 0) + m * self.kernel ** 2 + 2 * m
                + (2 * m * r + r + m if self.se else 0) + m * o + 2 * o)

    def macs(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        m, r = self.mid(cin), self.squeezed(cin)
        return ((cin * m * s_in * s_in if self.expand > 1 else 0) + m * self.kernel ** 2 * s_out * s_out
                + (2 * m * r if self.se else 0) + m * cout * s_out * s_out)

    def live_bytes(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        """The largest of its steps: expand (input + expanded), depthwise (its input + its
        output), squeeze-excite (the depthwise output + the pooled vector + the squeezed one),
        project (the depthwise output + the output); the input counts at every step while
        the skip holds it."""
        m, x = self.mid(cin), cin * s_in * s_in
        e, d, o = m * s_in * s_in, m * s_out * s_out, cout * s_out * s_out
        keep = x if self.skips(cin) else 0
        steps = [x + e, e + keep + d] if self.expand > 1 else [x + d]
        if self.se:
            steps.append(d + m + self.squeezed(cin) + keep)
        steps.append(d + o + keep)
        return max(steps)

    def describe(self, cin: int, cout: int) -> str:
        k, m = self.kernel, self.mid(cin)
        parts = ([f"1x1 {cin}->{m}"] if self.expand > 1 else []) + [f"dw {k}x{k}" + ("/2" if self.stride == 2 else "")]
        parts += ([f"SE {self.squeezed(cin)}"] if self.se else []) + [f"1x1 ->{cout}"]
        return f"mbconv t{self.expand} " + ", ".join(parts) + (" + skip" if self.skips(cin) else "")

    def token(self) -> str:
        return (f"m{self.out}" + (f":{self.kernel}" if self.kernel != 3 else "") + f"x{self.expand}"
                + ("se" if self.se else "") + ("/2" if self.stride == 2 else ""))

    @staticmethod
    @functools.cache
    def torch_part():
        import torch
        from torch import nn

        class SqueezeExcite(nn.Module):
            def __init__(self, channels: int, squeezed: int):
                super().__init__()
                self.reduce = nn.Conv2d(channels, squeezed, 1)
                self.expand = nn.Conv2d(squeezed, channels, 1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                s = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
                return x * torch.sigmoid(self.expand(s))

        class MBConvBlock(nn.Module):
            """[expand -> expand_bn -> ReLU] -> dw -> dw_bn -> ReLU -> [se] -> project ->
            project_bn, [+ input] -> dropout."""

            bn_pairs = (("expand", "expand_bn"), ("dw", "dw_bn"), ("project", "project_bn"))

            def __init__(self, cin: int, out: int, expand: int, kernel: int, stride: int, se: bool, dropout: float):
                super().__init__()
                mid = cin * expand
                self.expand = nn.Conv2d(cin, mid, 1, bias=False) if expand > 1 else nn.Identity()
                self.expand_bn = nn.BatchNorm2d(mid) if expand > 1 else nn.Identity()
                self.expanded = expand > 1
                self.dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
                self.dw_bn = nn.BatchNorm2d(mid)
                self.se = SqueezeExcite(mid, max(1, cin // 4)) if se else nn.Identity()
                self.project = nn.Conv2d(mid, out, 1, bias=False)
                self.project_bn = nn.BatchNorm2d(out)
                self.skip = stride == 1 and cin == out
                self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h = self.expand_bn(self.expand(x))
                if self.expanded:
                    h = torch.relu(h)
                h = self.se(torch.relu(self.dw_bn(self.dw(h))))
                y = self.project_bn(self.project(h))
                if self.skip:
                    y = y + x
                return self.drop(y)

        def mbconv_block(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            block = MBConvBlock(cin, layer["out"], layer["expand"], layer["kernel"], layer["stride"], layer["se"],
                                layer["dropout"])
            return block, layer["out"], False

        return mbconv_block, (SqueezeExcite, MBConvBlock, mbconv_block)
