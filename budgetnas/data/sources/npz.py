"""An ``.npz`` with ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test`` (and
``classes``): uint8 or float images (float in [0, 1] is scaled by 255), N x H x W,
N x H x W x C or N x C x H x W; integer labels 0..K-1 (checks: data/arrays.py)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ..arrays import Arrays, SourceError, check_memory, from_arrays
from . import Source


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
