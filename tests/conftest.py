"""Shared fixtures: real MNIST files (copied once per session from the offline source
this machine has, verified by md5) and a small real subset resident in memory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("BUDGETNAS_OFFLINE", "1")  # tests never wait on the network


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    from budgetnas.data import REGISTRY, ensure_files
    d = tmp_path_factory.mktemp("mnist")
    ensure_files(REGISTRY["mnist"], d)
    return d


@pytest.fixture(scope="session")
def small_data(mnist_dir):
    """2,000 real training images, 1,000 validation, the full 10,000 test set."""
    from budgetnas.config import DataConfig
    from budgetnas.data import load_data
    return load_data(DataConfig(data_dir=str(mnist_dir), val_size=1000, train_limit=2000))
