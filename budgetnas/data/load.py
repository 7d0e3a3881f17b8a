"""Any source -> resident tensors: Data, with a seeded train/val split of the training
images (and a seeded, stratified test split where the source has none), normalised with
the source's published statistics or the per-channel mean/std of the training split."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig, env
from . import cache
from .arrays import Arrays, SourceError, fingerprint
from .sources import Source, cache_key, source_for
from .subset import select_subset

HOLDOUT = 0.2  # share of each class held out as the test set when a source has none


@dataclass
class Data:
    """Everything a trial needs, resident in memory (normalised float32, NCHW)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    background: float | tuple[float, ...]  # the normalised value of a black pixel, per channel (augmentation fill)
    info: dict = field(default_factory=dict)  # dataset, identity, shape, classes, mean/std, split seed, sizes
    ordered: bool = False  # train in the stored order in epoch 1 (curriculum), shuffled after
    hflip: bool = False  # horizontal flips make sense for these images (a searchable option)

    def to(self, device: torch.device | str) -> "Data":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Data(**moved, background=self.background, info=self.info, ordered=self.ordered, hflip=self.hflip)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.info.get("classes") or ()) or 10


def normalise(images: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 N x C x H x W (or N x H x W) -> float32 (x / 255 - mean) / std per channel."""
    images = np.ascontiguousarray(images)
    x = torch.from_numpy(images if images.flags.writeable else images.copy())
    x = (x.unsqueeze(1) if x.dim() == 3 else x).float().div_(255.0)
    c = x.shape[1]
    return x.sub_(torch.tensor(mean).view(1, c, 1, 1)).div_(torch.tensor(std).view(1, c, 1, 1))


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 N x C x H x W images scaled to [0, 1] (float64
    sums over chunks: exact enough, never a float copy of the whole set)."""
    c = x.shape[1]
    total, sq, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(x), 4096):
        part = x[i:i + 4096].astype(np.float64) / 255.0
        total += part.sum((0, 2, 3))
        sq += (part ** 2).sum((0, 2, 3))
        n += part.shape[0] * part.shape[2] * part.shape[3]
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(sq / max(n, 1) - mean ** 2, 0.0))
    return [round(float(m), 6) for m in mean], [round(float(max(s, 1e-3)), 6) for s in std]


def holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, test) indices: a seeded, stratified share ``fraction`` of each class (at
    least one image per class with two or more) held out as the test set."""
    gen = np.random.default_rng(seed)
    keep, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[gen.permutation(len(idx))]
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
        test.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(test))


def arrays_of(cfg: DataConfig, folder: Path | None) -> tuple[Arrays, Source, str]:
    """The source's checked arrays: from the decoded cache in ``folder`` (None: no cache)
    when the source's files are unchanged, else read (and cached). Returns (arrays,
    source, where they were read)."""
    source = source_for(cfg.dataset)
    listing = source.listing(cfg.dataset) if folder is not None else None
    key = None if listing is None else cache_key(cfg.dataset, cfg.image_size, cfg.channels, listing)
    hit = cache.read(folder, key) if key else None
    if hit is not None:
        return hit, source, cfg.dataset
    arrays, where = source.load(cfg)
    if not arrays.fingerprint:
        arrays.fingerprint = fingerprint(arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test, arrays.classes,
                                         arrays.x_val, arrays.y_val)
    if key:
        cache.write(folder, key, arrays)
    return arrays, source, where


def load_arrays(dataset: str, image_size: int | None = None, channels: int | None = None,
                data_dir: str | None = None, cache: Path | None = None) -> Arrays:
    """A dataset as checked uint8 arrays with their fingerprint (through the decoded cache
    in ``cache`` if given): what load_data splits and normalises."""
    cfg = DataConfig(dataset=dataset, image_size=image_size, channels=channels, data_dir=data_dir, val_size=None)
    return arrays_of(cfg, cache)[0]


def load_data(cfg: DataConfig) -> Data:
    """Any source -> resident tensors (the module docstring)."""
    arrays, source, where = arrays_of(cfg, env.decoded_cache())
    notes: list[str] = list(arrays.notes)
    x, y = arrays.x_train, arrays.y_train
    test_from = "given"
    if arrays.x_test is None:
        keep, test = holdout(y, HOLDOUT, cfg.split_seed)
        x_test, y_test = x[test], y[test]
        x, y = x[keep], y[keep]
        test_from = f"held out: {round(100 * HOLDOUT)}% of each class, seed {cfg.split_seed}"
        notes.append(f"no test split given: {len(test):,} images ({round(100 * HOLDOUT)}% of each class, "
                     f"seed {cfg.split_seed}) held out as the test set")
    else:
        x_test, y_test = arrays.x_test, arrays.y_test
    if arrays.x_val is not None:  # the source's own validation split (a val/ folder, x_val)
        if cfg.val_size is not None:
            raise SourceError(f"{where}: it has its own validation split ({len(arrays.y_val):,} images): "
                              "drop --val-size, or merge the split into the training images to draw one")
        val_size, val_from = len(arrays.y_val), "given"
        x, y = np.concatenate([arrays.x_val, x]), np.concatenate([arrays.y_val, y])
        val_idx, train_idx = torch.arange(val_size), torch.arange(val_size, len(x))
    else:
        val_size = cfg.val_size if cfg.val_size is not None else min(5000, max(1, len(x) // 10))
        val_from = f"drawn: seed {cfg.split_seed}"
        if val_size >= len(x):
            raise SourceError(f"{where}: {len(x)} training images for a {val_size}-image validation split: "
                              "use a smaller --val-size or more images")
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.split_seed))
        val_idx, train_idx = perm[:val_size], perm[val_size:]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    c, h, w = x.shape[1:]
    published = source.stats(cfg.dataset)
    if published is not None:
        mean, std = [published[0]] * c, [published[1]] * c
    else:
        mean, std = channel_stats(x[np.sort(train_idx.numpy())])
    x_all, y_all = normalise(x, mean, std), torch.from_numpy(y)
    if cfg.train_fraction < 1.0:
        keep_idx = select_subset(x_all[train_idx], y_all[train_idx], cfg.train_fraction, cfg.subset_method,
                                 cfg.curriculum, cfg.split_seed)
        train_idx = train_idx[keep_idx]
    background = tuple((0.0 - m) / s for m, s in zip(mean, std))
    natural = {"yes": True, "no": False}.get(cfg.hflip, source.name != "builtin" and c == 3)
    data = Data(
        train_x=x_all[train_idx].contiguous(), train_y=y_all[train_idx].contiguous(),
        val_x=x_all[val_idx].contiguous(), val_y=y_all[val_idx].contiguous(),
        test_x=normalise(x_test, mean, std), test_y=torch.from_numpy(y_test),
        background=background[0] if c == 1 else background, ordered=cfg.curriculum and cfg.train_fraction < 1.0,
        hflip=natural,
        info={"dataset": cfg.dataset, "source": source.name, "split_seed": cfg.split_seed, "val_size": int(val_size),
              "train_size": int(len(train_idx)), "train_fraction": cfg.train_fraction,
              "subset_method": cfg.subset_method if cfg.train_fraction < 1 else None, "curriculum": cfg.curriculum,
              "test_size": int(len(y_test)), "data_dir": where,
              "fingerprint": arrays.fingerprint,
              "images": int(sum(len(v) for v in (arrays.y_train, arrays.y_test, arrays.y_val) if v is not None)),
              "shape": [int(c), int(h), int(w)], "classes": list(arrays.classes), "mean": mean, "std": std,
              "test_from": test_from, "val_from": val_from, "image_size": cfg.image_size, "channels": cfg.channels,
              "hflip": natural, "notes": notes, "cached": arrays.cached},
    )
    checksums = source.checksums(cfg.dataset)
    if checksums is not None:
        data.info["md5"] = checksums
    return data


def identity(info: dict) -> dict:
    """What pins a study to its data: the content fingerprint, the image count, the
    shape of one image and the class names."""
    return {k: info.get(k) for k in ("fingerprint", "images", "shape", "classes")}
