"""What every source becomes: uint8 images N x C x H x W with int64 labels (and test and
validation splits where the source gives them), checked once and fingerprinted by
content; the conversions (channels, size) and the memory guard. No torch.

The data rules: the one check of arrays a user hands over (an .npz, a torchvision
dataset, ``budgetnas.search(x, y)``), all made before any work.
- images: N x H x W, N x H x W x C or N x C x H x W, C = 1 or 3 (N x H x W x 4: alpha
  dropped); one image or more, no side of 0; no side over MAX_SIDE without --image-size.
- pixels by dtype: uint8 as is. uint16 is 16-bit, 0-65535 -> 0-255 (x / 257, rounded);
  all of it within 0..255 is refused (8-bit pixels: pass uint8). bool: False 0, True 255.
  Other integers: 0..255, as is (else refused: rescale), not only 0 and 1 (pass bool).
  Floats: finite, >= 0 (negative: already normalised, pass raw pixels); all <= 1: 0-1,
  x 255, rounded; maximum in (1, 255]: 0-255, rounded, unless it looks like 0-1 with
  strays (maximum <= 2, or 99% or more of the values <= 1): refused (clip to [0, 1], or
  pass 0-255 pixels as uint8); over 255 refused. Other dtypes (object, complex, str,
  bytes, structured, void, datetime) refused.
- x_test and x_val by the same rules, on x_train's scale (0-255, 0-1, 16-bit, bool).
- labels: integer or bool dtype (floats refused even when whole: y.astype(np.int64)),
  one dimension (N x 1 taken), one per image, 0 or more, within int64.
- classes: K = len(classes) if given, else the largest training label + 1, which must
  not exceed the training images; at least half of the K classes have a training image
  (else renumber the labels with np.unique(y, return_inverse=True)); K >= 2; every
  label < K. Given names: one dimension, strings (bytes as UTF-8), unique, non-empty,
  one printable line each.
- memory: every split with its own shape, as stored and as decoded, before decoding.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..config import ConfigError, env

MIN_SIDE = 8  # pixels: the smallest image a network of the space can take (3 stages of 2x2 pools)
MAX_SIDE = 1024  # pixels: the largest --image-size; larger images are resized only when asked
# bytes of memory per decoded pixel value: the uint8 array, the float32 tensor of all
# images and the float32 train/val/test copies made from it (measured peak ~9x)
BYTES_PER_VALUE = 10
STRAYS = 0.01  # a float array with at most this share of values over 1 (or a maximum <= 2) may be 0-1 with strays
CHUNK = 1 << 22  # pixel values scaled at a time (never a float copy of the whole set)
SPLITS = {"train": "training", "test": "test", "val": "validation"}
SCALES = {"0-255": "0-255 pixels", "0-1": "floats in 0-1", "16-bit": "16-bit pixels (uint16)", "bool": "bool"}
RENUMBER = "renumber the labels 0..K-1, e.g. with np.unique(y, return_inverse=True)"


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
    x_val: np.ndarray | None = None  # a validation split the source gives (a val/ folder, x_val); None: drawn
    y_val: np.ndarray | None = None


def fingerprint(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray | None, y_test: np.ndarray | None,
                classes: tuple[str, ...], x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> str:
    """sha256 over the decoded pixels, the labels (their shapes and dtypes too) and the
    class names: the same images decoded from PNG or from an .npz give the same value.
    A given validation split is hashed after them (data without one keeps its value)."""
    h = hashlib.sha256()
    for a in (x_train, y_train, x_test, y_test, *((x_val, y_val) if x_val is not None else ())):
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


def guard(where: str, planned: dict[str, tuple[int, int, int, int]], stored: int = 0,
          shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Refuse, before decoding, data that will not fit in memory: every split's decoded
    values (``planned``: name -> n, c, h, w) at BYTES_PER_VALUE, or, while decoding, the
    ``stored`` bytes read plus the uint8 arrays, whichever is more (``shapes``: each
    split's image shape as stored, for the message)."""
    values = sum(n * c * h * w for n, c, h, w in planned.values())
    need, have = max(values * BYTES_PER_VALUE, stored + values), available_memory()
    if have is None or need <= have:
        return
    n = sum(p[0] for p in planned.values())
    shapes = shapes or {k: p[1:] for k, p in planned.items()}
    what = "of " + "x".join(map(str, shapes[next(iter(planned))])) if len(planned) == 1 else \
        "(" + ", ".join(f"{k} {p[0]:,} of {'x'.join(map(str, shapes[k]))}" for k, p in planned.items()) + ")"
    gb = (lambda b: f"{b / 1e9:.1f} GB" if b >= 1e8 else f"{b / 1e6:.1f} MB")  # noqa: E731
    raise SourceError(f"{where}: {n:,} images {what} need about {gb(need)} of memory and {gb(have)} is available: "
                      "pass a smaller --image-size or use fewer images")


def check_memory(where: str, n: int, c: int, h: int, w: int) -> None:
    """Refuse, before decoding, ``n`` images of c x h x w that will not fit in memory."""
    guard(where, {"images": (n, c, h, w)})


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


# --- the checks of the data rules (module docstring) ----------------------------------------
def as_array(v, name: str, where: str) -> np.ndarray:
    """A user's array-like (numpy, a CPU tensor, nested lists) as a numpy array."""
    try:
        return np.asarray(v)
    except (ValueError, TypeError, RuntimeError) as e:  # ragged lists; a GPU tensor or one that needs grad
        raise SourceError(f"{where}: {name} is not an array ({type(e).__name__}: {str(e).split('. ')[0][:100]}): "
                          "pass numpy arrays (or CPU tensors) of one shape") from None


def layout(shape: tuple[int, ...], name: str, where: str) -> tuple[int, int, int, int, bool]:
    """(n, c, h, w, channels last) of images stored with ``shape`` (c after alpha is
    dropped); SourceError for a shape that is no stack of images."""
    if len(shape) == 3:
        (n, h, w), c, last = shape, 1, False
    elif len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3, 4):
        (n, c, h, w), last = shape, False
    elif len(shape) == 4 and shape[3] in (1, 3, 4):
        (n, h, w, c), last = shape, True
    else:
        hint = ": flat rows? reshape them, e.g. x.reshape(len(x), 28, 28)" if len(shape) == 2 else ""
        raise SourceError(f"{where}: {name} has shape {tuple(shape)}: images must be N x H x W, N x H x W x C or "
                          f"N x C x H x W with C = 1 or 3{hint}")
    if n == 0:
        todo = "give at least one image per class" if name == "x_train" else f"leave out {name} and its labels"
        raise SourceError(f"{where}: {name} holds no images (shape {tuple(shape)}): {todo}")
    if h == 0 or w == 0:
        raise SourceError(f"{where}: {name} holds images of {h}x{w} pixels: images need at least one pixel a side")
    return n, min(c, 3), h, w, last


def pixel_dtype(dtype: np.dtype, name: str, where: str) -> None:
    if dtype.kind not in "biuf":
        what = "holds Python objects" if dtype.hasobject else f"has dtype {dtype}"
        raise SourceError(f"{where}: {name} {what}: pass pixels as one array of uint8 (0-255), uint16 "
                          "(0-65535), other integers (0-255), bool or floats (0-1 or 0-255)")


def label_dtype(dtype: np.dtype, shape: tuple[int, ...], n: int, name: str, where: str) -> None:
    if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
        raise SourceError(f"{where}: {name} has shape {tuple(shape)}: labels must be integers 0..K-1 in one dimension:"
                          " pass class indices, not one-hot rows (y.argmax(1) gives them)")
    if dtype.kind not in "biu":
        hint = ("whole-number floats: cast them with y.astype(np.int64)" if dtype.kind == "f" else
                "pass class indices, not names: np.unique(y, return_inverse=True) gives them")
        raise SourceError(f"{where}: {name} of dtype {dtype}: labels must be integers 0..K-1 in one dimension: {hint}")
    if shape[0] != n:
        raise SourceError(f"{where}: {n:,} images but {shape[0]:,} labels ({name}): give one label per image")


def too_small(where: str, h: int, w: int) -> SourceError:
    return SourceError(f"{where}: images of {h}x{w} pixels are too small for any network of the space: "
                       f"use --image-size {MIN_SIDE} or more")


def structure(meta: dict[str, tuple[tuple[int, ...], np.dtype]], where: str, size: int | None,
              channels: int | None, stored: int = 0) -> dict[str, tuple[int, int, int, int]]:
    """The checks of shapes and dtypes only (an .npz's headers, or arrays in memory), the
    memory guard among them (``stored``: bytes read to decode). Returns each split's
    (n, c, h, w) as decoded: converted as asked, at the training images' size, square."""
    for split in SPLITS:
        if (f"x_{split}" in meta) != (f"y_{split}" in meta) or {"x_train", "y_train"} - set(meta):
            raise SourceError(f"{where}: x_{split} and y_{split} come together: give both or neither")
    dims = {}
    for split in (s for s in SPLITS if f"x_{s}" in meta):
        shape, dtype = meta[f"x_{split}"]
        pixel_dtype(dtype, f"x_{split}", where)
        dims[f"x_{split}"] = layout(shape, f"x_{split}", where)
        label_dtype(meta[f"y_{split}"][1], meta[f"y_{split}"][0], dims[f"x_{split}"][0], f"y_{split}", where)
    _, c0, h0, w0, _ = dims["x_train"]
    side = size or max(h0, w0)
    if not size and side > MAX_SIDE:
        raise SourceError(f"{where}: images of {h0}x{w0} pixels are larger than {MAX_SIDE}x{MAX_SIDE}: "
                          f"pass --image-size S ({MIN_SIDE}..{MAX_SIDE}) to resize them")
    if side < MIN_SIDE:
        raise too_small(where, h0, w0)
    for name, (_, c, *_) in dims.items():
        if not channels and c != c0:
            raise SourceError(f"{where}: {name} has {c} channel(s) but x_train {c0}: give every split the same "
                              "channels (or pass --channels)")
    planned = {name: (n, channels or c, side, side) for name, (n, c, *_) in dims.items()}
    guard(where, planned, stored, {name: tuple(meta[name][0][1:]) for name in planned})
    return planned


def scale_of(x: np.ndarray, name: str, where: str) -> str:
    """The scale of ``name``'s pixel values by the data rules: a key of SCALES."""
    pixel_dtype(x.dtype, name, where)
    if x.dtype == np.uint8:
        return "0-255"
    if x.dtype.kind == "b":
        return "bool"
    lo, hi = x.min(), x.max()
    if x.dtype.kind == "f":
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise SourceError(f"{where}: {name} holds NaN or infinite values: replace them or drop those images")
        if lo < 0:
            raise SourceError(f"{where}: {name} holds negative values (min {lo:.3g}): it looks already normalised: "
                              "pass raw pixels (0-255, or floats in 0-1)")
        if hi <= 1:
            return "0-1"
        over = np.count_nonzero(x > 1)
        if hi <= 2 or over <= STRAYS * x.size:
            share = math.floor(1000 * (1 - over / x.size)) / 10
            raise SourceError(f"{where}: {name} is ambiguous: {share}% of its values are in [0, 1] but some go up to "
                              f"{hi:.4g}: clip 0-1 pixels to [0, 1] (np.clip(x, 0, 1)), or pass 0-255 pixels as uint8")
        if hi > 255:
            raise SourceError(f"{where}: {name} holds values up to {hi:.4g}: float pixels are 0-1 or 0-255: rescale")
        return "0-255"
    if x.dtype == np.uint16:
        if hi <= 255:
            raise SourceError(f"{where}: {name} is uint16 but all its values are in 0..255 (max {hi}): uint16 is read "
                              "as 16-bit pixels (0-65535): pass 8-bit pixels as uint8 (x.astype(np.uint8))")
        return "16-bit"
    if lo < 0 or hi > 255:
        raise SourceError(f"{where}: {name} of dtype {x.dtype} holds values {lo}..{hi}: integer pixels must be 0..255 "
                          "(uint16: 0..65535): rescale them to 0-255 (as uint8)")
    if hi <= 1:
        raise SourceError(f"{where}: {name} of dtype {x.dtype} holds only 0 and 1: integer pixels are 0..255: pass "
                          "black-and-white images as bool (True is white) or as x * 255")
    return "0-255"


def as_nchw(x: np.ndarray, where: str, name: str = "images", scale: str | None = None) -> np.ndarray:
    """Images in any accepted layout and dtype -> uint8 N x C x H x W by the data rules."""
    x = as_array(x, name, where)
    n, c, h, w, last = layout(x.shape, name, where)
    scale = scale or scale_of(x, name, where)
    v = x[:, None] if x.ndim == 3 else x[..., :3].transpose(0, 3, 1, 2) if last else x
    if x.dtype == np.uint8:
        return np.ascontiguousarray(v)
    out = np.empty((n, c, h, w), np.uint8)
    step = max(1, CHUNK // (c * h * w))
    for i in range(0, n, step):
        part = v[i:i + step]
        out[i:i + step] = ((part.astype(np.uint32) + 128) // 257 if scale == "16-bit"  # x / 257, rounded
                           else part.astype(np.uint8) * np.uint8(255) if scale == "bool"
                           else np.clip(np.rint(part.astype(np.float32) * (255 if scale == "0-1" else 1)), 0, 255))
    return out


def labels(y, n: int, where: str, name: str = "labels") -> np.ndarray:
    """Labels by the data rules -> int64 N (the number of classes is checked later)."""
    y = as_array(y, name, where)
    label_dtype(y.dtype, y.shape, n, name, where)
    y = y.reshape(-1)
    if y.dtype.kind != "b":
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            raise SourceError(f"{where}: {name} label {lo} is out of range: labels must be 0..K-1")
        if hi > np.iinfo(np.int64).max:
            raise SourceError(f"{where}: {name} label {hi} is out of range (beyond int64): {RENUMBER}")
    return y.astype(np.int64)


def class_names(classes, y_train: np.ndarray, where: str) -> tuple[str, ...]:
    """The K class names by the data rules (given, or 0..K-1 from the training labels)."""
    used, top = len(np.unique(y_train)), int(y_train.max())
    if classes is None:
        k = top + 1
        if k > len(y_train):
            raise SourceError(f"{where}: training label {top} makes {k:,} classes for {len(y_train):,} training "
                              f"images ({used:,} distinct labels): {RENUMBER}")
        names = tuple(map(str, range(k)))
    else:
        names = name_list(as_array(classes, "classes", where), where)
        k = len(names)
        if top >= k:
            raise SourceError(f"{where}: training label {top} is out of range for the {k} class name(s) in classes: "
                              "give one name per class 0..K-1")
    if 2 * used < k:
        raise SourceError(f"{where}: only {used:,} of the {k:,} classes (0..{k - 1}) have a training image: {RENUMBER}"
                          + (" and keep only their names in classes" if classes is not None else ""))
    return names


def name_list(c: np.ndarray, where: str) -> tuple[str, ...]:
    if c.ndim != 1 or not len(c):
        raise SourceError(f"{where}: classes has shape {c.shape}: give one name per class in one dimension, "
                          "e.g. np.array(['cat', 'dog'])")
    if c.dtype.kind not in "SU":
        raise SourceError(f"{where}: classes of dtype {c.dtype}: class names must be strings, "
                          "e.g. np.array(['cat', 'dog'])")
    try:
        names = [s.decode() if isinstance(s, bytes) else s for s in c.tolist()]
    except UnicodeDecodeError:
        raise SourceError(f"{where}: classes holds bytes that are not UTF-8: save the names as str") from None
    bad = next((s for s in names if not s.strip() or not s.isprintable()), None)
    if bad is not None:
        raise SourceError(f"{where}: class name {bad!r} is empty or not one printable line: give every class a name")
    name, times = Counter(names).most_common(1)[0]
    if times > 1:
        raise SourceError(f"{where}: class name {name!r} appears {times} times in classes: "
                          "give each class its own name")
    return tuple(names)


def check(a: Arrays, where: str) -> Arrays:
    """Class count, label ranges and image size, once every source is arrays."""
    k = len(a.classes)
    if k < 2:
        raise SourceError(f"{where}: only one class ({a.classes[0] if a.classes else 'none'!r}): "
                          "a classifier needs at least 2 classes")
    for y, split in ((a.y_train, "training"), (a.y_test, "test"), (a.y_val, "validation")):
        if y is not None and len(y) and y.max() >= k:
            raise SourceError(f"{where}: {split} label {int(y.max())} is out of range for {k} classes: "
                              "labels must be 0..K-1")
    if min(a.x_train.shape[2:]) < MIN_SIDE:
        raise too_small(where, *a.x_train.shape[2:])
    for x, split in ((a.x_test, "test"), (a.x_val, "validation")):
        if x is not None and x.shape[1:] != a.x_train.shape[1:]:
            raise SourceError(f"{where}: {split} images are {x.shape[1:]} but training images {a.x_train.shape[1:]}: "
                              "give every split the same shape (or pass --image-size and --channels)")
    return a


def from_arrays(arr: dict, where: str, size: int | None, channels: int | None) -> Arrays:
    """Arrays a user hands over (x_train, y_train; optionally x_test, y_test, x_val, y_val,
    classes; None: not given), checked by the data rules first, converted, made square."""
    arr = {k: as_array(v, k, where) for k, v in arr.items() if v is not None}
    structure({k: (v.shape, v.dtype) for k, v in arr.items() if k != "classes"}, where, size, channels)
    splits = [s for s in SPLITS if f"x_{s}" in arr]
    scales, ys = {}, {}
    for s in splits:
        scales[s] = scale_of(arr[f"x_{s}"], f"x_{s}", where)
        if scales[s] != scales["train"]:
            raise SourceError(f"{where}: x_{s} holds {SCALES[scales[s]]} but x_train {SCALES[scales['train']]}: "
                              "give every split the same scale")
        ys[s] = labels(arr[f"y_{s}"], len(arr[f"x_{s}"]), where, f"y_{s}")
    classes = class_names(arr.get("classes"), ys["train"], where)
    xs = {s: as_nchw(arr[f"x_{s}"], where, f"x_{s}", scales[s]) for s in splits}
    c0, h0, w0 = xs["train"].shape[1:]
    side = size or max(h0, w0)
    notes = []
    if (size or channels) and (channels or c0, side, side) != (c0, h0, w0):
        notes.append(f"images converted from {c0}x{h0}x{w0} to {channels or c0}x{side}x{side}")
    elif not (size or channels):
        notes += [f"{SPLITS[s]} images resized to {side}x{side} like the training images" for s in splits[1:]
                  if xs[s].shape[2:] != (h0, w0)]
        if h0 != w0:
            notes.append(f"images are not square: resized to {side}x{side} (pass --image-size S to choose)")
    xs = {s: convert(x, side, channels) for s, x in xs.items()}
    return check(Arrays(xs["train"], ys["train"], xs.get("test"), ys.get("test"), classes, notes=notes,
                        x_val=xs.get("val"), y_val=ys.get("val")), where)
