"""Batched augmentation: random rotation, shift and horizontal flips of a whole batch
in one call, on the batch's device."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, rotate: float, translate: float,
            background: float | tuple[float, ...] | torch.Tensor, generator: torch.Generator | None = None,
            hflip: bool = False) -> torch.Tensor:
    """Random rotation (uniform +-rotate degrees) and shift (uniform +-translate of the
    side) of a whole batch in one affine_grid/grid_sample call. Pixels that come from
    outside the image get the background value (one per channel; a tensor of shape
    1xCx1x1 on the batch's device saves a copy per call). ``hflip``: each image mirrored
    left-right with probability 1/2 (drawn before the affine part).

    The random numbers are drawn on the batch's device from ``generator`` (which must
    live there; None: the device's default one), so a CUDA batch is augmented without
    any copy from the host or wait for the device."""
    n = x.shape[0]
    if hflip:
        flip = (torch.rand(n, generator=generator, device=x.device) < 0.5).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    if rotate <= 0 and translate <= 0:
        return x
    if isinstance(background, tuple):
        background = torch.tensor(background, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    u = torch.rand(n, 3, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
    angle = u[:, 0] * math.radians(rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in [-1, 1] coordinates: a shift of t * side is 2 * t there
    tx, ty = u[:, 1] * 2 * translate, u[:, 2] * 2 * translate
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background
