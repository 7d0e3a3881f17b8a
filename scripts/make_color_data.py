"""Write a synthetic color dataset as an .npz (x_train, y_train, x_test, y_test, classes):
32x32 RGB images of 10 classes, 5 shapes (disc, square, triangle, cross, ring) each solid
or striped, at a random place and size, in a random color on a random background color,
with noise. Color says nothing about the class: a network must learn shape and texture.
Used to check that the defaults and ranges chosen on MNIST and Fashion-MNIST also hold
on color data (docs/RESULTS.md, "Search spaces").

    python scripts/make_color_data.py OUT.npz [--train 50000] [--test 10000] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

SHAPES = ("disc", "square", "triangle", "cross", "ring")
CLASSES = [f"{shape} {texture}" for shape in SHAPES for texture in ("solid", "striped")]


def images(n: int, rng: np.random.Generator, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, n)
    shape, striped = y // 2, y % 2 == 1
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    cx, cy = rng.uniform(10, side - 10, n)[:, None, None], rng.uniform(10, side - 10, n)[:, None, None]
    r = rng.uniform(5, 9, n)[:, None, None]
    dx, dy = xx[None] - cx, yy[None] - cy
    dist = np.sqrt(dx ** 2 + dy ** 2)
    masks = {
        0: dist <= r,
        1: (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85),
        2: (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6),
        3: ((np.abs(dx) <= r * 0.3) | (np.abs(dy) <= r * 0.3)) & (np.abs(dx) <= r) & (np.abs(dy) <= r),
        4: (dist <= r) & (dist >= r * 0.55),
    }
    mask = np.zeros((n, side, side), bool)
    for k, m in masks.items():
        mask[shape == k] = m[shape == k]
    angle = rng.uniform(0, np.pi, n)[:, None, None]
    stripes = np.sin((dx * np.cos(angle) + dy * np.sin(angle)) * 1.6) > 0
    mask &= ~striped[:, None, None] | stripes
    fg, bg = rng.uniform(0, 255, (n, 3)), rng.uniform(0, 255, (n, 3))
    close = np.abs(fg - bg).sum(1) < 150  # keep the shape visible: push the colors apart
    fg[close] = 255 - bg[close]
    x = np.where(mask[..., None], fg[:, None, None, :], bg[:, None, None, :])
    x += rng.normal(0, 18, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=50_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    x_train, y_train = images(a.train, rng)
    x_test, y_test = images(a.test, rng)
    np.savez_compressed(a.out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        classes=np.array(CLASSES))
    print(f"wrote {a.out}: {a.train:,} + {a.test:,} images of 32x32x3, {len(CLASSES)} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
