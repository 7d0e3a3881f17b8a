"""The data rules for arrays (budgetnas/data/arrays.py): one scaling policy per dtype,
labels and classes that fit the images, a given validation split, the same one-line
errors through an .npz and budgetnas.search, and arbitrary arrays that either pass or
are refused with a SourceError, never another exception."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_arrays import ARRAYS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from owndata import images

from budgetnas.config import ConfigError, DataConfig
from budgetnas.data.arrays import SourceError, from_arrays
from budgetnas.data.load import load_arrays, load_data
from budgetnas.data.sources.npz import from_npz


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path / "cache"))


def arrays(x, y, **more):
    return from_arrays({"x_train": x, "y_train": y, **more}, "arrays", None, None)


# --- one scaling policy ----------------------------------------------------------------------
def test_uint16_is_16_bit_scaled_to_the_uint8_pixels(tmp_path):
    """16-bit pixels (the uint8 image x 257, plus noise under half a step) give the uint8
    pixels exactly, through from_arrays and an .npz; clipping at 255 would make them white."""
    x, y = images(40, 2, (16, 16, 3))
    noise = np.random.default_rng(0).integers(-128, 129, x.shape)
    x16 = np.clip(x.astype(np.int64) * 257 + noise, 0, 65535).astype(np.uint16)
    assert np.array_equal(arrays(x16, y).x_train, arrays(x, y).x_train)
    np.savez(tmp_path / "a.npz", x_train=x16, y_train=y)
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y)
    a, b = from_npz(tmp_path / "a.npz"), from_npz(tmp_path / "b.npz")
    assert np.array_equal(a.x_train, b.x_train) and a.x_train.max() == 230


def test_floats_0_1_and_0_255_give_the_uint8_pixels_and_strays_are_refused():
    x, y = images(40, 2, (16, 16))
    want = arrays(x, y).x_train
    for f in (x.astype(np.float32) / 255, x.astype(np.float64), x.astype(np.float16) / np.float16(255)):
        assert np.array_equal(arrays(f, y).x_train, want), f.dtype
    stray = x.astype(np.float32) / 255
    stray[0, 0, 0] = 1.02  # one pixel: it must not switch off the x255 scaling of all the others
    with pytest.raises(SourceError, match=r"x_train is ambiguous: 99\.9% of its values are in \[0, 1\] but some go "
                                          r"up to 1\.02: clip 0-1 pixels to \[0, 1\]"):
        arrays(stray, y)
    assert np.array_equal(arrays(np.clip(stray, 0, 1), y).x_train[1:], want[1:])
    with pytest.raises(SourceError, match="it looks already normalised"):
        arrays(x.astype(np.float32) / 255 - 0.5, y)


def test_other_integers_bool_and_every_split_on_one_scale():
    x, y = images(40, 2, (16, 16))
    assert np.array_equal(arrays(x.astype(np.int64), y).x_train, arrays(x, y).x_train)
    assert set(np.unique(arrays(x > 100, y).x_train)) == {0, 255}  # bool: black and white
    with pytest.raises(SourceError, match="x_train of dtype int32 holds values 0..23000: integer pixels must be"):
        arrays(x.astype(np.int32) * 100, y)
    with pytest.raises(SourceError, match="x_val holds floats in 0-1 but x_train 0-255 pixels"):
        arrays(x, y, x_val=x[:8].astype(np.float32) / 255, y_val=y[:8])
    a = arrays(x.astype(np.float32), y, x_test=x[:8], y_test=y[:8])  # floats 0-255 and uint8: one scale
    assert np.array_equal(a.x_test, a.x_train[:8])


# --- labels and classes ------------------------------------------------------------------------
def test_a_uint64_label_beyond_int64_is_refused_not_wrapped():
    x, y = images(40, 2, (16, 16))
    huge = y.astype(np.uint64)
    huge[0] = 2 ** 64 - 1  # cast to int64 this is -1
    with pytest.raises(SourceError, match="y_train label 18446744073709551615 is out of range"):
        arrays(x, huge)


def test_a_stray_label_or_mostly_unused_classes_are_refused():
    x, y = images(40, 2, (16, 16))
    far = y.copy()
    far[7] = 10 ** 7
    with pytest.raises(SourceError, match=r"training label 10000000 makes 10,000,001 classes for 40 training images "
                                          r"\(3 distinct labels\): renumber the labels 0..K-1"):
        arrays(x, far)
    sparse = y * 3  # labels 0 and 3: 2 of 4 classes used, allowed (half)
    assert arrays(x, sparse).classes == ("0", "1", "2", "3")
    with pytest.raises(SourceError, match=r"only 2 of the 5 classes \(0..4\) have a training image"):
        arrays(x, y * 4)
    with pytest.raises(SourceError, match="only 2 of the 5 classes"):
        arrays(x, y, classes=np.array(list("abcde")))
    assert arrays(x, y, classes=np.array([b"cat", b"dog"])).classes == ("cat", "dog")  # bytes read as UTF-8


# --- a given validation split ---------------------------------------------------------------
def test_x_val_in_an_npz_is_the_validation_split(tmp_path):
    x, y = images(200, 2, (16, 16))
    np.savez(tmp_path / "v.npz", x_train=x[:150], y_train=y[:150], x_val=x[150:], y_val=y[150:])
    data = load_data(DataConfig(dataset=str(tmp_path / "v.npz"), val_size=None))
    assert data.info["val_size"] == 50 and data.info["val_from"] == "given"
    assert data.info["images"] == 200 and data.info["train_size"] + data.info["test_size"] == 150
    mean, std = data.info["mean"][0], data.info["std"][0]
    assert torch.allclose(data.val_x, (torch.from_numpy(x[150:, None]).float() / 255 - mean) / std, atol=1e-5)
    with pytest.raises(ConfigError, match=r"v.npz: it has its own validation split \(50 images\): drop --val-size"):
        load_data(DataConfig(dataset=str(tmp_path / "v.npz"), val_size=100))
    first, again = (load_arrays(str(tmp_path / "v.npz"), cache=tmp_path / "c") for _ in range(2))
    assert again.cached and np.array_equal(again.x_val, first.x_val) and np.array_equal(again.y_val, y[150:])


# --- the Python API gives the same errors ---------------------------------------------------
@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_budgetnas_search_refuses_the_same_arrays_in_the_same_words(case, tmp_path, monkeypatch):
    import budgetnas
    monkeypatch.chdir(tmp_path)
    given, text = ARRAYS[case]
    given = dict(given)
    with pytest.raises(ConfigError) as e:
        budgetnas.search(given.pop("x_train"), given.pop("y_train"), trials=1, **given)
    message = str(e.value)
    assert message.startswith("arrays: ") and text in message and "\n" not in message, message
    assert not list(tmp_path.iterdir())  # refused before anything was saved


def test_budgetnas_search_refuses_val_size_with_a_given_split(tmp_path, monkeypatch):
    import budgetnas
    monkeypatch.chdir(tmp_path)
    x, y = images(40, 2, (16, 16))
    with pytest.raises(ConfigError, match=r"arrays: it has its own validation split \(8 images\): drop val_size"):
        budgetnas.search(x, y, x_val=x[:8], y_val=y[:8], val_size=100, trials=1)
    assert not list(tmp_path.iterdir())


# --- any arrays: valid Arrays or a SourceError ----------------------------------------------
# dtypes a rule takes (drawn three times as often) and dtypes refused
PIXELS = [np.uint8, np.uint16, np.int8, np.int32, np.uint64, np.bool_, np.float16, np.float32, np.float64] * 3 + \
    [np.complex64, np.dtype("<U2"), np.dtype([("a", "u1")])]
LABELS = [np.int64, np.uint8, np.uint64, np.int8, np.bool_] * 3 + [np.float32, np.dtype("<U2")]
SIDE = st.sampled_from([8, 9, 12, 16, 8, 12, 0, 1, 5])


@st.composite
def values(draw, dtype: np.dtype, shape: tuple[int, ...], top: int = 255):
    """An array of ``dtype`` and ``shape`` whose values come from one drawn range (mostly
    a plausible one: 0..top, 0-1 floats; else anything the dtype holds, NaN included)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "UV":
        return np.zeros(shape, dtype)
    if dtype.kind == "b":
        return draw(hnp.arrays(dtype, shape))
    if dtype.kind == "c":
        return draw(hnp.arrays(dtype, shape, elements=st.complex_numbers(max_magnitude=10, width=64)))
    width = min(64, 8 * dtype.itemsize)
    if dtype.kind == "f":
        lo, hi = draw(st.sampled_from([(0, 1), (0, 1), (0, top), (-1, 1.0625), (0, 300)]))
        elements = st.floats(lo, hi, width=width) | st.just(np.nan) if draw(st.booleans()) and draw(st.booleans()) \
            else st.floats(lo, hi, width=width)
    else:
        info = np.iinfo(dtype)
        top = 65535 if dtype == np.uint16 else min(top, info.max)
        lo, hi = draw(st.sampled_from([(0, top), (0, top), (int(info.min), int(info.max)), (0, min(1, info.max))]))
        elements = st.integers(lo, hi)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def user_arrays(draw):
    """Arrays as a careless or hostile user hands them over: mostly image stacks of every
    layout, dtype and range with labels of every dtype, sometimes any shape at all."""
    n, h, w = draw(st.sampled_from([12, 8, 5, 12, 2, 1, 0])), draw(SIDE), draw(SIDE)
    c = draw(st.sampled_from([1, 3, 1, 3, 4, 2, 0]))
    shape = draw(st.sampled_from([(n, h, w), (n, h, w, c), (n, c, h, w)] * 3 + [None])) or \
        draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=12))
    x = draw(values(draw(st.sampled_from(PIXELS)), shape))
    n = len(x) if x.ndim else 0
    k = draw(st.sampled_from([2, 3, 4, 1]))
    y_shape = draw(st.sampled_from([(n,)] * 4 + [(n, 1), (max(n - 1, 0),), (n, 2), ()]))
    y = draw(values(draw(st.sampled_from(LABELS)), y_shape, k - 1))
    if draw(st.sampled_from([True, True, False])) and y.dtype.kind in "iu":  # every class used
        y = (np.arange(y.size) % k).astype(y.dtype).reshape(y.shape)
    out = {"x_train": x, "y_train": y}
    if draw(st.booleans()):
        out["classes"] = draw(st.sampled_from([np.array(["a", "b"]), np.array(["a", "a"]), np.array("a"),
                                               np.arange(3), np.array([b"x", b"y", b"z"]), np.array(["", "b"])]))
    if draw(st.booleans()) and x.ndim and out["y_train"].ndim:
        out["x_test"], out["y_test"] = x[:4], out["y_train"][:4]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_arrays(), st.sampled_from([None, 8]), st.sampled_from([None, 1, 3]))
def test_any_arrays_give_valid_arrays_or_a_source_error(given_arrays, size, channels):
    try:
        a = from_arrays(given_arrays, "arrays", size, channels)
    except SourceError as e:
        assert str(e).startswith("arrays: ") and "\n" not in str(e)
        return
    assert a.x_train.dtype == np.uint8 and a.x_train.ndim == 4 and a.y_train.dtype == np.int64
    assert len(a.x_train) == len(a.y_train) > 0 and a.x_train.shape[2] == a.x_train.shape[3] >= 8
    assert len(a.classes) >= 2 and 0 <= a.y_train.min() and a.y_train.max() < len(a.classes)
    assert a.x_train.shape[1] in (1, 3) and (channels is None or a.x_train.shape[1] == channels)
