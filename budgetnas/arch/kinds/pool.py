"""kind 'pool': 2x2 max pool, stride 2 (the side is floored); the base of the other 2x2
pools (avgpool.py)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from . import LayerKind, check_fields

# the keys of a conv that 0.1.0 accepted (and ignored) on a pool: still ignored, any other refused
LEGACY_KEYS = ("kind", "out", "kernel", "padding", "bias", "bn", "act", "dropout", "groups")


@dataclass(frozen=True)
class Pool(LayerKind):
    kind = "pool"
    op: ClassVar[str] = "maxpool"  # its layer-table word
    letter: ClassVar[str] = "P"  # its token

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any], i: int = 0) -> "Pool":
        check_fields(cls, d, f"spec layer {i} ({cls.kind})", ignore=LEGACY_KEYS)
        return cls()

    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        return c, s // 2

    def describe(self, cin: int, cout: int) -> str:
        return f"{self.op} 2x2"

    def token(self) -> str:
        return self.letter

    @staticmethod
    @functools.cache
    def torch_part():
        from torch import nn

        def max_pool(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            return nn.MaxPool2d(2), cin, False

        return max_pool, (max_pool,)
