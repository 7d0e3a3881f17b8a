"""Your own data: image folders, .npz arrays and torchvision datasets -> uint8 arrays.

No torch here: every source becomes the same thing, uint8 images N x C x H x W with
int64 labels (and a test split where the source has one), decoded once and cached under
the content fingerprint of its pixels and labels. data.py turns them into tensors.

- a folder with one subfolder per class (torchvision's ImageFolder layout), optionally
  under ``train/`` and ``test/``: PNG, JPEG, BMP, GIF and WebP through Pillow, decoded in
  parallel threads; class names are the folder names (sorted);
- an ``.npz`` with ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test`` (and
  ``classes``): uint8 or float images (float in [0, 1] is scaled by 255), N x H x W,
  N x H x W x C or N x C x H x W; integer labels 0..K-1;
- ``torchvision:NAME`` where torchvision imports (it is an optional extra).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ConfigError, is_builtin

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
TORCHVISION = "torchvision:"
CACHE_VERSION = 1  # bump when the decoded arrays of the same files would differ
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


def kind(dataset: str) -> str:
    """builtin | torchvision | npz | folder."""
    if is_builtin(dataset):
        return "builtin"
    if dataset.startswith(TORCHVISION):
        return "torchvision"
    return "npz" if dataset.lower().endswith(".npz") else "folder"


# --- identity ------------------------------------------------------------------------------
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
    """Bytes budgetnas may use for a dataset: $BUDGETNAS_MAX_MEMORY (bytes, or with a
    K/M/G suffix) if set, else MemAvailable of /proc/meminfo (None where unknown)."""
    env = os.environ.get("BUDGETNAS_MAX_MEMORY")
    if env:
        units = {"K": 1e3, "M": 1e6, "G": 1e9}
        text = env.strip().upper().rstrip("B")
        try:
            return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)
        except ValueError:
            raise ConfigError(f"$BUDGETNAS_MAX_MEMORY={env!r} is not a size: set it to bytes or e.g. 8G") from None
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
def _pil():
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
        Image = _pil()
        out = np.empty((len(x), x.shape[1], size, size), np.uint8)
        for i, img in enumerate(x):
            for c in range(x.shape[1]):
                out[i, c] = np.asarray(Image.fromarray(img[c]).resize((size, size), Image.BILINEAR))
        x = out
    return x


def _as_nchw(x: np.ndarray, where: str) -> np.ndarray:
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


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
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


def _check(a: Arrays, where: str) -> Arrays:
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


# --- .npz ----------------------------------------------------------------------------------
def _npz_shape(path: Path, key: str) -> tuple[int, ...] | None:
    """An array's shape from its .npy header inside the .npz, without reading it."""
    try:
        with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            return read(f)[0]
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None


def _npz_memory(path: Path, size: int | None, channels: int | None) -> None:
    shapes = [s for s in (_npz_shape(path, k) for k in ("x_train", "x_test")) if s]
    n = sum(s[0] for s in shapes if s)
    if not shapes or len(shapes[0]) < 3:
        return
    s = shapes[0]
    c = channels or (s[1] if len(s) == 4 and s[1] in (1, 3) else s[-1] if len(s) == 4 else 1)
    h, w = (size, size) if size else ((s[1], s[2]) if len(s) == 3 or s[-1] in (1, 3, 4) else (s[2], s[3]))
    check_memory(str(path), n, c, h, w)


def from_npz(path: Path, size: int | None = None, channels: int | None = None) -> Arrays:
    if not path.is_file():
        raise SourceError(f"{path}: no such .npz file: pass an .npz with x_train and y_train")
    _npz_memory(path, size, channels)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x_train", "y_train") if k not in keys]
            if missing:
                raise SourceError(f"{path}: no {' or '.join(missing)} in it (keys: {', '.join(sorted(keys)) or 'none'}): "
                                  "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
            if ("x_test" in keys) != ("y_test" in keys):
                raise SourceError(f"{path}: x_test and y_test come together: save both or neither")
            arr = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "classes") if k in keys}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SourceError(f"{path}: not a readable .npz file ({str(e).splitlines()[0][:120]}): "
                          "save it with np.savez") from None
    return _from_arrays(arr, str(path), size, channels)


def _from_arrays(arr: dict, where: str, size: int | None, channels: int | None) -> Arrays:
    x_train = _as_nchw(np.asarray(arr["x_train"]), where)
    y_train = _labels(arr["y_train"], len(x_train), where)
    x_test = y_test = None
    if arr.get("x_test") is not None:
        x_test = _as_nchw(np.asarray(arr["x_test"]), where)
        y_test = _labels(arr["y_test"], len(x_test), where)
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
    return _check(Arrays(x_train, y_train, x_test, y_test, classes, notes=notes), where)


# --- folders -------------------------------------------------------------------------------
def _class_files(root: Path) -> dict[str, list[Path]]:
    """{class name: image files} of a folder with one subfolder per class."""
    out = {}
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name):
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
                       and p.is_file())
        if files:
            out[d.name] = files
    return out


def _layout(root: Path) -> dict[str, dict[str, list[Path]]]:
    """{'train': {class: files}, 'test': {...}} (test only with train/ and test/)."""
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder: pass a folder with one subfolder per class, an .npz file, "
                          "mnist, fashion-mnist or torchvision:NAME")
    if (root / "train").is_dir() and (root / "test").is_dir():
        splits = {"train": _class_files(root / "train"), "test": _class_files(root / "test")}
    else:
        splits = {"train": _class_files(root)}
    if not splits["train"]:
        raise SourceError(f"{root}: no images found: put one subfolder per class holding PNG, JPEG, BMP, GIF or WebP "
                          "files there (optionally under train/ and test/)")
    unknown = sorted(set(splits.get("test", {})) - set(splits["train"]))
    if unknown:
        raise SourceError(f"{root}/test: class folder {unknown[0]!r} is not in {root}/train: "
                          "give train/ and test/ the same class folders")
    return splits


def _decode(path: Path, mode: str | None, size: int | None) -> np.ndarray:
    """One image as uint8 H x W (gray) or H x W x 3; ``mode`` 'L'/'RGB' forces one."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert(mode or ("L" if im.mode in GRAY_MODES else "RGB"))
            if size and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise SourceError(f"{path}: not a readable image ({str(e).splitlines()[0][:100]}): "
                          "remove or replace the file") from None


def _header(path: Path) -> tuple[int, int, bool]:
    """(width, height, gray) from the file's header, without decoding it."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            return im.size[0], im.size[1], im.mode in GRAY_MODES
    except (OSError, ValueError, SyntaxError) as e:
        raise SourceError(f"{path}: not a readable image ({str(e).splitlines()[0][:100]}): "
                          "remove or replace the file") from None


def _decode_all(files: list[Path], mode: str | None, size: int | None) -> list[np.ndarray]:
    """Decode in threads (Pillow releases the GIL while decoding); chunks keep the
    per-task overhead small. One worker where a thread pool would not pay."""
    workers = min(os.cpu_count() or 1, 16)
    if workers == 1 or len(files) < 256:
        return [_decode(p, mode, size) for p in files]
    chunk = max(64, len(files) // (workers * 8))
    parts = [files[i:i + chunk] for i in range(0, len(files), chunk)]
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda part: [_decode(p, mode, size) for p in part], parts)
        return [img for part in done for img in part]


def from_folder(root: Path, size: int | None = None, channels: int | None = None) -> Arrays:
    splits = _layout(root)
    classes = tuple(splits["train"])
    index = {c: i for i, c in enumerate(classes)}
    listed = {s: [(p, index[c]) for c, files in by_class.items() for p in files] for s, by_class in splits.items()}
    n = sum(len(v) for v in listed.values())
    w0, h0, gray0 = _header(listed["train"][0][0])
    check_memory(str(root), n, channels or (1 if gray0 else 3), size or h0, size or w0)
    mode = {1: "L", 3: "RGB"}.get(channels or 0)
    images = {s: _decode_all([p for p, _ in v], mode, size) for s, v in listed.items()}
    notes = []
    everything = [img for v in images.values() for img in v]
    if channels is None and any(img.ndim == 3 for img in everything) and any(img.ndim == 2 for img in everything):
        notes.append("gray and color images mixed: gray ones repeated to 3 channels (pass --channels 1 or 3 to choose)")
        images = {s: [np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img for img in v] for s, v in images.items()}
    sizes = Counter(img.shape[:2] for img in everything)
    if size is None and (len(sizes) > 1 or any(h != w for h, w in sizes)):
        (h, w), _ = sizes.most_common(1)[0]
        size = max(h, w)
        examples = " and ".join(f"{b}x{a}" for a, b in list(sizes)[:2])
        notes.append(f"images differ in size or are not square (e.g. {examples}): all resized to {size}x{size} "
                     "(pass --image-size S to choose)")
        Image = _pil()
        images = {s: [img if img.shape[:2] == (size, size) else np.asarray(Image.fromarray(img).resize(
            (size, size), Image.BILINEAR)) for img in v] for s, v in images.items()}

    def stack(split: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack(images[split])
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x), np.array([y for _, y in listed[split]], np.int64)

    x_train, y_train = stack("train")
    x_test, y_test = stack("test") if "test" in images and images["test"] else (None, None)
    return _check(Arrays(x_train, y_train, x_test, y_test, classes, notes=notes), str(root))


# --- torchvision ---------------------------------------------------------------------------
def from_torchvision(name: str, root: Path, size: int | None = None, channels: int | None = None,
                     download: bool = True) -> Arrays:
    """A torchvision dataset's train and test splits (downloaded into ``root`` unless
    offline), through the same checks as an .npz."""
    try:
        import torchvision.datasets as tvd
    except Exception as e:  # ImportError, or a wheel built for another torch (RuntimeError/OSError)
        raise SourceError(f"{TORCHVISION}{name} needs torchvision, which does not import here ({type(e).__name__}): "
                          "install the torchvision build that matches your torch (pip install torchvision), or "
                          "write the images to a folder and pass --dataset FOLDER") from None
    cls = getattr(tvd, name, None)
    if not inspect.isclass(cls):
        raise SourceError(f"torchvision has no dataset {name!r}: use a class name of torchvision.datasets "
                          "such as CIFAR10, CIFAR100, SVHN, FashionMNIST")
    params = inspect.signature(cls).parameters
    try:
        if "train" in params:
            train, test = (cls(str(root), train=t, download=download) for t in (True, False))
        elif "split" in params:
            train, test = (cls(str(root), split=s, download=download) for s in ("train", "test"))
        else:
            raise SourceError(f"torchvision:{name} has no train/test split argument: save it as an .npz instead")
    except (RuntimeError, OSError) as e:
        raise SourceError(f"torchvision:{name}: cannot load it into {root} ({str(e).splitlines()[0][:120]}): "
                          "pass --data-dir with a copy, or allow the download") from None

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        x, y = getattr(ds, "data", None), getattr(ds, "targets", getattr(ds, "labels", None))
        if x is None or y is None:  # a dataset without in-memory arrays: through its PIL images
            pairs = [ds[i] for i in range(len(ds))]
            x, y = np.stack([np.asarray(p[0]) for p in pairs]), [p[1] for p in pairs]
        return np.asarray(x), np.asarray(y, dtype=np.int64)

    (xt, yt), (xs, ys) = arrays(train), arrays(test)
    arr = {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys}
    if getattr(train, "classes", None):
        arr["classes"] = np.array([str(c) for c in train.classes])
    return _from_arrays(arr, f"{TORCHVISION}{name}", size, channels)


# --- the cache -----------------------------------------------------------------------------
def _listing_key(dataset: str, path: Path | None, size: int | None, channels: int | None) -> str:
    """What the decoded arrays depend on: the conversions asked for and the source's
    files. An .npz: its size and modification time. A folder: every file name and every
    folder's modification time, which change when a file is added, removed or renamed
    (60,000 files: ~0.1 s; a stat of each would take ~0.7 s). A file rewritten in place
    under the same name is not noticed: touch its folder (README, 'Your own data')."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, dataset, str(path), size, channels]).encode())
    if path is not None and path.is_file():
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    elif path is not None and path.is_dir():
        stack = [path]
        while stack:
            folder = stack.pop()
            names = []
            with os.scandir(folder) as entries:
                for e in entries:
                    (stack.append(Path(e.path)) if e.is_dir() else names.append(e.name))
            names.sort()
            h.update(f"{folder.relative_to(path)}:{folder.stat().st_mtime_ns}\n".encode())
            h.update("\n".join(names).encode())
    return h.hexdigest()[:24]


def _read_cache(folder: Path, key: str) -> Arrays | None:
    try:
        meta = json.loads((folder / "index" / f"{key}.json").read_text())
        with np.load(folder / f"{meta['fingerprint']}.npz", allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # no cache or a damaged one: decode again
    return Arrays(arr["x_train"], arr["y_train"], arr.get("x_test"), arr.get("y_test"), tuple(meta["classes"]),
                  meta["fingerprint"], list(meta.get("notes", [])), cached=True)


def _write_cache(folder: Path, key: str, a: Arrays) -> None:
    """The arrays under their content fingerprint (uncompressed: reading is then a copy),
    and an index entry from the source's listing to it. Best effort: a read-only cache
    folder only costs the next run a decode."""
    try:
        (folder / "index").mkdir(parents=True, exist_ok=True)
        target = folder / f"{a.fingerprint}.npz"
        if not target.is_file():
            tmp = folder / f".{a.fingerprint}.{os.getpid()}.npz"
            arrays = {"x_train": a.x_train, "y_train": a.y_train}
            if a.x_test is not None:
                arrays.update(x_test=a.x_test, y_test=a.y_test)
            np.savez(tmp, **arrays)
            os.replace(tmp, target)
        entry = folder / "index" / f"{key}.json"
        tmp_entry = entry.with_name(f".{key}.{os.getpid()}.json")
        tmp_entry.write_text(json.dumps({"fingerprint": a.fingerprint, "classes": list(a.classes), "notes": a.notes}))
        os.replace(tmp_entry, entry)
    except OSError:
        pass


def load_arrays(dataset: str, size: int | None = None, channels: int | None = None, data_dir: str | None = None,
                cache: Path | None = None) -> Arrays:
    """A folder, .npz or torchvision:NAME as checked uint8 arrays with their fingerprint:
    from the cache when the source's files are unchanged, else decoded (and cached)."""
    k = kind(dataset)
    path = None if k == "torchvision" else Path(dataset)
    key = _listing_key(dataset, path, size, channels) if k != "torchvision" else None
    if cache is not None and key is not None:
        hit = _read_cache(cache, key)
        if hit is not None:
            return hit
    if k == "folder":
        a = from_folder(path, size, channels)
    elif k == "npz":
        a = from_npz(path, size, channels)
    else:
        root = Path(data_dir) if data_dir else (cache or Path(".")).parent / "torchvision"
        a = from_torchvision(dataset[len(TORCHVISION):], root, size, channels,
                             download=not os.environ.get("BUDGETNAS_OFFLINE"))
    a.fingerprint = fingerprint(a.x_train, a.y_train, a.x_test, a.y_test, a.classes)
    if cache is not None and key is not None:
        _write_cache(cache, key, a)
    return a
