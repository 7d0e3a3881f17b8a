"""Data-subset fidelity: a class-balanced share of the training images per trial,
random or a k-means coreset, optionally ordered easy-to-hard (a curriculum)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means (k-means++-free: random init from the data). Returns
    (centroids k x d, assignment n)."""
    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    assign = torch.zeros(len(x), dtype=torch.long)
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).clamp_min(1).unsqueeze(1).to(x.dtype)
        centroids = torch.where(counts > 0, sums / counts, centroids)
    return centroids, assign


def select_subset(x: torch.Tensor, y: torch.Tensor, fraction: float, method: str = "random",
                  curriculum: bool = False, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced subset with ``fraction`` of the images.

    random: a seeded random sample per class. kmeans: per class, k-means with as many
    clusters as images to keep (on 14x14 downsampled pixels), keeping the image nearest
    each centroid (a coreset that covers the class's modes). curriculum: order the subset
    easy-to-hard, by distance to the class mean (typical digits first); otherwise the
    order is by class and the trainer shuffles it.
    """
    gen = torch.Generator().manual_seed(seed)
    small = F.avg_pool2d(x, 2).flatten(1)  # half the side: 4x cheaper distances, same structure
    keep, hardness = [], []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().squeeze(1)
        k = max(1, round(fraction * len(idx)))
        feats = small[idx]
        if method == "kmeans":
            centroids, _ = kmeans(feats, k, generator=gen)
            nearest = torch.cdist(centroids, feats).argmin(1).unique()
            chosen = idx[nearest]
        else:
            chosen = idx[torch.randperm(len(idx), generator=gen)[:k]]
        keep.append(chosen)
        hardness.append((small[chosen] - feats.mean(0)).norm(dim=1))
    keep_t, hard_t = torch.cat(keep), torch.cat(hardness)
    if curriculum:
        keep_t = keep_t[hard_t.argsort()]
    return keep_t
