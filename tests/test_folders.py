"""Folder datasets (issue 24): the split layouts, every image mode's 8-bit rule, links
(loops end, each real folder read once), any file-name bytes, unreadable folders, and the
checks of every file's header (memory guard, Pillow's bomb limit) before any decode."""
from __future__ import annotations

import os

import numpy as np
import pytest
from bad_folders import png_header
from owndata import images, write_folder
from PIL import Image

from budgetnas.config import ConfigError, DataConfig
from budgetnas.data.load import load_arrays, load_data
from budgetnas.data.sources.folder import Folder, from_folder


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path / "cache"))


def cfg(path, **kw) -> DataConfig:
    return DataConfig(dataset=str(path), val_size=kw.pop("val_size", None), **kw)


def raw(path, name: bytes):
    """``path`` / ``name`` where the name may hold any bytes."""
    return os.fsdecode(os.fsencode(path) + b"/" + name)


# --- layouts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("val", ["val", "valid", "Validation"])
def test_train_and_val_folders_give_the_validation_split(tmp_path, val):
    x, y = images(60, 3, (16, 16))
    write_folder(tmp_path / "d" / "train", x[:40], y[:40], ["ant", "bee", "cow"])
    write_folder(tmp_path / "d" / val, x[40:52], y[40:52], ["ant", "bee", "cow"])
    keep = y[52:] < 2  # a class of train/ may be missing from test/
    write_folder(tmp_path / "d" / "test", x[52:][keep], y[52:][keep], ["ant", "bee"])
    data = load_data(cfg(tmp_path / "d"))
    assert data.info["classes"] == ["ant", "bee", "cow"]  # never 'train', 'val', 'test'
    assert data.info["val_from"] == "given" and data.info["val_size"] == 12 and data.info["train_size"] == 40
    assert data.info["test_from"] == "given" and data.info["test_size"] == int(keep.sum())
    a = load_arrays(str(tmp_path / "d"))
    assert np.array_equal(a.y_val, y[40:52][np.argsort(y[40:52], kind="stable")])


def test_train_folder_alone_is_a_split_layout(tmp_path):
    x, y = images(40, 2, (16, 16))
    write_folder(tmp_path / "d" / "train", x, y, ["cat", "dog"])
    data = load_data(cfg(tmp_path / "d", split_seed=2))
    assert data.info["classes"] == ["cat", "dog"] and data.info["val_from"].startswith("drawn")
    assert data.info["train_size"] + data.info["val_size"] + data.info["test_size"] == 40


@pytest.mark.parametrize("case, message", [
    ("extra", "extra/dog: holds images beside the split folders train/, val/: ambiguous layout"),
    ("valclass", "val: class folder 'horse' is not in"),
    ("testclass", "test: class folder 'horse' is not in"),
    ("notrain", "split folders val/ but no train/"),
    ("twoval", "val/ and validation/ are both validation folders: keep one"),
])
def test_split_layouts_that_are_refused(tmp_path, case, message):
    x, y = images(20, 2, (16, 16))
    root = tmp_path / case
    write_folder(root / ("val" if case == "notrain" else "train"), x, y)
    extra = {"extra": ("dog", None), "valclass": ("val", ["class0", "horse"]), "testclass": ("test", ["horse", "x"]),
             "notrain": ("val", None), "twoval": ("validation", None)}[case]
    write_folder(root / extra[0], x[:4], y[:4], extra[1])
    if case in ("extra", "twoval"):
        write_folder(root / "val", x[:4], y[:4])
    with pytest.raises(ConfigError, match=message):
        from_folder(root)


def test_empty_class_folders_and_loose_files_are_ignored_with_a_note(tmp_path):
    x, y = images(20, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y)
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not an image, ignored")
    Image.fromarray(x[0]).save(root / "loose.png")
    a = from_folder(root)
    assert a.classes == ("class0", "class1") and len(a.y_train) == 20
    assert any("without images of their own ignored: empty" in n for n in a.notes)
    assert any("1 image files directly in it are in no class folder" in n for n in a.notes)


# --- modes -------------------------------------------------------------------------------------
def test_16_bit_png_equals_the_8_bit_image(tmp_path):
    x, y = images(20, 2, (16, 16))
    eight = from_folder(write_folder(tmp_path / "8", x, y))
    wide = x.astype(np.uint16) * 257  # 8-bit values stored as 16-bit: exact
    noisy = np.clip(wide.astype(np.int32) + np.random.default_rng(0).integers(-128, 128, wide.shape), 0, 65535)
    for name, arr in (("16", wide), ("16n", noisy.astype(np.uint16))):
        root = tmp_path / name
        for i, (img, c) in enumerate(zip(arr, y)):
            (root / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / f"c{c}" / f"{i:05d}.png")
        assert Image.open(root / "c0" / "00000.png").mode == "I;16"
        got = from_folder(root)
        assert got.x_train.shape == eight.x_train.shape
        if name == "16":
            assert np.array_equal(got.x_train, eight.x_train)
        else:
            assert np.abs(got.x_train.astype(int) - eight.x_train).max() <= 1


def test_every_mode_gets_its_rule(tmp_path):
    g = images(1, 1, (16, 16))[0][0]
    rgb = np.stack([g, 255 - g, g // 2], -1)
    root = tmp_path / "gray"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    Image.fromarray(g).save(root / "a" / "l.png")
    Image.merge("LA", [Image.fromarray(g), Image.fromarray(np.full_like(g, 7))]).save(root / "a" / "la.png")
    Image.fromarray(g.astype(np.int32) * 257).save(root / "a" / "i.tif")
    Image.fromarray(g.astype(np.float32) / 255).save(root / "b" / "f.tif")
    Image.fromarray(g > 127).save(root / "b" / "one.png")
    a = from_folder(root)
    assert a.x_train.shape == (5, 1, 16, 16)  # gray modes: 1 channel
    for i in range(4):  # a/i.tif, a/l.png, a/la.png (alpha dropped), b/f.tif
        assert np.array_equal(a.x_train[i, 0], g), i
    assert set(np.unique(a.x_train[4])) <= {0, 255}

    root = tmp_path / "color"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full_like(g, 9)])).save(root / "a" / "rgba.png")
    p = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
    p.save(root / "b" / "p.png", transparency=0)
    Image.fromarray(rgb).convert("CMYK").save(root / "b" / "cmyk.tif")
    a = from_folder(root)
    assert a.x_train.shape == (4, 3, 16, 16)
    assert np.array_equal(a.x_train[0], rgb.transpose(2, 0, 1)) and np.array_equal(a.x_train[1], a.x_train[0])
    assert np.array_equal(a.x_train[3], np.asarray(p.convert("RGB")).transpose(2, 0, 1))  # palette colours kept


@pytest.mark.parametrize("img, message", [
    (np.full((16, 16), 2.5, np.float32), "a 32-bit float image with values 2.5 to 2.5, outside 0-1"),
    (np.full((16, 16), -3, np.int32), "a 32-bit integer image with values -3 to -3, outside 0-65535"),
])
def test_wide_values_out_of_range_are_refused(tmp_path, img, message):
    root = write_folder(tmp_path / "d", *images(20, 2, (16, 16)))
    Image.fromarray(img).save(root / "class1" / "wide.tif")
    with pytest.raises(ConfigError, match=f"class1/wide.tif: {message}"):
        from_folder(root)


# --- links, names, permissions -----------------------------------------------------------------
def test_link_loops_end_and_each_real_folder_is_read_once(tmp_path):
    x, y = images(20, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y, ["cat", "dog"])
    os.symlink("..", root / "cat" / "up")  # a loop through the root
    os.symlink(".", root / "dog" / "self")  # a loop onto itself
    os.symlink(root / "cat", root / "dog" / "alias")  # another class's folder: adds nothing
    os.symlink("cat", root / "zebra")  # a class folder that is a link to a class folder
    outside = write_folder(tmp_path / "elsewhere", x[:3], y[:3] * 0, ["more"])
    os.symlink(outside / "more", root / "cat" / "more")  # a real folder elsewhere: read
    a = from_folder(root)
    assert a.classes == ("cat", "dog") and np.bincount(a.y_train).tolist() == [13, 10]
    assert any("zebra" in n for n in a.notes)
    assert len(Folder().listing(str(root))) == 32  # the cache listing walks the same way


def test_broken_links_are_refused(tmp_path):
    root = write_folder(tmp_path / "d", *images(20, 2, (16, 16)))
    os.symlink("nowhere.png", root / "class0" / "gone.png")
    with pytest.raises(ConfigError, match="class0/gone.png: a broken link .* remove the link or restore its target"):
        from_folder(root)


def test_file_names_with_any_bytes(tmp_path):
    x, y = images(20, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y, [raw("", b"caf\xe9")[1:], "plain"])
    Image.fromarray(x[0]).save(raw(root / "plain", b"\xff\xfe.png"))
    a = load_arrays(str(root), cache=tmp_path / "c")  # through the cache listing too
    assert a.classes == ("caf\\xe9", "plain") and len(a.y_train) == 21
    with open(raw(root / "plain", b"z\xff\nname.png"), "wb") as f:
        f.write(b"not an image")
    with pytest.raises(ConfigError) as e:
        from_folder(root)
    assert str(e.value).endswith("plain/z\\xff\\nname.png: not a readable image (not an image format Pillow knows): "
                                 "remove or replace the file")
    assert str(e.value).isprintable() and str(e.value).encode("utf-8")


def test_an_unreadable_folder_is_named(tmp_path, monkeypatch):
    """chmod 000 where that stops this user (tests/bad_folders.py runs the real case
    then); as root, which reads anyway, scandir is made to fail the way it would."""
    root = write_folder(tmp_path / "d", *images(20, 2, (16, 16)))
    locked = root / "class1" / "sub"
    locked.mkdir()
    real = os.scandir

    def scandir(path):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ConfigError, match=f"cannot read {locked} \\(permission denied\\): give read access"):
        from_folder(root)


# --- headers before decoding ---------------------------------------------------------------------
def test_memory_guard_counts_every_file_not_the_first(tmp_path, monkeypatch):
    x, y = images(2, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y)  # the first file is 16x16
    for i in range(5):
        Image.new("L", (600, 600), 40 * i).save(root / f"class{i % 2}" / f"big{i}.png")
    monkeypatch.setenv("BUDGETNAS_MAX_MEMORY", "1M")  # the first file's size x 7 would fit
    with pytest.raises(ConfigError, match=r"7 images of 1x600x600 need about"):
        from_folder(root)
    assert from_folder(root, size=16).x_train.shape == (7, 1, 16, 16)  # at --image-size 16 they fit


@pytest.mark.parametrize("name, w, h, pixels", [
    ("0.png", 20000, 20000, "400,000,000"),  # first, over twice the limit: Pillow raises
    ("zz.png", 10000, 9000, "10000x9000 = 90,000,000"),  # later, over it: Pillow only warns
])
def test_a_decompression_bomb_is_named_before_any_decode(tmp_path, monkeypatch, name, w, h, pixels):
    root = write_folder(tmp_path / "d", *images(20, 2, (16, 16)))
    (root / "class0" / name).write_bytes(png_header(w, h))
    import budgetnas.data.sources.folder as folder
    decoded = []
    monkeypatch.setattr(folder, "decode", lambda *a: decoded.append(a))
    with pytest.raises(ConfigError, match=f"class0/{name}: an image of {pixels} pixels, over Pillow's limit of "
                                          "89,478,485 \\(a decompression bomb\\?\\): remove it or downscale it"):
        from_folder(root)
    assert not decoded
