"""Helpers that write small real datasets of your own: class folders of image files
(written with Pillow) and .npz files, plus the broken ones the bad-input table uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def images(n: int, classes: int, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N x H x W or N x H x W x C) whose class is a bright square at a
    class-dependent place on noise: learnable in a few steps, labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, (n, *shape), dtype=np.uint8)
    y = np.arange(n) % classes
    side = shape[0]
    q = max(2, side // 4)
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, r * q:(r + 1) * q + q, col * q:(col + 1) * q + q] = 230
    return x, y.astype(np.int64)


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, names: list[str] | None = None, ext: str = ".png") -> Path:
    from PIL import Image
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / (names[c] if names else f"class{c}")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}{ext}")
    return root


def write_bad_data(root: Path) -> dict[str, Path]:
    """Broken own data for the bad-input table (keys are the format names used there)."""
    from PIL import Image
    out = {}
    out["empty"] = root / "empty"
    out["empty"].mkdir(parents=True)
    x, y = images(20, 1, (16, 16))
    out["oneclass"] = write_folder(root / "oneclass", x, y, ["cat"])
    x, y = images(40, 2, (16, 16))
    out["corrupt"] = write_folder(root / "corrupt", x, y)
    (root / "corrupt" / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 20)
    out["tiny"] = write_folder(root / "tiny", *images(40, 2, (4, 4)))
    out["big"] = write_folder(root / "big", *images(40, 2, (16, 16)))
    np.savez(root / "nokeys.npz", images=x, labels=y)
    np.savez(root / "mismatch.npz", x_train=x, y_train=y[:-3])
    np.savez(root / "outofrange.npz", x_train=x, y_train=y, x_test=x[:10], y_test=np.full(10, 7))
    np.savez(root / "floatlabels.npz", x_train=x, y_train=y.astype(np.float32))
    for k in ("nokeys", "mismatch", "outofrange", "floatlabels"):
        out[k] = root / f"{k}.npz"
    Image.fromarray(x[0]).save(root / "an-image.png")
    out["notnpz"] = root / "an-image.png"
    return out
