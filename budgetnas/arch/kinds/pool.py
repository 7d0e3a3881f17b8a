"""kind 'pool': 2x2 max pool, stride 2 (the side is floored)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from . import LayerKind


@dataclass(frozen=True)
class Pool(LayerKind):
    kind = "pool"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "pool"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pool":
        return cls()  # 0.1.0 accepted (and ignored) a conv's keys on a pool

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return c, s // 2

    def describe(self, cin: int, cout: int) -> str:
        return "maxpool 2x2"

    def token(self) -> str:
        return "P"

    @staticmethod
    @functools.cache
    def torch_part():
        from torch import nn

        def max_pool(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            return nn.MaxPool2d(2), cin, False

        return max_pool, (max_pool,)
