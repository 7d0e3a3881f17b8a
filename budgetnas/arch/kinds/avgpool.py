"""kind 'avgpool': 2x2 average pool, stride 2 (the side is floored): the smooth
alternative to the max pool."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from .pool import Pool


@dataclass(frozen=True)
class AvgPool(Pool):
    kind = "avgpool"
    op = "avgpool"
    letter = "A"

    @staticmethod
    @functools.cache
    def torch_part():
        from torch import nn

        def avg_pool(layer: dict, cin: int, nxt: dict | None) -> tuple[nn.Module, int, bool]:
            return nn.AvgPool2d(2), cin, False

        return avg_pool, (avg_pool,)
