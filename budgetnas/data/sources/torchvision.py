"""``torchvision:NAME``: a class of torchvision.datasets with a train/test split, where
torchvision imports (an optional extra), through the same checks as an .npz."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from ...config import DataConfig, env
from ..arrays import Arrays, SourceError, from_arrays
from . import Source

PREFIX = "torchvision:"


def from_torchvision(name: str, root: Path, size: int | None = None, channels: int | None = None,
                     download: bool = True) -> Arrays:
    """A torchvision dataset's train and test splits (downloaded into ``root`` unless
    offline), through the same checks as an .npz."""
    try:
        import torchvision.datasets as tvd
    except Exception as e:  # ImportError, or a wheel built for another torch (RuntimeError/OSError)
        raise SourceError(f"{PREFIX}{name} needs torchvision, which does not import here ({type(e).__name__}): "
                          "install the torchvision build that matches your torch (pip install torchvision), or "
                          "write the images to a folder and pass --dataset FOLDER") from None
    cls = getattr(tvd, name, None)
    if not inspect.isclass(cls):
        raise SourceError(f"torchvision has no dataset {name!r}: use a class name of torchvision.datasets "
                          "such as CIFAR10, CIFAR100, SVHN, FashionMNIST")
    params = inspect.signature(cls).parameters
    try:
        if "train" in params:
            train, test = (cls(str(root), train=t, download=download) for t in (True, False))
        elif "split" in params:
            train, test = (cls(str(root), split=s, download=download) for s in ("train", "test"))
        else:
            raise SourceError(f"{PREFIX}{name} has no train/test split argument: save it as an .npz instead")
    except (RuntimeError, OSError) as e:
        raise SourceError(f"{PREFIX}{name}: cannot load it into {root} ({str(e).splitlines()[0][:120]}): "
                          "pass --data-dir with a copy, or allow the download") from None

    def arrays(ds) -> tuple[object, object]:
        x, y = getattr(ds, "data", None), getattr(ds, "targets", getattr(ds, "labels", None))
        if x is None or y is None:  # a dataset without in-memory arrays: through its PIL images
            pairs = [ds[i] for i in range(len(ds))]
            if len({np.shape(p[0]) for p in pairs}) > 1:
                raise SourceError(f"{PREFIX}{name}: its images differ in size: write them to a folder with one "
                                  "subfolder per class and pass --dataset FOLDER (resized there)")
            x, y = [np.asarray(p[0]) for p in pairs], [p[1] for p in pairs]
        return x, y  # checked by the data rules (data/arrays.py), as an .npz's arrays are

    (xt, yt), (xs, ys) = arrays(train), arrays(test)
    arr = {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys}
    if getattr(train, "classes", None):
        arr["classes"] = np.array([str(c) for c in train.classes])
    return from_arrays(arr, f"{PREFIX}{name}", size, channels)


class Torchvision(Source):
    name = "torchvision"
    help = "torchvision:NAME"
    listed = 3
    priority = 10

    def matches(self, dataset: str) -> bool:
        return dataset.startswith(PREFIX)

    def load(self, cfg: DataConfig) -> tuple[Arrays, str]:
        root = Path(cfg.data_dir) if cfg.data_dir else env.data_root() / "torchvision"
        a = from_torchvision(cfg.dataset[len(PREFIX):], root, cfg.image_size, cfg.channels, download=not env.offline())
        return a, cfg.dataset
