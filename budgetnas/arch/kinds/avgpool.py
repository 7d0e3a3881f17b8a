"""kind 'avgpool': 2x2 average pool, stride 2 (the side is floored): the smooth
alternative to the max pool."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from . import LayerKind


@dataclass(frozen=True)
class AvgPool(LayerKind):
    kind = "avgpool"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "avgpool"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AvgPool":
        return cls()

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return c, s // 2

    def describe(self, cin: int, cout: int) -> str:
        return "avgpool 2x2"

    def token(self) -> str:
        return "A"

    @staticmethod
    @functools.cache
    def torch_part():
        from torch import nn

        def avg_pool(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            return nn.AvgPool2d(2), cin, False

        return avg_pool, (avg_pool,)
