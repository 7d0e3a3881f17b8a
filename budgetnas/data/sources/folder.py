"""A folder with one subfolder per class (torchvision's ImageFolder layout), optionally
under ``train/`` and ``test/``: PNG, JPEG, BMP, GIF and WebP through Pillow, decoded in
parallel threads; class names are the folder names (sorted)."""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ..arrays import GRAY_MODES, Arrays, SourceError, check, check_memory, pil
from . import Source, dataset_help

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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
        raise SourceError(f"{root}: no such folder: pass {dataset_help()}")
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
    Image = pil()
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
    Image = pil()
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
        Image = pil()
        images = {s: [img if img.shape[:2] == (size, size) else np.asarray(Image.fromarray(img).resize(
            (size, size), Image.BILINEAR)) for img in v] for s, v in images.items()}

    def stack(split: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack(images[split])
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x), np.array([y for _, y in listed[split]], np.int64)

    x_train, y_train = stack("train")
    x_test, y_test = stack("test") if "test" in images and images["test"] else (None, None)
    return check(Arrays(x_train, y_train, x_test, y_test, classes, notes=notes), str(root))


class Folder(Source):
    name = "folder"
    help = "a folder with one subfolder per class (optionally under train/ and test/)"
    listed = 1
    priority = 100  # claims whatever no other source does
    local = True

    def matches(self, dataset: str) -> bool:
        return True

    def exists(self, dataset: str) -> bool:
        return Path(dataset).is_dir()

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        return from_folder(Path(cfg.dataset), cfg.image_size, cfg.channels), cfg.dataset

    def listing(self, dataset: str) -> bytes:
        """Every file name and every folder's modification time, which change when a file
        is added, removed or renamed (far cheaper than a stat of each file). A file
        rewritten in place under the same name is not noticed: touch its folder (README)."""
        path = Path(dataset)
        h = hashlib.sha256()
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
        return h.digest()
