"""A folder of images: one subfolder per class (torchvision's ImageFolder layout), or the
split folders train/ (required), val/ (or valid/ or validation/) and test/, each with one
subfolder per class. PNG, JPEG, BMP, GIF, WebP and TIFF through Pillow.

Every file's header (size, mode) is read first, in threads, and checked against Pillow's
decompression-bomb limit and the memory guard (every file at its final shape); only then
are the images decoded, in threads, straight into the final uint8 array. The rules
(README, "Your own data"):

- layouts: a root holding any folder named train, val, valid, validation or test (any
  case) is a split layout: train/ is required; val/, valid/ or validation/ (one of them)
  is the validation split (drawn from train/ when absent); test/ the test split (held out
  from train/ when absent); a class folder of val/ or test/ that train/ lacks is refused
  (a class train/ has and they lack is fine); a folder with images beside the split
  folders is refused (ambiguous). Otherwise the root's subfolders are the classes. A
  class is read recursively; a class folder without images is ignored (a note says so),
  as are image files directly in the root or a split folder (a note).
- files: names ending .png .jpg .jpeg .bmp .gif .webp .tif .tiff (any case) are images;
  other files are ignored, names starting with '.' (files and folders) skipped. Animated
  images give their first frame.
- links: links to files and folders are followed; each real folder ((st_dev, st_ino)) is
  read once in the whole dataset, so link loops end and a link to a folder already read
  adds nothing; a broken link (missing target, a loop of file links) is refused.
- modes: gray (1, L, LA, I;16, I, F) gives 1 channel and colour (RGB, RGBA, RGBX, P, PA,
  CMYK, YCbCr) 3, unless --channels says (1: ITU-R 601 luma; 3: gray repeated); gray and
  colour mixed gives 3 (a note). Alpha is dropped (no compositing); P with transparency
  goes through RGBA; CMYK and YCbCr are Pillow's conversions. 16-bit gray (I;16, I;16B,
  I;16L) is round(x / 257) (0-65535 -> 0-255, exact for 8-bit data stored as 16-bit);
  I (32-bit integers) must lie in 0-65535 and is scaled the same; F (32-bit float) must
  lie in 0-1 and is round(x * 255); other values are refused, never stretched per image.
  Other modes (LAB, HSV...) are refused.
- sizes: --image-size S, else the shared size; differing or non-square sizes are all
  resized (bilinear) to the larger side of the most common size (a note).
- names: any bytes; messages and class names show bytes that are not UTF-8 as \\xNN.
- limits: an image over Pillow's Image.MAX_IMAGE_PIXELS is refused (a possible
  decompression bomb); the whole dataset at its final shape must pass the memory guard.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ..arrays import Arrays, SourceError, check, check_memory, pil
from . import Source, dataset_help

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
GRAY = ("1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")
COLOR = ("RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr")
LISTING = b"folder listing 2\n"  # changed when the same files decode differently (2: 16-bit scaled, not clipped)
# what Pillow's format plugins raise on malformed bytes besides OSError
BAD_FILE = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error,
            ZeroDivisionError)


def show(path: str | os.PathLike) -> str:
    """A path (or name) as printable text on one line: bytes that are not UTF-8 as \\xNN,
    control characters escaped (a file name may hold any byte but '/' and NUL)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def unreadable(path: Path, e: OSError) -> SourceError:
    why = (e.strerror or type(e).__name__).lower()
    return SourceError(f"cannot read {show(path)} ({why}): give read access (chmod -R u+rX) or move it out of "
                       "the dataset")


def not_an_image(path: Path, e: Exception) -> SourceError:
    Image = pil()
    why = "not an image format Pillow knows" if isinstance(e, Image.UnidentifiedImageError) else \
        (str(e).splitlines() or [type(e).__name__])[0][:100]
    return SourceError(f"{show(path)}: not a readable image ({why}): remove or replace the file")


def bomb(path: Path, pixels: str) -> SourceError:
    return SourceError(f"{show(path)}: an image of {pixels} pixels, over Pillow's limit of {pil().MAX_IMAGE_PIXELS:,} "
                       "(a decompression bomb?): remove it or downscale it")


# --- walking ---------------------------------------------------------------------------------
@dataclass
class Walk:
    """Reads folders, each real folder ((st_dev, st_ino)) once in the whole dataset."""

    seen: set = field(default_factory=set)
    folders: list = field(default_factory=list)  # (path, st_mtime_ns) of every folder read: the cache listing

    def claim(self, path: Path, st: os.stat_result) -> bool:
        """Whether the folder is new (and now seen)."""
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.folders.append((path, st.st_mtime_ns))
        return True

    def entries(self, folder: Path) -> tuple[list[tuple[str, Path, os.stat_result]], list[Path]]:
        """(the visible subfolders as (name, path, stat), the image files), sorted by name;
        links followed, broken links and unreadable entries refused."""
        try:
            with os.scandir(folder) as it:
                found = sorted((e.name, Path(e.path)) for e in it if not e.name.startswith("."))
        except OSError as e:
            raise unreadable(folder, e) from None
        dirs, images = [], []
        for name, path in found:
            try:
                st = path.stat()  # through links
            except OSError as e:
                if path.is_symlink():
                    raise SourceError(f"{show(path)}: a broken link ({(e.strerror or '').lower()}): remove the link "
                                      "or restore its target") from None
                raise unreadable(path, e) from None
            if stat.S_ISDIR(st.st_mode):
                dirs.append((name, path, st))
            elif name.lower().endswith(IMAGE_EXTENSIONS):
                if not stat.S_ISREG(st.st_mode):
                    raise SourceError(f"{show(path)}: not a regular file (a pipe or device): remove it")
                images.append(path)
        return dirs, images

    def images(self, top: Path) -> list[Path]:
        """Every image file under ``top`` (already claimed), skipping folders read before."""
        out, stack = [], [top]
        while stack:
            dirs, images = self.entries(stack.pop())
            out += images
            stack += [path for _, path, st in dirs if self.claim(path, st)]
        return sorted(out)


@dataclass
class Layout:
    splits: dict  # {'train'|'val'|'test': {class name: [image files]}}
    folders: dict  # {split: its folder}
    notes: list
    walk: Walk


def read_layout(root: Path) -> Layout:
    """The classes and image files of each split, by the rules above."""
    if not root.is_dir():
        raise SourceError(f"{show(root)}: no such folder: pass {dataset_help()}")
    walk = Walk()
    walk.claim(root, root.stat())
    top, loose = walk.entries(root)
    named: dict[str, list] = {}
    for entry in top:
        if entry[0].lower() in SPLITS:
            named.setdefault(SPLITS[entry[0].lower()], []).append(entry)
    for role, found in named.items():
        if len(found) > 1:
            raise SourceError(f"{show(root)}: {' and '.join(show(n) + '/' for n, _, _ in found)} are both "
                              f"{dict(val='validation').get(role, role)} folders: keep one")
    if named and "train" not in named:
        raise SourceError(f"{show(root)}: split folders {', '.join(show(f[0][0]) + '/' for f in named.values())} but "
                          f"no train/: put the training images in {show(root / 'train')}/CLASS/ (one subfolder per class)")
    notes = []
    if named:
        folders = {role: named[role][0][1] for role in ("train", "val", "test") if role in named}
        for role in folders:
            walk.claim(*named[role][0][1:])
        contents = {role: walk.entries(path) for role, path in folders.items()}
        if loose:
            notes.append(f"{show(root)}: {len(loose)} image files directly in it are in no split folder: ignored")
    else:
        folders, contents = {"train": root}, {"train": (top, loose)}
    # every class folder claimed before any is read (real folders before links): a link
    # inside one class to another class's folder adds nothing
    owned = {role: [(name, path) for name, path, st in sorted(dirs, key=lambda d: d[1].is_symlink())
                    if walk.claim(path, st)] for role, (dirs, _) in contents.items()}
    splits = {}
    for role, classes in owned.items():
        splits[role] = {show(name): files for name, path in sorted(classes) if (files := walk.images(path))}
        empty = sorted({show(name) for name, _, _ in contents[role][0]} - set(splits[role]))
        if empty and splits[role]:
            notes.append(f"{show(folders[role])}: class folders without images of their own ignored: "
                         f"{', '.join(empty[:5])}" + (f" and {len(empty) - 5} more" if len(empty) > 5 else ""))
        if contents[role][1] and splits[role]:
            notes.append(f"{show(folders[role])}: {len(contents[role][1])} image files directly in it are in no "
                         "class folder: ignored")
    for name, path, st in top if named else ():
        if name.lower() not in SPLITS and walk.claim(path, st) and walk.images(path):
            raise SourceError(f"{show(path)}: holds images beside the split folders "
                              f"{', '.join(show(p.name) + '/' for p in folders.values())}: ambiguous layout: "
                              "move it into train/ (as a class folder) or out of the dataset")
    train = folders["train"]
    if not splits["train"] and contents["train"][1]:
        raise SourceError(f"{show(train)}: {len(contents['train'][1])} image files directly in it and none in class "
                          "folders: put them in one subfolder per class")
    if not splits["train"]:
        raise SourceError(f"{show(train)}: no images found: put one subfolder per class holding PNG, JPEG, BMP, GIF, "
                          "WebP or TIFF files there (optionally under train/, val/ and test/)")
    for role in ("val", "test"):
        if role not in splits:
            continue
        if not splits[role]:
            raise SourceError(f"{show(folders[role])}: no images in class folders: put one subfolder per class there "
                              "(the classes of train/), or remove it")
        unknown = sorted(set(splits[role]) - set(splits["train"]))
        if unknown:
            raise SourceError(f"{show(folders[role])}: class folder '{unknown[0]}' is not in {show(train)}: give "
                              f"{show(folders[role].name)}/ only class folders of train/ (train/ may have more)")
    return Layout(splits, folders, notes, walk)


# --- headers and decoding ----------------------------------------------------------------------
def in_threads(fn, items: list) -> list:
    """[fn(x) for x in items] in threads where that pays (Pillow releases the GIL while it
    reads and decodes); chunks keep the per-task overhead small; the first error in order
    is raised."""
    workers = min(os.cpu_count() or 1, 16)
    if workers == 1 or len(items) < 256:
        return [fn(x) for x in items]
    chunk = max(64, len(items) // (workers * 8))
    parts = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    with ThreadPoolExecutor(workers) as pool:
        try:
            return [r for part in pool.map(lambda p: [fn(x) for x in p], parts) for r in part]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the chunks not started yet are not read
            raise


def header(path: Path) -> tuple[int, int, bool]:
    """(width, height, gray) from the file's header, without decoding it; refuses modes
    it cannot convert and images over Pillow's pixel limit."""
    Image = pil()
    try:
        with Image.open(path) as im:
            (w, h), mode = im.size, im.mode
    except Image.DecompressionBombError as e:  # over twice the limit: Pillow refuses to open it
        n = re.search(r"\((\d+) pixels\)", str(e))
        raise bomb(path, f"{int(n[1]):,}" if n else "more than twice that many") from None
    except PermissionError as e:
        raise unreadable(path, e) from None
    except BAD_FILE as e:
        raise not_an_image(path, e) from None
    if mode not in GRAY + COLOR:
        raise SourceError(f"{show(path)}: image mode {mode} is not supported: save it as gray or RGB (8 or 16 bits)")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise bomb(path, f"{w}x{h} = {w * h:,}")
    return w, h, mode in GRAY


def eight_bit(im, path: Path):
    """The image with 8 bits per value: 16-bit round(x / 257), 32-bit integers (0-65535)
    the same, float (0-1) round(x * 255); palettes with transparency as RGBA."""
    Image = pil()
    if im.mode in ("P", "PA") and (im.mode == "PA" or "transparency" in im.info):
        return im.convert("RGBA")
    if im.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return im
    a = np.asarray(im)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F":
        if not (np.isfinite(a).all() and lo >= 0 and hi <= 1):
            raise SourceError(f"{show(path)}: a 32-bit float image with values {lo:g} to {hi:g}, outside 0-1: scale "
                              "it to 0-1 or save it with 8 or 16 bits")
        return Image.fromarray(np.rint(a * 255.0).astype(np.uint8))
    if lo < 0 or hi > 65535:
        raise SourceError(f"{show(path)}: a 32-bit integer image with values {lo:g} to {hi:g}, outside 0-65535: save "
                          "it with 8 or 16 bits")
    return Image.fromarray(((a.astype(np.uint32) + 128) // 257).astype(np.uint8))


def decode(path: Path, channels: int, side: int) -> np.ndarray:
    """One image as uint8 C x side x side."""
    Image = pil()
    try:
        with Image.open(path) as im:
            im = eight_bit(im, path).convert("L" if channels == 1 else "RGB")
            if im.size != (side, side):
                im = im.resize((side, side), Image.BILINEAR)
            a = np.asarray(im)
    except SourceError:  # a ConfigError is a ValueError: not a malformed file
        raise
    except PermissionError as e:
        raise unreadable(path, e) from None
    except (Image.DecompressionBombError, *BAD_FILE) as e:
        raise not_an_image(path, e) from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def from_folder(root: Path, size: int | None = None, channels: int | None = None) -> Arrays:
    """The checked arrays of a folder dataset (the module's rules), converted as asked."""
    layout = read_layout(root)
    classes = tuple(layout.splits["train"])
    index = {c: i for i, c in enumerate(classes)}
    listed = {s: [(p, index[c]) for c, files in by_class.items() for p in files]
              for s, by_class in layout.splits.items()}
    files = [p for v in listed.values() for p, _ in v]
    with warnings.catch_warnings():  # Pillow's warnings (bombs, odd EXIF) would be lines of their own
        warnings.filterwarnings("ignore", module=r"PIL\b")
        heads = in_threads(header, files)
        notes = []
        gray = [g for _, _, g in heads]
        c = channels or (1 if all(gray) else 3)
        if channels is None and c == 3 and any(gray):
            notes.append("gray and color images mixed: gray ones repeated to 3 channels "
                         "(pass --channels 1 or 3 to choose)")
        sizes = Counter((h, w) for w, h, _ in heads)
        (h0, w0), _ = sizes.most_common(1)[0]
        side = size or max(h0, w0)
        if size is None and (len(sizes) > 1 or h0 != w0):
            examples = " and ".join(f"{w}x{h}" for h, w in list(sizes)[:2])
            notes.append(f"images differ in size or are not square (e.g. {examples}): all resized to {side}x{side} "
                         "(pass --image-size S to choose)")
        where = show(root)
        check_memory(where, len(files), c, side, side)
        arrays = {}
        for split, items in listed.items():
            x = np.empty((len(items), c, side, side), np.uint8)

            def put(i: int, items=items, x=x) -> None:
                x[i] = decode(items[i][0], c, side)
            in_threads(put, list(range(len(items))))
            arrays[split] = (x, np.array([y for _, y in items], np.int64))
    x_test, y_test = arrays.get("test", (None, None))
    x_val, y_val = arrays.get("val", (None, None))
    return check(Arrays(*arrays["train"], x_test, y_test, classes, notes=layout.notes + notes, x_val=x_val,
                        y_val=y_val), where)


class Folder(Source):
    name = "folder"
    help = "a folder with one subfolder per class (optionally under train/, val/ and test/)"
    listed = 1
    priority = 100  # claims whatever no other source does
    local = True

    def matches(self, dataset: str) -> bool:
        return True

    def exists(self, dataset: str) -> bool:
        return Path(dataset).is_dir()

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        return from_folder(Path(cfg.dataset), cfg.image_size, cfg.channels), show(cfg.dataset)

    def listing(self, dataset: str) -> bytes:
        """Every image file's name in each split and class, and every folder read with its
        modification time, which changes when a file is added, removed or renamed (far
        cheaper than a stat of each file). A file rewritten in place under the same name is
        not noticed: touch its folder (README)."""
        layout = read_layout(Path(dataset))
        h = hashlib.sha256(LISTING)
        for folder, mtime in layout.walk.folders:
            h.update(os.fsencode(folder) + f":{mtime}\n".encode())
        for split, by_class in layout.splits.items():
            for c, files in by_class.items():
                h.update(f"{split}/{c}:{len(files)}\n".encode())
                h.update(b"\n".join(map(os.fsencode, files)))
        return h.digest()
