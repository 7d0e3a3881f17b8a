"""The built-in spaces by name, each a change of family.Space's defaults (the 'plain'
space): ``--space NAME``. A new built-in space is an entry here (and its first trials in
defaults.py). Why 'default' is what it is: docs/RESULTS.md ("Search spaces")."""
from __future__ import annotations

import dataclasses
from typing import Any

from .family import Space

NAMED: dict[str, dict[str, Any]] = {
    # stage-wise plain or separable 3x3 convs joined by max pools: the space of 0.1-0.2
    "plain": {},
    # ResNet basic blocks after a 3x3 stem, joined by a max pool or a stride-2 block
    "resnet": {"blocks": ("res",), "blocks_per_stage": (1, 2), "downsample": ("max", "stride")},
    # inverted residuals (MBConv) after a 3x3 stem: kernels 3/5, expand 2-6, squeeze-excite
    "mobile": {"blocks": ("mbconv",), "blocks_per_stage": (1, 3), "downsample": ("stride", "max"),
               "kernels": (3, 5), "expand": (2, 4, 6), "se": (False, True)},
    # what a search uses unless told: all four block kinds joined by max pools, and the
    # ranges where no candidate of the measured studies was good left out: widths filling
    # under 70% of the budget, batch 256, AdamW under lr 3e-3, SGD under 0.05
    "default": {"blocks": ("conv", "separable", "res", "mbconv"), "fill": (0.7, 1.0), "batch_sizes": (32, 64, 128),
                "lr": {"adamw": (3e-3, 3e-2), "sgd": (0.05, 0.3)}},
}


def named_space(name: str) -> Space:
    return dataclasses.replace(Space(), **NAMED[name])
