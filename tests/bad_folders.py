"""Bad-input cases for folders (merged into tests/test_bad_input.py's table).

CASES: (id, argv after 'budgetnas', extra environment, text the one stderr line must
contain); argv may use {S} (a copy of the study folder), {mnist}, {root}, {afile}, and
{folders}: the folder make() filled. make(folder) writes the inputs the cases read.

Every input here survives procs.fingerprint (its rglob does not descend links to folders
and skips what it cannot read): no broken links (their bytes cannot be hashed; those are
tested in tests/test_folders.py)."""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from owndata import images, write_folder

# the study settings of tests/test_bad_input.py (importing them from there is circular)
STUDY = ("--storage", "sqlite:///{S}/s.db", "--study", "b", "--budget", "3000", "--trials", "4",
         "--train-limit", "1000", "--val-size", "500")
LIMIT = "89,478,485"  # Pillow's Image.MAX_IMAGE_PIXELS


def search(folder: str) -> tuple[str, ...]:
    return ("search", *STUDY, "--dataset", "{folders}/" + folder)


def chmod_blocks() -> bool:
    """Whether a chmod 000 folder is unreadable here (not for root, which reads anyway)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0)
        try:
            os.listdir(tmp)
            return False
        except PermissionError:
            return True
        finally:
            os.chmod(tmp, 0o700)


CASES: list[tuple] = [
    ("folder-symlink-loop", search("loop"), {}, "only one class ('cat')"),
    ("folder-non-utf8-name", search("bytes"), {}, "bytes/class1/\\xff\\xfe.png: not a readable image"),
    ("folder-newline-in-name", search("newline"), {}, "newline/class1/bad\\nname.png: not a readable image"),
    ("folder-bomb-first-file", search("bomb"), {},
     f"bomb/class0/0.png: an image of 400,000,000 pixels, over Pillow's limit of {LIMIT} (a decompression bomb?): "
     "remove it or downscale it"),
    ("folder-bomb-later", search("bomb2"), {},
     f"bomb2/class1/zz.png: an image of 10000x9000 = 90,000,000 pixels, over Pillow's limit of {LIMIT}"),
    ("folder-split-extra-class", search("extra"), {},
     "extra/dog: holds images beside the split folders train/, val/: ambiguous layout: move it into train/"),
    ("folder-val-class-not-in-train", search("valclass"), {},
     "valclass/val: class folder 'horse' is not in {folders}/valclass/train: give val/ only class folders of train/"),
    ("folder-test-class-not-in-train", search("testclass"), {},
     "testclass/test: class folder 'horse' is not in {folders}/testclass/train"),
    ("folder-split-without-train", search("notrain"), {},
     "notrain: split folders test/, val/ but no train/: put the training images in {folders}/notrain/train/CLASS/"),
    ("folder-two-val-folders", search("twoval"), {}, "twoval: val/ and valid/ are both validation folders: keep one"),
    ("folder-train-alone-one-class", search("trainonly"), {}, "only one class ('cat')"),
    ("folder-empty-val", search("emptyval"), {}, "emptyval/val: no images in class folders"),
    ("folder-val-with-val-size", search("split"), {}, "it has its own validation split (8 images): drop --val-size"),
    ("folder-float-out-of-range", search("float"), {},
     "float/class1/f.tif: a 32-bit float image with values 300 to 300, outside 0-1"),
    ("folder-int-out-of-range", search("int"), {},
     "int/class1/i.tif: a 32-bit integer image with values 70000 to 70000, outside 0-65535"),
    ("folder-unsupported-mode", search("lab"), {}, "lab/class1/lab.tif: image mode LAB is not supported"),
    ("folder-memory-counts-every-file", search("growing"), {"BUDGETNAS_MAX_MEMORY": "1M"},
     "growing: 6 images of 1x600x600 need about"),
    ("folder-loose-images-only", search("loose"), {}, "loose: 4 image files directly in it and none in class folders: put them in one subfolder per class"),
]
if chmod_blocks():
    CASES.append(("folder-unreadable-subfolder", search("locked"), {},
                  "cannot read {folders}/locked/class1/sub (permission denied)"))


def png_header(w: int, h: int) -> bytes:
    """A 1-bit gray PNG that says it is w x h (its pixel data is not: nothing may decode it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def make(folder: Path) -> None:
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    x, y = images(20, 2, (16, 16))
    write_folder(folder / "loop", x[:6], np.zeros(6, int), ["cat"])
    os.symlink("..", folder / "loop" / "cat" / "up")  # to the root: a loop, and not a second class
    os.symlink(".", folder / "loop" / "cat" / "self")
    write_folder(folder / "bytes", x, y)
    Path(os.fsdecode(os.fsencode(folder / "bytes" / "class1") + b"/\xff\xfe.png")).write_bytes(b"not an image")
    write_folder(folder / "newline", x, y)
    (folder / "newline" / "class1" / "bad\nname.png").write_bytes(b"not an image")
    write_folder(folder / "bomb", x, y)
    (folder / "bomb" / "class0" / "0.png").write_bytes(png_header(20000, 20000))  # over twice the limit: Pillow raises
    write_folder(folder / "bomb2", x, y)
    (folder / "bomb2" / "class1" / "zz.png").write_bytes(png_header(10000, 9000))  # over it: Pillow only warns
    for name in ("extra", "valclass", "testclass", "emptyval"):
        write_folder(folder / name / "train", x, y)
    write_folder(folder / "extra" / "val", x[:4], y[:4])
    write_folder(folder / "extra" / "dog", x[:4], y[:4])
    write_folder(folder / "valclass" / "val", x[:4], y[:4], ["class0", "horse"])
    write_folder(folder / "testclass" / "test", x[:4], y[:4], ["horse", "class1"])
    (folder / "emptyval" / "val" / "class0").mkdir(parents=True)
    write_folder(folder / "notrain" / "val", x[:4], y[:4])
    write_folder(folder / "notrain" / "test", x[:4], y[:4])
    for split in ("train", "val", "valid"):
        write_folder(folder / "twoval" / split, x[:4], y[:4])
    write_folder(folder / "trainonly" / "train", x[:6], np.zeros(6, int), ["cat"])
    write_folder(folder / "split" / "train", x, y)
    write_folder(folder / "split" / "val", x[:8], y[:8])
    for name, img, file in (("float", np.full((16, 16), 300.0, np.float32), "f.tif"),
                            ("int", np.full((16, 16), 70000, np.int32), "i.tif")):
        write_folder(folder / name, x, y)
        Image.fromarray(img).save(folder / name / "class1" / file)
    write_folder(folder / "lab", x, y)
    Image.new("LAB", (16, 16)).save(folder / "lab" / "class1" / "lab.tif")
    write_folder(folder / "growing", x[:1], y[:1])  # the first file 16x16, the later ones 600x600
    (folder / "growing" / "class1").mkdir()
    for i in range(5):
        Image.new("L", (600, 600), 40 * i).save(folder / "growing" / f"class{i % 2}" / f"big{i}.png")
    write_folder(folder / "loose", x[:4], y[:4])
    for p in (folder / "loose").rglob("*.png"):
        p.rename(folder / "loose" / f"{p.parent.name}-{p.name}")
    for d in ("class0", "class1"):
        (folder / "loose" / d).rmdir()
    write_folder(folder / "locked", x, y)
    write_folder(folder / "locked" / "class1" / "sub", x[:2], y[:2], ["a", "b"])
    os.chmod(folder / "locked" / "class1" / "sub", 0)
