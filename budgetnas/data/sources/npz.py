"""An ``.npz`` with ``x_train`` and ``y_train``, optionally ``x_test``/``y_test``,
``x_val``/``y_val`` (a validation split, used as given) and ``classes``: nothing else,
under the data rules of data/arrays.py. The file is checked before any array is read:
a zip (not empty, not truncated) of those keys only (a near miss is named), each a .npy
without Python objects, and the memory all splits need, from the .npy headers."""
from __future__ import annotations

import difflib
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ..arrays import Arrays, SourceError, from_arrays, structure
from . import Source

KEYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val", "classes")
SAVE = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member; an empty zip
# what reading a damaged zip or .npy raises (a SourceError is a ValueError: never caught as one)
DAMAGED = (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)
SAVE_AS = {"x": "the images as one numeric array (e.g. np.stack(images).astype(np.uint8))",
           "y": "the labels as integers", "c": "the names as strings (np.array(names, dtype=str))"}


def _line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:120]


def _members(path: Path) -> dict[str, str]:
    """{key: member name} of a zip file, SourceError where the file is no zip."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise SourceError(f"{path}: cannot read it ({e.strerror or _line(e)}): check it and its permissions") from None
    if not head:
        raise SourceError(f"{path}: empty file (0 bytes), not an .npz: {SAVE}")
    if head.startswith(b"\x93NUMPY"):
        raise SourceError(f"{path}: one .npy array, not an .npz of named arrays: {SAVE}")
    if head[:4] not in ZIP_MAGIC:
        raise SourceError(f"{path}: not an .npz (zip) file: {SAVE}")
    try:
        with zipfile.ZipFile(path) as z:
            return {name.removesuffix(".npy"): name for name in z.namelist()}
    except DAMAGED as e:
        raise SourceError(f"{path}: a truncated or damaged .npz (zip) file ({_line(e)}): {SAVE}") from None


def _keys(path: Path, keys: list[str]) -> None:
    """Only the known keys, x_train and y_train among them; a near miss named."""
    unknown = [k for k in keys if k not in KEYS]
    missing = [k for k in ("x_train", "y_train") if k not in keys]
    if not (unknown or missing):
        return
    near = {k: m[0] for k in unknown if (m := difflib.get_close_matches(k.lower(), KEYS, 1, 0.6))}
    said = f"no {' or '.join(missing)} in it" if missing else f"unknown key(s) {', '.join(map(repr, unknown))} in it"
    hint = "; did you mean " + ", ".join(f"{v} for {k!r}" for k, v in near.items()) + "?" if near else ""
    raise SourceError(f"{path}: {said} (keys: {', '.join(sorted(keys)) or 'none'}{hint}): an .npz holds only "
                      f"{', '.join(KEYS)}: {SAVE}")


def _headers(path: Path, members: dict[str, str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} from each member's .npy header, no array data read."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for key, name in members.items():
            try:
                with z.open(name) as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
            except DAMAGED as e:
                raise SourceError(f"{path}: {key} in it is not a readable .npy array ({_line(e)}): {SAVE}") from None
            if dtype.hasobject:
                raise SourceError(f"{path}: {key} in it holds Python objects (a pickled array), which budgetnas "
                                  f"does not load: save {SAVE_AS[key[0]]}")
            out[key] = (shape, dtype)
    return out


def from_npz(path: Path, size: int | None = None, channels: int | None = None) -> Arrays:
    if not path.is_file():
        raise SourceError(f"{path}: no such .npz file: pass an .npz with x_train and y_train")
    members = _members(path)
    _keys(path, list(members))
    try:
        meta = _headers(path, members)
    except DAMAGED as e:
        if isinstance(e, SourceError):
            raise
        raise SourceError(f"{path}: a truncated or damaged .npz (zip) file ({_line(e)}): {SAVE}") from None
    stored = sum(int(np.prod(s)) * d.itemsize for s, d in meta.values())
    structure({k: v for k, v in meta.items() if k != "classes"}, str(path), size, channels, stored)
    arr, key = {}, None
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in members:
                arr[key] = z[key]
    except DAMAGED as e:
        raise SourceError(f"{path}: {key} in it cannot be read ({_line(e)}): the file is damaged: {SAVE}") from None
    return from_arrays(arr, str(path), size, channels)


class Npz(Source):
    name = "npz"
    help = "an .npz file with x_train and y_train"
    listed = 2
    priority = 20
    local = True

    def matches(self, dataset: str) -> bool:
        return dataset.lower().endswith(".npz")

    def exists(self, dataset: str) -> bool:
        return Path(dataset).is_file()

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        return from_npz(Path(cfg.dataset), cfg.image_size, cfg.channels), cfg.dataset

    def listing(self, dataset: str) -> bytes:
        st = Path(dataset).stat()
        return f"{st.st_size}:{st.st_mtime_ns}".encode()
