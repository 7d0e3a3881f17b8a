"""The fuzzer's own-data inputs (scripts/fuzz.py): .npz files and image folders, each made
valid and then broken in a few random ways (dtypes, ranks, shapes, values, labels, keys,
zip damage; image formats, modes, corrupt and huge-header files, odd names, links,
permissions, layouts). Everything is small: images up to 32x32, at most ~60 of them.
Deterministic given the Rand (every choice comes from it)."""
from __future__ import annotations

import io
import os
import random
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np


class Rand(random.Random):
    """random.Random (a str seed is hashed with sha512: the same cases on every run) with
    a few helpers and a numpy generator drawn from it."""

    def chance(self, p: float) -> bool:
        return self.random() < p

    def np(self) -> np.random.Generator:
        return np.random.default_rng(self.getrandbits(63))

    def weighted(self, table: dict):
        return self.choices(list(table), weights=list(table.values()))[0]


# --- arrays ----------------------------------------------------------------------------
def pattern_images(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int):
    """uint8 images with a bright class-dependent bar on noise, and labels 0..classes-1."""
    x = rng.integers(0, 90, (n, *shape), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % max(classes, 1)
    if len(shape) >= 2 and shape[0] >= 4:
        band = max(1, shape[0] // max(classes, 1))
        for i, c in enumerate(y):
            x[i, band * c:band * (c + 1)] = 230
    return x, y


def _cast(r: Rand, x: np.ndarray, odd: bool) -> tuple[np.ndarray, str]:
    """The images as stored: uint8 or float in [0, 1] or [0, 255]; ``odd``: another
    dtype or value range (NaN, inf, negatives, over 255, slightly over 1, complex...)."""
    how = r.weighted({"uint8": 3, "float01": 1, "float255": 1} if not odd else {
        "over1": 1, "nan": 1, "inf": 1, "negative": 1, "over255": 1, "uint16": 1, "int64": 1, "uint64": 1, "int8": 1,
        "float16": 1, "bool": 1, "complex": 1, "bigendian": 1, "str": 1, "datetime": 1, "void": 1, "zero": 1,
        "const255": 1, "float01": 0.5})
    f = x.astype(np.float64)
    if how == "uint8":
        return x, how
    if how in ("float01", "over1", "nan", "inf"):
        out = (f / 255).astype(r.choice([np.float32, np.float64] + [np.float16] * odd))
        if how == "over1" and out.size:
            out.flat[r.randrange(out.size)] = r.choice([1.0001, 1.5, 2.0])
        if how in ("nan", "inf") and out.size:
            out.flat[r.randrange(out.size)] = np.nan if how == "nan" else r.choice([np.inf, -np.inf])
        return out, how
    if how == "float255":
        return f.astype(np.float32), how
    if how == "negative":
        return (f - 128).astype(r.choice([np.int16, np.float32, np.int64])), how
    if how == "over255":
        return (f * 4).astype(r.choice([np.int32, np.uint16, np.float32])), how
    if how == "zero":
        return np.zeros_like(x), how
    if how == "const255":
        return np.full_like(x, 255), how
    if how == "complex":
        return f.astype(np.complex64), how
    if how == "bigendian":
        return f.astype(r.choice([">u2", ">f4", ">i8"])), how
    if how == "str":
        return x.astype("U3"), how
    if how == "datetime":
        return x.astype("datetime64[s]"), how
    if how == "void":
        return x.astype("V1") if x.size else np.zeros(x.shape, "V1"), how
    if how == "bool":
        return x > 100, how
    return x.astype(how), how


def _labels(r: Rand, n: int, k: int, odd: bool) -> tuple[np.ndarray, str]:
    y = np.arange(n, dtype=np.int64) % max(k, 1)
    how = "ok" if not odd else r.weighted({
        "uint8": 1, "uint64": 1, "bool": 1, "float-int": 1, "float-half": 1, "nan": 1, "huge": 1, "negative": 1,
        "2d": 1, "onehot": 1, "short": 1, "long": 1, "scalar": 1, "str": 1, "one-class": 1, "from-1": 1, "gaps": 1,
        "int8-wrap": 1, "empty": 1})
    if how == "ok":
        return y.astype(r.choice([np.int64, np.int32, np.int16])), how
    if how in ("uint8", "uint64"):
        return y.astype(how), how
    if how == "bool":
        return y.astype(bool), how
    if how == "float-int":
        return y.astype(np.float32), how
    if how == "float-half":
        return y + 0.5, how
    if how == "nan":
        yf = y.astype(np.float64)
        if n:
            yf[r.randrange(n)] = np.nan
        return yf, how
    if how == "huge":
        y = y.copy()
        if n:
            y[r.randrange(n)] = r.choice([2 ** 62, 2 ** 31, 10 ** 9, np.iinfo(np.int64).max])
        return y, how
    if how == "negative":
        y = y.copy()
        if n:
            y[r.randrange(n)] = r.choice([-1, -(2 ** 63)])
        return y, how
    if how == "2d":
        return y[:, None] if r.chance(0.5) else np.stack([y, y], 1), how
    if how == "onehot":
        return np.eye(max(k, 1), dtype=np.float32)[y], how
    if how == "short":
        return y[:-1], how
    if how == "long":
        return np.concatenate([y, y[:3]]), how
    if how == "scalar":
        return np.array(1), how
    if how == "str":
        return np.array([f"c{v}" for v in y]), how
    if how == "one-class":
        return np.zeros(n, np.int64), how
    if how == "from-1":
        return y + 1, how
    if how == "gaps":
        return y * 3, how
    if how == "int8-wrap":
        return (y + 126).astype(np.int8), how
    return np.zeros(0, np.int64), how


def _classes(r: Rand, k: int, odd: bool) -> tuple[np.ndarray | None, str]:
    how = r.weighted({"none": 2, "ok": 1} if not odd else {
        "0d": 1, "short": 1, "long": 1, "ints": 1, "dup": 1, "empty-str": 1, "odd-chars": 1, "bytes": 1,
        "long-name": 1, "2d": 1, "float": 1})
    names = [f"class{i}" for i in range(k)]
    if how == "none":
        return None, how
    return {"ok": lambda: np.array(names), "0d": lambda: np.array("cats"), "short": lambda: np.array(names[:-1]),
            "long": lambda: np.array(names + ["extra", "more"]), "ints": lambda: np.arange(k),
            "dup": lambda: np.array(["same"] * k), "empty-str": lambda: np.array([""] * k),
            "odd-chars": lambda: np.array([f"a/b\n{i}\u00e9\u202e" for i in range(k)]),
            "bytes": lambda: np.array([n.encode() for n in names]),
            "long-name": lambda: np.array(["x" * 5000 + str(i) for i in range(k)]),
            "2d": lambda: np.array([names, names]), "float": lambda: np.linspace(0, 1, k)}[how](), how


BREAKS = ("n", "k", "side", "layout", "cast", "labels", "test", "classes", "keys", "fortran", "file")


def npz_arrays(r: Rand) -> tuple[dict[str, np.ndarray], list[str], set[str]]:
    """The arrays of an .npz: valid ones (several layouts, dtypes, sizes) with 0-3 things
    broken; returns them, words saying how they were made, and what was broken."""
    breaks = set(r.sample(BREAKS, r.weighted({0: 3, 1: 5, 2: 2, 3: 1})))
    rng = r.np()
    n = r.choice([0, 1, 2, 3, 5, 10] if "n" in breaks else [20, 30, 40, 60])
    k = r.choice([1, 10, 100] if "k" in breaks else [2, 3, 4])
    side = r.choice([1, 4, 7, 33] if "side" in breaks else [8, 12, 16, 28])
    w = r.choice([side, side + 1, 1, 32]) if "side" in breaks else side
    if "layout" in breaks:
        layout, c = r.choice(["N", "NH", "N1HW1", "scalar", "NHWC", "NCHW"]), r.choice([2, 4, 5])
    else:
        layout, c = r.choice(["NHW", "NHWC", "NCHW"]), r.choice([1, 3])
    shape = {"NHW": (side, w), "NHWC": (side, w, c), "NCHW": (side, w, c), "N": (), "NH": (side,),
             "N1HW1": (1, side, w, 1), "scalar": None}[layout]
    words = [f"n={n} k={k} {layout} {side}x{w}" + (f" c={c}" if "C" in layout else "")]
    if shape is None:
        x = np.array(7, np.uint8)
    else:
        x, _ = pattern_images(rng, n, shape, k)
        if layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if "fortran" in breaks and x.ndim > 1:
            x = np.asfortranarray(x)
            words.append("fortran")
    x, how = _cast(r, x, "cast" in breaks)
    words.append(f"x {how}")
    y, yhow = _labels(r, n, k, "labels" in breaks)
    words.append(f"y {yhow}")
    arrays: dict[str, np.ndarray] = {"x_train": x, "y_train": y}
    test = r.choice(["x-only", "y-only", "other-shape", "empty", "bad-labels", "other-dtype"]) if "test" in breaks \
        else r.choice(["none", "ok"])
    if test != "none" and x.ndim and y.ndim:
        words.append(f"test {test}")
        m = max(n // 3, 1)
        xt, yt = x[:m], y[:m]
        if test == "other-shape":
            xt, yt = pattern_images(rng, m, (side + 4, w + 4), k)
        elif test == "empty":
            xt, yt = xt[:0], yt[:0]
        elif test == "bad-labels":
            yt = yt + k
        elif test == "other-dtype":
            if xt.dtype == np.uint8:
                xt = xt.astype(np.float64) / 255
            else:  # strings, objects: an array of another kind altogether (numpy cannot cast them)
                try:
                    xt = np.real(xt).astype(np.uint8)
                except (ValueError, TypeError):
                    xt = np.zeros(xt.shape, np.uint8)
        if test != "y-only":
            arrays["x_test"] = xt
        if test != "x-only":
            arrays["y_test"] = yt
    classes, chow = _classes(r, k, "classes" in breaks)
    if classes is not None:
        arrays["classes"] = classes
        words.append(f"classes {chow}")
    if "keys" in breaks:
        keys = r.choice(["no-x", "no-y", "renamed", "extra", "val", "none"])
        words.append(f"keys {keys}")
        if keys == "no-x":
            arrays.pop("x_train")
        elif keys == "no-y":
            arrays.pop("y_train")
        elif keys == "renamed":
            arrays = {key.upper(): v for key, v in arrays.items()}
        elif keys == "extra":
            arrays["meta"] = np.arange(3)
        elif keys == "val":
            arrays["x_val"], arrays["y_val"] = (x[:2] if x.ndim else x), (y[:2] if y.ndim else y)
        else:
            arrays = {}
    return arrays, words, breaks


# --- .npz files ----------------------------------------------------------------------------
def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def npy_header(r: Rand) -> bytes:
    """An .npy file whose header lies (huge or negative shape, junk dtype, bad dict)."""
    header = r.choice([
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 28, 28), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (-5, 28, 28), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2**70, 2), }",
        "{'descr': 'zz9', 'fortran_order': False, 'shape': (10, 8, 8), }",
        "{'descr': '<u1', 'fortran_order': 'yes', 'shape': (10, 8, 8), }",
        "{'descr': '|O', 'fortran_order': False, 'shape': (10,), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (10, 8, 8), 'extra': 1}",
        "{'descr': '|u1', 'shape': (10, 8, 8), }",
        "[1, 2, 3]",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (10, 8, 8), " + "'x': 1, " * 3000 + "}",
        "__import__('os').system('true')",
        "{'descr': [('a', '<u1'), ('b', '<f4')], 'fortran_order': False, 'shape': (10, 8, 8), }",
    ])
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    if len(text) < 65536:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text))
    else:
        head = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text))
    return head + text + bytes(r.np().integers(0, 256, r.choice([0, 10, 640]), dtype=np.uint8))


def write_npz(r: Rand, path: Path, arrays: dict[str, np.ndarray], damage: bool) -> str:
    """Save the arrays as an .npz (``damage``: then damage the file); returns what was done."""
    how = r.weighted({"savez": 3, "compressed": 1} if not damage else {
                      "empty-file": 1, "text": 1, "truncate": 1, "flip": 2,
                      "garbage-member": 1, "npy": 1, "lying-header": 2, "unsupported-method": 1, "encrypted": 1,
                      "duplicate-member": 1, "traversal-member": 1, "nested-member": 1, "directory": 1,
                      "trailing-junk": 1, "zip-of-zip": 1, "pickled": 1})
    members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
    method = zipfile.ZIP_DEFLATED if how == "compressed" else zipfile.ZIP_STORED

    def zip_bytes(items, compress=zipfile.ZIP_STORED) -> bytes:
        buf = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compress) as z:
            warnings.simplefilter("ignore")  # duplicate member names are the point
            for name, data in items:
                z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress)  # the same bytes every run
        return buf.getvalue()

    if how == "directory":
        path.mkdir()
        (path / "x_train.npy").write_bytes(members.get("x_train.npy", b""))
        return how
    if how == "empty-file":
        path.write_bytes(b"")
        return how
    if how == "text":
        path.write_text("x_train,y_train\n1,2\n")
        return how
    if how == "npy":
        path.write_bytes(members.get("x_train.npy") or npy_bytes(np.zeros(3)))
        return how
    if how == "pickled":
        arrays = {**arrays, "y_train": np.array([{"label": 1}] * 3, dtype=object)}
        members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
    items = list(members.items())
    if how == "garbage-member":
        junk = bytes(r.np().integers(0, 256, 300, dtype=np.uint8))
        if items:
            items[r.randrange(len(items))] = (r.choice(items)[0], junk)
        else:
            items = [("x_train.npy", junk)]
    if how == "lying-header":
        items = [(n, npy_header(r) if n in ("x_train.npy", "x_test.npy") or r.chance(0.3) else d) for n, d in items] \
            or [("x_train.npy", npy_header(r))]
    if how == "duplicate-member" and items:
        items.append((items[0][0], npy_bytes(np.arange(5))))
    if how == "traversal-member":
        items = [("../" + n if r.chance(0.5) else "/abs/" + n, d) for n, d in items]
    if how == "nested-member":
        items = [("sub/" + n, d) for n, d in items]
    data = zip_bytes(items, method)
    if how == "zip-of-zip":
        data = zip_bytes([("x_train.npy", data), ("y_train.npy", data)])
    if how == "truncate":
        data = data[:r.randrange(max(len(data), 1))]
    if how == "trailing-junk":
        data += bytes(r.np().integers(0, 256, r.choice([1, 22, 1000]), dtype=np.uint8))
    if how == "flip" and data:
        b = bytearray(data)
        for _ in range(r.choice([1, 1, 2, 5, 50])):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
        data = bytes(b)
    if how in ("unsupported-method", "encrypted"):
        b = bytearray(data)
        for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
            at = b.find(sig)
            while at >= 0:
                if how == "encrypted":
                    b[at + flag_at] |= 1
                else:
                    b[at + method_at:at + method_at + 2] = struct.pack("<H", r.choice([99, 12, 14, 93, 1]))
                at = b.find(sig, at + 4)
        data = bytes(b)
    path.write_bytes(data)
    return how


# --- images --------------------------------------------------------------------------------
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP"}
MODES = ("L", "L", "RGB", "RGB", "RGB", "1", "LA", "P", "RGBA", "I;16", "I", "F", "CMYK", "YCbCr", "LAB", "HSV")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_bytes(r: Rand, ext: str) -> tuple[bytes, str]:
    """An image file whose header claims huge dimensions (a decompression bomb) with
    hardly any pixel data behind it."""
    w, h = r.choice([(100_000, 100_000), (65_535, 65_535), (20_000, 5_000), (2 ** 31 - 1, 1), (1, 2 ** 31 - 1),
                     (0, 0), (10_000, 10_000), (50_000, 2)])
    if ext == ".gif":
        w, h = min(w, 65535), min(h, 65535)
        return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b",\x00\x00\x00\x00" + \
            struct.pack("<HH", w, h) + b"\x00\x02\x02\x44\x01\x00;", f"gif {w}x{h}"
    if ext == ".bmp":
        w, h = min(w, 2 ** 31 - 1), min(h, 2 ** 31 - 1)
        return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, 0, 0,
                                                                             0, 0, 0) + b"\x00" * 16, f"bmp {w}x{h}"
    color = r.choice([0, 2, 6])
    raw = zlib.compress(b"\x00" * r.choice([0, 16, 4096]))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")), f"png {w}x{h}"


def image_bytes(r: Rand, ext: str, mode: str, size: tuple[int, int], value: int = 0) -> tuple[bytes, str]:
    """A real image file of ``mode`` in the format of ``ext`` (the mode converted to one
    the format can hold where Pillow refuses it); returns (bytes, the mode written)."""
    from PIL import Image
    w, h = size
    rng = r.np()
    base = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    base[: max(1, h // 3)] = min(255, 120 + value * 40)
    im = Image.fromarray(base)
    if mode == "I;16":
        im = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
    elif mode in ("I", "F"):
        im = im.convert("L").convert(mode)
    elif mode != "RGB":
        try:
            im = im.convert(mode)
        except ValueError:
            pass
    fmt = FORMATS.get(ext.lower(), "PNG")
    animated = fmt == "GIF" and r.chance(0.2)
    for convert in (None, "RGB", "L"):
        buf = io.BytesIO()
        try:
            attempt = im.convert(convert) if convert else im
            kw = {"save_all": True, "append_images": [attempt.copy()]} if animated else {}
            attempt.save(buf, fmt, **kw)
            return buf.getvalue(), attempt.mode
        except (OSError, ValueError, KeyError, TypeError):
            continue
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG")
    return buf.getvalue(), "RGB(png)"


NAMES = {"plain": 30, "space": 2, "newline": 1, "dot": 1, "non-utf8": 2, "unicode": 1, "long": 1, "upper": 2,
         "double-ext": 1, "no-ext": 1, "only-ext": 1, "dash": 1, "quote": 1}


def odd_name(r: Rand, i: int, ext: str) -> str:
    """A file or folder name: mostly plain, sometimes with spaces, newlines, a leading
    dot, bytes that are not UTF-8 (as surrogate escapes), a very long stem..."""
    how = r.weighted(NAMES)
    stem = f"{i:03d}"
    return {"plain": stem + ext, "space": f"im age {stem}{ext}", "newline": f"a\nb{stem}{ext}",
            "dot": f".{stem}{ext}", "non-utf8": os.fsdecode(b"\xff\xfe" + stem.encode()) + ext,
            "unicode": f"\u00e9\u4e2d{stem}\U0001f600{ext}", "long": "x" * 200 + stem + ext,
            "upper": stem + ext.upper(), "double-ext": f"{stem}{ext}.txt", "no-ext": stem, "only-ext": ext,
            "dash": f"-{stem}{ext}", "quote": f"'\"{stem}{ext}"}[how]
