"""Your own data (issue 15): class folders written with Pillow, .npz files in each
layout, torchvision where it imports; the data decides the network's input; identity,
cache and the CLI end to end on a small RGB 32x32 folder dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from owndata import images, write_folder
from procs import budgetnas, cli_env, load_study, run

from budgetnas.config import ConfigError, DataConfig
from budgetnas.data.augment import augment
from budgetnas.data.load import load_data
from budgetnas.study.schedule import trained_count
from budgetnas.data.sources.folder import from_folder
from budgetnas.data.sources.npz import from_npz
from budgetnas.data.load import load_arrays


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path / "cache"))


def cfg(path, **kw) -> DataConfig:
    return DataConfig(dataset=str(path), val_size=kw.pop("val_size", None), **kw)


# --- sources ---------------------------------------------------------------------------------
def test_gray_folder_of_odd_size_holds_out_a_seeded_stratified_test_split(tmp_path):
    x, y = images(150, 3, (20, 20))
    write_folder(tmp_path / "d", x, y, ["cat", "dog", "eel"])
    data = load_data(cfg(tmp_path / "d", split_seed=3))
    assert data.shape == (1, 20, 20) and data.info["classes"] == ["cat", "dog", "eel"]
    assert data.info["test_size"] == 30 and torch.bincount(data.test_y).tolist() == [10, 10, 10]  # 20% of each class
    assert any("held out as the test set" in n for n in data.info["notes"])
    again, other = load_data(cfg(tmp_path / "d", split_seed=3)), load_data(cfg(tmp_path / "d", split_seed=4))
    assert torch.equal(again.test_x, data.test_x) and not torch.equal(other.test_x, data.test_x)
    assert data.info["train_size"] + data.info["val_size"] == 120


def test_train_and_test_subfolders_and_jpeg(tmp_path):
    x, y = images(60, 2, (24, 24, 3))
    write_folder(tmp_path / "d" / "train", x[:40], y[:40], ["a", "b"], ext=".jpg")
    write_folder(tmp_path / "d" / "test", x[40:], y[40:], ["a", "b"], ext=".bmp")
    data = load_data(cfg(tmp_path / "d"))
    assert data.shape == (3, 24, 24) and data.info["test_size"] == 20 and data.info["test_from"] == "given"


def test_mixed_sizes_are_resized_once_and_flags_convert(tmp_path):
    from PIL import Image
    x, y = images(40, 2, (16, 16, 3))
    root = write_folder(tmp_path / "d", x, y)
    Image.fromarray(x[0]).resize((20, 12)).save(root / "class0" / "odd.png")
    a = from_folder(root)
    assert a.x_train.shape[1:] == (3, 16, 16) and len(a.notes) == 1 and "resized to 16x16" in a.notes[0]
    b = from_folder(root, size=32, channels=1)
    assert b.x_train.shape[1:] == (1, 32, 32) and not b.notes


def test_corrupt_image_is_named(tmp_path):
    x, y = images(20, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y)
    (root / "class1" / "bad.png").write_bytes(b"garbage" * 10)
    with pytest.raises(ConfigError, match=r"class1/bad.png: not a readable image"):
        from_folder(root)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw", "float01"])
def test_npz_layouts_give_the_pixels_of_the_png_folder(tmp_path, layout):
    """Same pixels, same labels: every .npz layout and the PNG folder decode to the same
    arrays and the same fingerprint."""
    gray = layout == "nhw"
    x, y = images(40, 2, (16, 16) if gray else (16, 16, 3))
    folder = write_folder(tmp_path / "d", x, y, ["class0", "class1"])
    stored = {"nhw": x, "nhwc": x, "nchw": x.transpose(0, 3, 1, 2) if not gray else x,
              "float01": x.astype(np.float32) / 255}[layout]
    np.savez(tmp_path / "a.npz", x_train=stored, y_train=y, classes=np.array(["class0", "class1"]))
    a, b = load_arrays(str(tmp_path / "a.npz")), load_arrays(str(folder))
    assert a.x_train.shape == (40, 1 if gray else 3, 16, 16)
    assert np.array_equal(np.sort(a.x_train.reshape(40, -1), 0), np.sort(b.x_train.reshape(40, -1), 0))
    order = np.lexsort(a.x_train.reshape(40, -1).T), np.lexsort(b.x_train.reshape(40, -1).T)
    assert np.array_equal(a.y_train[order[0]], b.y_train[order[1]])


def test_npz_fingerprint_is_over_content_not_file(tmp_path):
    x, y = images(40, 2, (16, 16))
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    np.savez_compressed(tmp_path / "b.npz", x_train=x[:, None], y_train=y)  # another layout and file
    np.savez(tmp_path / "c.npz", x_train=x, y_train=1 - y)
    fa, fb, fc = (load_arrays(str(tmp_path / f"{k}.npz")).fingerprint for k in "abc")
    assert fa == fb != fc


def test_npz_errors(tmp_path):
    x, y = images(40, 2, (16, 16))
    np.savez(tmp_path / "k.npz", x=x, y=y)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y[:5])
    np.savez(tmp_path / "f.npz", x_train=x, y_train=y.astype(float))
    np.savez(tmp_path / "r.npz", x_train=x, y_train=y - 1)
    for name, msg in (("k", "no x_train or y_train"), ("m", "40 images but 5 labels"),
                      ("f", "labels must be integers"), ("r", "label -1 is out of range")):
        with pytest.raises(ConfigError, match=msg):
            from_npz(tmp_path / f"{name}.npz")


def test_cache_is_read_back_and_follows_file_changes(tmp_path):
    x, y = images(40, 2, (16, 16))
    root = write_folder(tmp_path / "d", x, y)
    first = load_arrays(str(root), cache=tmp_path / "c")
    second = load_arrays(str(root), cache=tmp_path / "c")
    assert not first.cached and second.cached and second.fingerprint == first.fingerprint
    assert np.array_equal(second.x_train, first.x_train) and np.array_equal(second.y_train, first.y_train)
    from PIL import Image
    Image.fromarray(x[0] // 2).save(root / "class1" / "new.png")  # a file added
    third = load_arrays(str(root), cache=tmp_path / "c")
    assert not third.cached and third.fingerprint != first.fingerprint and len(third.y_train) == 41
    (root / "class1" / "new.png").rename(root / "class1" / "renamed.png")
    assert not load_arrays(str(root), cache=tmp_path / "c").cached


def test_memory_is_estimated_before_decoding(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d", *images(40, 2, (16, 16)))
    monkeypatch.setenv("BUDGETNAS_MAX_MEMORY", "10K")
    with pytest.raises(ConfigError, match=r"40 images of 1x16x16 need about .* [MG]B of memory"):
        load_arrays(str(root))


def test_torchvision_source_or_its_one_line_error(tmp_path):
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(ConfigError, match="needs torchvision, which does not import here"):
            load_arrays("torchvision:CIFAR10", data_dir=str(tmp_path))
        return
    with pytest.raises(ConfigError, match="torchvision has no dataset 'NoSuchSet'"):
        load_arrays("torchvision:NoSuchSet", data_dir=str(tmp_path))


def test_torchvision_mnist_gives_the_built_in_mnist_and_searches(tmp_path, mnist_dir):
    """Where torchvision imports (not on these CPU machines: it has no CPU build here; the
    GPU check runs it): torchvision:MNIST read offline from a --data-dir laid out as
    torchvision keeps it gives exactly the built-in MNIST arrays (pixels, labels, class
    count), and the CLI searches on it."""
    import gzip
    try:
        import torchvision  # noqa: F401
    except Exception as e:
        pytest.skip(f"torchvision does not import here ({type(e).__name__})")
    from budgetnas.data.sources.idx import parse_idx
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in mnist_dir.iterdir():
        (raw / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    a = load_arrays("torchvision:MNIST", data_dir=str(tmp_path / "tv"))
    idx = {f.name: parse_idx((raw / f.name).read_bytes()) for f in raw.iterdir()}
    assert a.x_train.shape == (60_000, 1, 28, 28) and a.x_train.dtype == np.uint8
    assert np.array_equal(a.x_train[:, 0], idx["train-images-idx3-ubyte"])
    assert np.array_equal(a.y_train, idx["train-labels-idx1-ubyte"])
    assert np.array_equal(a.x_test[:, 0], idx["t10k-images-idx3-ubyte"])
    assert np.array_equal(a.y_test, idx["t10k-labels-idx1-ubyte"])
    assert len(a.classes) == 10 and a.fingerprint
    r = run(budgetnas("search", "--dataset", "torchvision:MNIST", "--data-dir", tmp_path / "tv", "--budget", "5000",
                      "--trials", "2", "--train-limit", "2000", "--study", "tv", "--storage",
                      f"sqlite:///{tmp_path}/s.db", "--no-progress"), cwd=tmp_path,
            env=cli_env(BUDGETNAS_CACHE=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr
    assert "10 classes, images 1x28x28, fingerprint" in r.stdout and "trial    1 complete" in r.stdout


# --- the data decides the network's input --------------------------------------------------
def test_per_channel_mean_std_from_the_training_split(tmp_path):
    x, y = images(100, 2, (16, 16, 3))
    x[..., 0] //= 4  # channels with different statistics
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    data = load_data(cfg(tmp_path / "a.npz", val_size=None))
    mean = torch.tensor(data.info["mean"])
    assert mean[0] < mean[1] - 0.05
    # the normalised training images have mean ~0 and std ~1 per channel
    assert data.train_x.mean((0, 2, 3)).abs().max() < 0.05
    assert (data.train_x.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_space_and_presets_follow_the_data(tmp_path):
    import optuna

    from budgetnas.arch.build import build_model
    from budgetnas.space.presets import PRESETS, fits
    from budgetnas.study.settings import data_space
    from budgetnas.arch import param_count
    from budgetnas.space import sample_spec
    x, y = images(120, 5, (12, 12, 3))
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    data = load_data(cfg(tmp_path / "a.npz"))
    space = data_space(data)
    assert (space.in_channels, space.image_size, space.num_classes, space.hflip) == (3, 12, 5, True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        spec = sample_spec(study.ask(), space, 20_000)
        net = build_model(spec)
        assert net(torch.zeros(2, 3, 12, 12)).shape == (2, 5)
        assert param_count(spec) == sum(p.numel() for p in net.parameters())
    assert not any(fits(p, data.shape, data.num_classes) for p in PRESETS.values())
    assert all(fits(p, (1, 28, 28), 10) for p in PRESETS.values())


def test_hflip_is_searched_only_where_the_data_says(tmp_path):
    import optuna

    from budgetnas.space import Space, sample_recipe
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    flips = {sample_recipe(study.ask(), Space(hflip=True), 1).hflip for _ in range(20)}
    assert flips == {False, True}
    trial = study.ask()
    assert not sample_recipe(trial, Space(), 1).hflip and "hflip" not in trial.params
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4).repeat(50, 1, 1, 1)
    out = augment(x, 0, 0, (0.0, 0.0, 0.0), torch.Generator().manual_seed(0), hflip=True)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert 20 < int(flipped.sum()) < 80 and torch.equal(out[~flipped], x[~flipped])
    digits = DataConfig()
    assert digits.hflip == "auto"


# --- the CLI end to end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    """A generated RGB 32x32 folder dataset with train/ and test/ (4 classes, 300 images)."""
    root = tmp_path_factory.mktemp("rgb")
    x, y = images(300, 4, (32, 32, 3), seed=1)
    names = ["ant", "bee", "cow", "dog"]
    write_folder(root / "data" / "train", x[:240], y[:240], names)
    write_folder(root / "data" / "test", x[240:], y[240:], names)
    return root


def test_cli_end_to_end_on_an_rgb_folder(rgb, tmp_path):
    env = cli_env(BUDGETNAS_CACHE=str(tmp_path / "cache"))
    url = f"sqlite:///{tmp_path}/s.db"
    data = str(rgb / "data")
    study = ("--study", "rgb", "--storage", url)
    r = run(budgetnas("search", "--dataset", data, "--budget", "6000", "--trials", "3", *study, "--no-progress",
                      "--artifacts", tmp_path / "w"), cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "4 classes, images 3x32x32, fingerprint" in r.stdout and "trial    2 complete" in r.stdout
    lb = run(budgetnas("leaderboard", *study, "--format", "json"), cwd=tmp_path, env=env)
    assert lb.returncode == 0 and len(json.loads(lb.stdout)["entries"]) == 3
    ex = run(budgetnas("export", *study, "--out", tmp_path / "ex", "--artifacts", tmp_path / "w"), cwd=tmp_path, env=env)
    assert ex.returncode == 0, ex.stderr
    manifest = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [3, 32, 32] and manifest["spec"]["num_classes"] == 4
    assert manifest["checks"]["model.onnx"] is not None and manifest["checks"]["model.onnx"] <= 1e-4
    d = manifest["data"]
    assert d["classes"] == ["ant", "bee", "cow", "dog"] and d["shape"] == [3, 32, 32] and d["images"] == 300
    assert len(d["mean"]) == 3 and d["fingerprint"]
    # model.py's preprocess takes uint8 N x H x W x C and gives what the network was trained on
    import importlib.util
    spec = importlib.util.spec_from_file_location("exported_model", tmp_path / "ex" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    loaded = load_data(DataConfig(dataset=data, val_size=None))
    from PIL import Image
    first = sorted((rgb / "data" / "test" / "ant").iterdir())[0]
    pixels = torch.from_numpy(np.array(Image.open(first)))[None]
    assert mod.CLASSES == d["classes"]
    assert torch.allclose(mod.preprocess(pixels), loaded.test_x[:1], atol=1e-5)
    # train from the export: on the data its manifest names, without --dataset
    tr = run(budgetnas("train", tmp_path / "ex", "--epochs", "1", "--out", tmp_path / "tr", "--no-progress"),
             cwd=tmp_path, env=env)
    assert tr.returncode == 0, tr.stderr
    trained = json.loads((tmp_path / "tr" / "manifest.json").read_text())
    assert trained["data"]["fingerprint"] == d["fingerprint"] and trained["complete"]
    # a rerun of the study on different data is refused, in one line, nothing stored changed
    other = tmp_path / "other"
    x, y = images(300, 4, (32, 32, 3), seed=2)
    write_folder(other, x, y, ["ant", "bee", "cow", "dog"])
    before = (tmp_path / "s.db").read_bytes()
    bad = run(budgetnas("search", "--dataset", other, "--budget", "6000", "--trials", "3", *study, "--no-progress",
                        "--artifacts", tmp_path / "w"), cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "was made on other data (fingerprint" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert (tmp_path / "s.db").read_bytes() == before
    # a worker on a host whose copy of the data differs is refused too
    wk = run(budgetnas("worker", *study, "--data-dir", other, "--trials", "3", "--artifacts", tmp_path / "w"),
             cwd=tmp_path, env=env)
    assert wk.returncode == 2 and "was made on other data" in wk.stderr
    # and a worker with the same data trains the study's next trial on it
    ok = run(budgetnas("worker", *study, "--data-dir", data, "--trials", "4", "--artifacts", tmp_path / "w",
                       "--no-progress"), cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    stored = load_study(url, "rgb")
    assert trained_count(stored) == 4
    last = max((t for t in stored.trials if t.state.name == "COMPLETE"), key=lambda t: t.number)
    assert last.number >= 3 and last.user_attrs["spec"]["in_channels"] == 3 and last.user_attrs["spec"]["num_classes"] == 4


def test_python_api_search_then_cli_on_the_same_study(tmp_path, monkeypatch):
    import budgetnas as bn
    monkeypatch.chdir(tmp_path)
    x, y = images(240, 3, (16, 16, 3), seed=4)
    result = bn.search(x, y, budget=4000, epochs=1, trials=2, study="nb", classes=["a", "b", "c"])
    assert len(result.leaderboard) == 2 and result.winner.val_acc is not None
    assert result.winner.spec["in_channels"] == 3 and result.winner.spec["num_classes"] == 3
    manifest = result.export(tmp_path / "best")
    assert manifest["complete"] and manifest["data"]["classes"] == ["a", "b", "c"]
    assert manifest["data"]["test_from"].startswith("held out")
    lb = run(budgetnas("leaderboard", "--study", "nb", "--format", "json"), cwd=tmp_path)
    assert lb.returncode == 0, lb.stderr
    assert [e["trial"] for e in json.loads(lb.stdout)["entries"]] == [e.trial for e in result.leaderboard]
    again = bn.search(x, y, budget=4000, epochs=1, trials=2, study="nb", classes=["a", "b", "c"])
    assert [e.trial for e in again.leaderboard] == [e.trial for e in result.leaderboard]  # resumed: nothing to do
    with pytest.raises(ConfigError, match="was made on other data"):
        bn.search(x[::-1].copy(), y, budget=4000, epochs=1, trials=2, study="nb", classes=["a", "b", "c"])


def test_report_records_the_data_identity(tmp_path, monkeypatch):
    import optuna

    from budgetnas.results.report import render
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="r", storage=f"sqlite:///{tmp_path}/r.db")
    study.set_user_attr("settings", {"budget": 5000, "dataset": "/data/photos", "fingerprint": "0123abcd4567ef89",
                                     "images": 450, "shape": [3, 32, 32], "classes": ["ant", "bee"]})
    page = render(study, "sqlite:///r.db")
    assert "0123abcd4567ef89" in page and "3x32x32" in page and "ant, bee" in page
