"""Bad-input cases for arrays (merged into tests/test_bad_input.py's table).

CASES: (id, argv after 'budgetnas', extra environment, text the one stderr line must
contain); argv may use {S} (a copy of the study folder), {mnist}, {root}, {afile}, and
{arrays}: the folder make() filled. make(folder) writes the inputs the cases read.

ARRAYS: arrays that break the data rules (budgetnas/data/arrays.py), each written as an
.npz for the CLI and passed as they are to budgetnas.search (tests/test_arrays.py):
both must give the same one-line error. FILES: .npz files broken as files."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from owndata import images

# the study settings of tests/test_bad_input.py (importing them from there is circular)
STUDY = ("--storage", "sqlite:///{S}/s.db", "--study", "b", "--budget", "3000", "--trials", "4",
         "--train-limit", "1000", "--val-size", "500")


def search(name: str) -> tuple[str, ...]:
    return ("search", *STUDY, "--dataset", "{arrays}/" + name + ".npz")


def bad_arrays() -> dict[str, tuple[dict, str]]:
    """{case: (arrays, the text of their one-line error)}."""
    x, y = images(40, 2, (16, 16))
    rgb = images(10, 2, (16, 16, 3))[0]
    floats = x.astype(np.float32) / 255
    stray = floats.copy()
    stray[0, 0, 0] = 1.02  # one pixel just over 1 in a 0-1 array
    nan = floats.copy()
    nan[3, 4, 5] = np.nan
    huge = y.astype(np.uint64)
    huge[0] = 2 ** 64 - 1
    far = y.copy()
    far[7] = 10 ** 7  # one stray label
    sparse = y.copy()
    sparse[:3] = (9, 19, 39)  # 5 distinct labels up to 39
    one = {"x_train": x, "y_train": y}
    return {
        "uint16-holding-8-bit": ({**one, "x_train": x.astype(np.uint16)},
                                 "x_train is uint16 but all its values are in 0..255 (max 230): uint16 is read as "
                                 "16-bit pixels (0-65535): pass 8-bit pixels as uint8"),
        "int32-over-255": ({**one, "x_train": x.astype(np.int32) * 100},
                           "x_train of dtype int32 holds values 0..23000: integer pixels must be 0..255"),
        "int-binary": ({**one, "x_train": (x > 100).astype(np.int64)},
                       "x_train of dtype int64 holds only 0 and 1: integer pixels are 0..255: pass black-and-white "
                       "images as bool"),
        "float-stray-over-1": ({**one, "x_train": stray},
                               "x_train is ambiguous: 99.9% of its values are in [0, 1] but some go up to 1.02: "
                               "clip 0-1 pixels to [0, 1]"),
        "float-normalised": ({**one, "x_train": (floats - 0.5) / 0.25},
                             "x_train holds negative values (min -2): it looks already normalised: pass raw pixels"),
        "float-nan": ({**one, "x_train": nan}, "x_train holds NaN or infinite values"),
        "float-over-255": ({**one, "x_train": x.astype(np.float64) * 4},
                           "x_train holds values up to 920: float pixels are 0-1 or 0-255"),
        "complex-pixels": ({**one, "x_train": x.astype(np.complex64)},
                           "x_train has dtype complex64: pass pixels as one array of uint8"),
        "string-pixels": ({**one, "x_train": x.astype(str)}, "x_train has dtype <U3: pass pixels as one array of"),
        "structured-pixels": ({**one, "x_train": np.zeros((40, 16, 16), [("r", "u1"), ("g", "u1")])},
                              "x_train has dtype [('r', 'u1'), ('g', 'u1')]: pass pixels as one array"),
        "flat-rows": ({**one, "x_train": x.reshape(40, -1)},
                      "x_train has shape (40, 256): images must be N x H x W, N x H x W x C or N x C x H x W with "
                      "C = 1 or 3: flat rows? reshape them"),
        "rank-5": ({**one, "x_train": x[:, None, None]}, "x_train has shape (40, 1, 1, 16, 16): images must be"),
        "no-images": ({"x_train": x[:0], "y_train": y[:0]},
                      "x_train holds no images (shape (0, 16, 16)): give at least one image per class"),
        "zero-side": ({**one, "x_train": np.zeros((40, 16, 0), np.uint8)},
                      "x_train holds images of 16x0 pixels: images need at least one pixel a side"),
        "side-over-1024": ({**one, "x_train": np.zeros((40, 8, 2000), np.uint8)},
                           "images of 8x2000 pixels are larger than 1024x1024: pass --image-size S (8..1024)"),
        "test-on-another-scale": ({**one, "x_test": floats[:10], "y_test": y[:10]},
                                  "x_test holds floats in 0-1 but x_train 0-255 pixels: give every split the same"),
        "test-other-channels": ({**one, "x_test": rgb, "y_test": y[:10]},
                                "x_test has 3 channel(s) but x_train 1: give every split the same channels"),
        "test-without-labels": ({**one, "x_test": x[:10]}, "x_test and y_test come together: give both or neither"),
        "val-without-labels": ({**one, "x_val": x[:10]}, "x_val and y_val come together: give both or neither"),
        "val-no-images": ({**one, "x_val": x[:0], "y_val": y[:0]},
                          "x_val holds no images (shape (0, 16, 16)): leave out x_val and its labels"),
        "label-uint64-max": ({**one, "y_train": huge},
                             "y_train label 18446744073709551615 is out of range (beyond int64): renumber the labels"),
        "label-stray": ({**one, "y_train": far},
                        "training label 10000000 makes 10,000,001 classes for 40 training images (3 distinct "
                        "labels): renumber the labels 0..K-1, e.g. with np.unique(y, return_inverse=True)"),
        "labels-mostly-unused": ({**one, "y_train": sparse},
                                 "only 5 of the 40 classes (0..39) have a training image: renumber the labels"),
        "labels-one-hot": ({**one, "y_train": np.eye(2, dtype=np.int64)[y]},
                           "y_train has shape (40, 2): labels must be integers 0..K-1 in one dimension: pass class "
                           "indices, not one-hot rows"),
        "labels-names": ({**one, "y_train": np.array(["cat", "dog"])[y]},
                         "y_train of dtype <U3: labels must be integers 0..K-1 in one dimension: pass class "
                         "indices, not names"),
        "labels-negative": ({**one, "y_train": y - 1}, "y_train label -1 is out of range: labels must be 0..K-1"),
        "val-label-out-of-range": ({**one, "x_val": x[:10], "y_val": np.full(10, 5)},
                                   "validation label 5 is out of range for 2 classes"),
        "classes-0d": ({**one, "classes": np.array("cat")}, "classes has shape (): give one name per class"),
        "classes-duplicate": ({**one, "classes": np.array(["cat", "cat"])},
                              "class name 'cat' appears 2 times in classes: give each class its own name"),
        "classes-too-few": ({**one, "classes": np.array(["cat"])},
                            "training label 1 is out of range for the 1 class name(s) in classes"),
        "classes-numbers": ({**one, "classes": np.arange(2)}, "class names must be strings"),
        "classes-empty-name": ({**one, "classes": np.array(["cat", ""])},
                               "class name '' is empty or not one printable line"),
        "classes-two-lines": ({**one, "classes": np.array(["cat", "dog\nfox"])},
                              "class name 'dog\\nfox' is empty or not one printable line"),
        "classes-not-utf8": ({**one, "classes": np.array([b"cat", b"\xff\xfe"])},
                             "classes holds bytes that are not UTF-8"),
        "classes-mostly-unused": ({**one, "classes": np.array([f"c{i}" for i in range(10)])},
                                  "only 2 of the 10 classes (0..9) have a training image: renumber the labels "
                                  "0..K-1, e.g. with np.unique(y, return_inverse=True) and keep only their names"),
    }


ARRAYS = bad_arrays()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _damaged(path: Path) -> None:
    x, y = images(40, 2, (16, 16))
    np.savez(path, x_train=x, y_train=y)
    raw = bytearray(path.read_bytes())
    raw[600] ^= 0xFF  # a byte of x_train's pixels: the zip's CRC no longer matches
    path.write_bytes(bytes(raw))


def _truncated(path: Path) -> None:
    x, y = images(40, 2, (16, 16))
    np.savez(path, x_train=x, y_train=y)
    path.write_bytes(path.read_bytes()[:5000])


def _savez(**arrays):
    return lambda path: np.savez(path, **arrays)


_x, _y = images(40, 2, (16, 16))
SAVE = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
# {case: (writes the file, the text of its one-line error)}
FILES = {
    "empty-file": (lambda p: p.write_bytes(b""), f"empty file (0 bytes), not an .npz: {SAVE}"),
    "text-file": (lambda p: p.write_text("x,y\n1,2\n"), f"text-file.npz: not an .npz (zip) file: {SAVE}"),
    "one-npy": (lambda p: np.save(p.open("wb"), _x), f"one .npy array, not an .npz of named arrays: {SAVE}"),
    "truncated-zip": (_truncated, "a truncated or damaged .npz (zip) file (File is not a zip file)"),
    "member-not-npy": (lambda p: _zip(p, {"x_train.npy": b"not an array" * 5, "y_train.npy": b"?"}),
                       "x_train in it is not a readable .npy array (the magic string is not correct"),
    "member-damaged": (_damaged, "x_train in it cannot be read (Bad CRC-32 for file 'x_train.npy'): the file is "
                                 "damaged"),
    "pickled-images": (_savez(x_train=_x.astype(object), y_train=_y),
                       "x_train in it holds Python objects (a pickled array), which budgetnas does not load: save the "
                       "images as one numeric array"),
    "pickled-classes": (_savez(x_train=_x, y_train=_y, classes=np.array(["a", "b"], dtype=object)),
                        "classes in it holds Python objects (a pickled array), which budgetnas does not load: save the "
                        "names as strings"),
    "typo-key": (_savez(xtrain=_x, y_train=_y),
                 "no x_train in it (keys: xtrain, y_train; did you mean x_train for 'xtrain'?): an .npz holds only "
                 "x_train, y_train, x_test, y_test, x_val, y_val, classes"),
    "misspelled-test-split": (_savez(x_train=_x, y_train=_y, x_tset=_x[:10], y_tset=_y[:10]),
                              "unknown key(s) 'x_tset', 'y_tset' in it (keys: x_train, x_tset, y_train, y_tset; did "
                              "you mean x_test for 'x_tset', y_test for 'y_tset'?)"),
    "unknown-key": (_savez(x_train=_x, y_train=_y, mean=np.zeros(3)),
                    "unknown key(s) 'mean' in it (keys: mean, x_train, y_train): an .npz holds only"),
    "empty-zip": (_savez(), "no x_train or y_train in it (keys: none)"),
}


def make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (arrays, _) in ARRAYS.items():
        np.savez(folder / f"{name}.npz", **arrays)
    for name, (write, _) in FILES.items():
        write(folder / f"{name}.npz")
    x, y = images(40, 2, (16, 16))
    np.savez(folder / "with-val.npz", x_train=x, y_train=y, x_val=x[:8], y_val=y[:8])
    big, labels = images(100, 2, (200, 200))
    np.savez(folder / "big-test.npz", x_train=x, y_train=y, x_test=big, y_test=labels)


CASES: list[tuple] = [
    *[(f"npz-{name}", search(name), {}, text) for name, (_, text) in ARRAYS.items()],
    *[(f"npz-file-{name}", search(name), {}, text) for name, (_, text) in FILES.items()],
    ("npz-val-size-with-given-val", search("with-val"), {},
     "with-val.npz: it has its own validation split (8 images): drop --val-size"),
    ("npz-memory-counts-every-split", search("big-test"), {"BUDGETNAS_MAX_MEMORY": "2M"},
     "big-test.npz: 140 images (x_train 40 of 16x16, x_test 100 of 200x200) need about 4.0 MB of memory and "
     "2.0 MB is available"),
]
