"""What every source becomes: uint8 images N x C x H x W with int64 labels (and a test
split where the source has one), checked once and fingerprinted by content. No torch.

Also the conversions (channels, size), the memory guard, and the checks of arrays a
user hands over (an .npz, a torchvision dataset, the Python API)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..config import ConfigError, env

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
MIN_SIDE = 8  # pixels: the smallest image a network of the space can take (3 stages of 2x2 pools)
# bytes of memory per decoded pixel value: the uint8 array, the float32 tensor of all
# images and the float32 train/val/test copies made from it (measured peak ~9x)
BYTES_PER_VALUE = 10


class SourceError(ConfigError):
    """Bad user data: one line naming the file or folder and what to do."""


@dataclass
class Arrays:
    """A dataset as uint8 arrays, before any split or normalisation."""

    x_train: np.ndarray  # uint8, N x C x H x W
    y_train: np.ndarray  # int64, N
    x_test: np.ndarray | None  # None: the source has no test split
    y_test: np.ndarray | None
    classes: tuple[str, ...]
    fingerprint: str = ""  # sha256 (first 16 hex) of the pixels, labels and class names
    notes: list[str] = field(default_factory=list)  # said once: conversions made
    cached: bool = False  # read from the decoded cache


def fingerprint(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray | None, y_test: np.ndarray | None,
                classes: tuple[str, ...]) -> str:
    """sha256 over the decoded pixels, the labels (their shapes and dtypes too) and the
    class names: the same images decoded from PNG or from an .npz give the same value."""
    h = hashlib.sha256()
    for a in (x_train, y_train, x_test, y_test):
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(list(classes)).encode())
    return h.hexdigest()[:16]


# --- memory --------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes budgetnas may use for a dataset: $BUDGETNAS_MAX_MEMORY if set, else
    MemAvailable of /proc/meminfo (None where unknown)."""
    limit = env.max_memory()
    if limit is not None:
        return limit
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(where: str, n: int, c: int, h: int, w: int) -> None:
    """Refuse, before decoding, a dataset that will not fit in memory."""
    need = n * c * h * w * BYTES_PER_VALUE
    have = available_memory()
    if have is not None and need > have:
        raise SourceError(f"{where}: {n:,} images of {c}x{h}x{w} need about {need / 1e9:.1f} GB of memory and "
                          f"{have / 1e9:.1f} GB is available: pass a smaller --image-size or use fewer images")


# --- conversions ---------------------------------------------------------------------------
def pil():
    from PIL import Image
    return Image


def convert(x: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    """uint8 N x C x H x W to ``channels`` (1: ITU-R 601 luma, 3: gray repeated) and
    ``size`` x ``size`` (bilinear, Pillow)."""
    if channels and x.shape[1] != channels:
        if channels == 3:
            x = np.repeat(x[:, :1], 3, axis=1)
        else:
            luma = x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114
            x = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, None]
    if size and x.shape[2:] != (size, size):
        Image = pil()
        out = np.empty((len(x), x.shape[1], size, size), np.uint8)
        for i, img in enumerate(x):
            for c in range(x.shape[1]):
                out[i, c] = np.asarray(Image.fromarray(img[c]).resize((size, size), Image.BILINEAR))
        x = out
    return x


def as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """N x H x W, N x H x W x C or N x C x H x W (C in 1, 3, 4) -> uint8 N x C x H x W."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3, 4):
            pass  # N x C x H x W
        elif x.shape[-1] in (1, 3, 4):
            x = x[..., :3].transpose(0, 3, 1, 2)  # alpha dropped
        else:
            raise SourceError(f"{where}: images of shape {x.shape}: use N x H x W, N x H x W x C or "
                              "N x C x H x W with C = 1 or 3")
    else:
        raise SourceError(f"{where}: images of shape {x.shape}: use N x H x W, N x H x W x C or N x C x H x W")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise SourceError(f"{where}: images of dtype {x.dtype}: use uint8 (0-255) or float (0-1 or 0-255)")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise SourceError(f"{where}: images hold NaN or infinite values: clean them first")
    scale = 255.0 if np.issubdtype(x.dtype, np.floating) and x.size and x.max() <= 1.0 else 1.0
    return np.ascontiguousarray(np.clip(np.rint(x * scale), 0, 255).astype(np.uint8))


def labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise SourceError(f"{where}: labels must be integers 0..K-1 in one dimension (got {y.dtype} {y.shape}): "
                          "pass class indices, not one-hot rows or names")
    if len(y) != n:
        raise SourceError(f"{where}: {n:,} images but {len(y):,} labels: give one label per image")
    if len(y) and y.min() < 0:
        raise SourceError(f"{where}: label {int(y.min())} is out of range: labels must be 0..K-1")
    return y.astype(np.int64)


def check(a: Arrays, where: str) -> Arrays:
    """Class count, label ranges and image size, once every source is arrays."""
    k = len(a.classes)
    if k < 2:
        raise SourceError(f"{where}: only one class ({a.classes[0] if a.classes else 'none'!r}): "
                          "a classifier needs at least 2 classes")
    for y, split in ((a.y_train, "training"), (a.y_test, "test")):
        if y is not None and len(y) and y.max() >= k:
            raise SourceError(f"{where}: {split} label {int(y.max())} is out of range for {k} classes: "
                              "labels must be 0..K-1")
    side = min(a.x_train.shape[2:])
    if side < MIN_SIDE:
        raise SourceError(f"{where}: images of {a.x_train.shape[2]}x{a.x_train.shape[3]} pixels are too small for any "
                          f"network of the space: use --image-size {MIN_SIDE} or more")
    if a.x_test is not None and a.x_test.shape[1:] != a.x_train.shape[1:]:
        raise SourceError(f"{where}: test images are {a.x_test.shape[1:]} but training images {a.x_train.shape[1:]}: "
                          "give both splits the same shape (or pass --image-size and --channels)")
    return a


def from_arrays(arr: dict, where: str, size: int | None, channels: int | None) -> Arrays:
    """Arrays a user hands over (x_train, y_train, optionally x_test, y_test and classes),
    checked, converted as asked and made square."""
    x_train = as_nchw(np.asarray(arr["x_train"]), where)
    y_train = labels(arr["y_train"], len(x_train), where)
    x_test = y_test = None
    if arr.get("x_test") is not None:
        x_test = as_nchw(np.asarray(arr["x_test"]), where)
        y_test = labels(arr["y_test"], len(x_test), where)
    k = int(y_train.max(initial=0)) + 1  # the training labels define the classes; a test label past them is an error
    classes = tuple(str(c) for c in arr["classes"]) if arr.get("classes") is not None else tuple(map(str, range(k)))
    notes = []
    if size or channels:
        c0, h0, w0 = x_train.shape[1:]
        x_train = convert(x_train, size, channels)
        x_test = convert(x_test, size, channels) if x_test is not None else None
        if x_train.shape[1:] != (c0, h0, w0):
            notes.append(f"images converted from {c0}x{h0}x{w0} to {'x'.join(map(str, x_train.shape[1:]))}")
    elif x_test is not None and x_test.shape[2:] != x_train.shape[2:]:
        x_test = convert(x_test, x_train.shape[2], None)
        notes.append(f"test images resized to {x_train.shape[2]}x{x_train.shape[3]} like the training images")
    if x_train.shape[2] != x_train.shape[3]:
        s = max(x_train.shape[2:])
        x_train = convert(x_train, s, None)
        x_test = convert(x_test, s, None) if x_test is not None else None
        notes.append(f"images are not square: resized to {s}x{s} (pass --image-size S to choose)")
    return check(Arrays(x_train, y_train, x_test, y_test, classes, notes=notes), where)
