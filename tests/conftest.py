"""Shared fixtures: real MNIST files (copied once per session from the offline source
this machine has, verified by md5) and a small real subset resident in memory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("BUDGETNAS_OFFLINE", "1")  # tests never wait on the network


@pytest.fixture(scope="session", autouse=True)
def decoded_cache(tmp_path_factory):
    """Own data decoded by tests (and the CLI processes they start) is cached in a
    temporary folder, never in the user's cache."""
    os.environ["BUDGETNAS_CACHE"] = str(tmp_path_factory.mktemp("decoded"))


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """The four MNIST files, gzipped as the mirrors serve them, whatever form the local
    copy has (the npm package's files are raw idx files): tests that damage a file
    name the .gz."""
    import gzip

    from budgetnas.data.sources.idx import FILES, REGISTRY, ensure_files
    d = tmp_path_factory.mktemp("mnist")
    for stem, raw in ensure_files(REGISTRY["mnist"], d).items():
        if not (d / f"{stem}.gz").exists():
            (d / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
            (d / stem).unlink()
    assert sorted(p.name for p in d.iterdir()) == sorted(f"{stem}.gz" for stem in FILES)
    return d


@pytest.fixture(scope="session")
def small_data(mnist_dir):
    """2,000 real training images, 1,000 validation, the full 10,000 test set."""
    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    return load_data(DataConfig(data_dir=str(mnist_dir), val_size=1000, train_limit=2000))


# --- a real study (leaderboard, report, dashboard tests) ------------------------------------
@pytest.fixture(scope="session")
def real_study(mnist_dir, tmp_path_factory):
    """A real SQLite study made by a real 'budgetnas search' (budget 5,000): 3 trained
    trials on 1,000 training images (small budget and data keep it to seconds). Returns
    (study name, storage URL). Tests must not modify it: copy the .db file first."""
    from budgetnas.cli import main
    d = tmp_path_factory.mktemp("study")
    url = f"sqlite:///{d}/s.db"
    rc = main(["search", "--budget", "5000", "--trials", "3", "--train-limit", "1000", "--val-size", "500",
               "--data-dir", str(mnist_dir), "--study", "t", "--storage", url, "--no-progress", "--space", "plain"])
    assert rc == 0
    return "t", url


def copy_sqlite(src: str | Path, dst: str | Path) -> None:
    """Copy an SQLite storage that may still be open in this process: it runs in WAL
    mode, so the main file alone can miss recent commits; SQLite's backup API cannot."""
    import sqlite3
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
