"""Frozen, defaulted settings. Built once at the CLI edge and passed down.

No torch, no optuna here: validation is cheap and raises ConfigError with a message
that says what to do (the CLI turns it into one line and exit status 2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "0.1.0"  # budgetnas.__version__ (here so that modules need not import the package itself)
DATASETS = ("mnist", "fashion-mnist")  # built in; any folder, .npz or torchvision:NAME works too
DATASET_HELP = ("mnist, fashion-mnist, a folder with one subfolder per class (optionally under train/ and test/), "
                "an .npz file with x_train and y_train, or torchvision:NAME")
PRUNERS = ("auto", "median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
SUBSET_METHODS = ("random", "kmeans")
JOURNAL_PREFIX = "journal:"


class ConfigError(ValueError):
    """Bad user input. The message is one line that says what to do."""


class ExportIncomplete(RuntimeError):
    """A bundle could not be finished after the trained network was saved (a failing
    exporter or self-check, a full disk). The message is one line: what failed, and what
    was kept where (weights, spec, manifest with the measured accuracy)."""


def is_builtin(dataset: str) -> bool:
    return dataset in DATASETS


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"  # a built-in name, a folder or .npz path (made absolute), or torchvision:NAME
    data_dir: str | None = None  # None: $BUDGETNAS_DATA, else the user cache dir
    val_size: int | None = 5000  # images held out of the training set for selection (None: 10%, at most 5000)
    split_seed: int = 0  # seeds the train/val split, recorded with every result
    train_limit: int | None = None  # use only the first N training images (tests, smoke runs)
    train_fraction: float = 1.0  # data-subset fidelity: share of the training set per trial
    subset_method: str = "random"  # random | kmeans (coreset of cluster-nearest images)
    curriculum: bool = False  # order the subset easy-to-hard (distance to centroid)
    image_size: int | None = None  # resize every image to S x S (None: as stored; mixed sizes: the commonest)
    channels: int | None = None  # 1 (gray) or 3 (RGB); None: as stored
    hflip: str = "auto"  # horizontal flips as a searchable option: auto (color images), yes, no

    def __post_init__(self) -> None:
        d = self.dataset
        if not is_builtin(d) and not d.startswith("torchvision:"):
            _check(Path(d).is_dir() or (Path(d).is_file() and d.lower().endswith(".npz")),
                   f"unknown dataset {d!r}: use {DATASET_HELP}")
            object.__setattr__(self, "dataset", str(Path(d).resolve()))
        _check(self.val_size is None or self.val_size >= 100, f"--val-size must be at least 100 (got {self.val_size})")
        _check(self.image_size is None or 8 <= self.image_size <= 1024,
               f"--image-size must be in 8..1024 pixels (got {self.image_size})")
        _check(self.channels in (None, 1, 3), f"--channels must be 1 or 3 (got {self.channels})")
        _check(self.hflip in ("auto", "yes", "no"), f"--hflip must be auto, yes or no (got {self.hflip!r})")
        _check(self.train_limit is None or self.train_limit >= 100,
               f"--train-limit must be at least 100 (got {self.train_limit})")
        _check(0.0 < self.train_fraction <= 1.0,
               f"--train-fraction must be in (0, 1] (got {self.train_fraction})")
        _check(self.subset_method in SUBSET_METHODS,
               f"unknown subset method {self.subset_method!r}: use random or kmeans")


@dataclass(frozen=True)
class Recipe:
    """How one candidate is trained. Sampled per trial, stored with it, replayable."""

    optimizer: str = "adamw"
    lr: float = 3e-3  # peak learning rate
    schedule: str = "onecycle"
    batch_size: int = 64
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD only
    rotate: float = 0.0  # max rotation, degrees (uniform in +-rotate)
    translate: float = 0.0  # max shift, fraction of the image side
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max grad norm; 0 = off
    epochs: int = 1
    hflip: bool = False  # random horizontal flips (only offered for natural images)

    def __post_init__(self) -> None:
        _check(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        _check(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        _check(self.lr > 0, f"learning rate must be positive (got {self.lr})")
        _check(self.batch_size >= 1, f"batch size must be at least 1 (got {self.batch_size})")
        _check(self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class SearchConfig:
    budget: int = 25_000  # max trainable parameters
    max_macs: int | None = None  # max multiply-accumulates per image (space.macs); None: no limit
    max_ram: int | None = None  # max peak activation bytes of one int8 inference (space.peak_ram); None: no limit
    epochs: int = 1
    trials: int | None = 30  # trained trials the study should hold (all workers together)
    timeout: float | None = None  # seconds
    study: str = "budgetnas"
    storage: str | None = None  # None: sqlite:///studies/<study>.db (journal file with --workers > 1)
    artifacts: str | None = None  # where trained weights go; None: next to the storage
    seed: int = 0  # sampler seed; trial seeds derive from it and the trial number
    pruner: str = "auto"  # median for 1 epoch, hyperband across epochs for more (see search.make_pruner)
    sampler: str = "tpe"
    workers: int = 1
    device: str = "auto"
    eval_points: int = 4  # validation reports per epoch (pruning works with --epochs 1)
    warm_start: str | None = None  # "presets": enqueue the seed models that fit
    threads: int | None = None  # torch threads per worker; None: cores / workers
    confirm_top: int | None = None  # re-run the K best candidates before naming a winner; None: auto
    reruns: int = 2  # extra training runs (new seeds) of each of those
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def confirm(self) -> int:
        """How many of the best candidates are re-run: ``confirm_top`` if given, else 3 for
        a search of 10 or more trials (or one bounded by --timeout only), 0 for a smaller one
        (smoke runs and tests, where re-runs would cost more than the search)."""
        if self.confirm_top is not None:
            return self.confirm_top
        return 3 if self.trials is None or self.trials >= 10 else 0

    def __post_init__(self) -> None:
        _check(self.budget >= 1, f"--budget must be a positive number of parameters (got {self.budget})")
        _check(self.max_macs is None or self.max_macs >= 1,
               f"--max-macs must be a positive number of multiply-accumulates (got {self.max_macs})")
        _check(self.max_ram is None or self.max_ram >= 1, f"--max-ram must be a positive number of bytes (got {self.max_ram})")
        _check(self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})")
        _check(self.trials is None or self.trials >= 1, f"--trials must be at least 1 (got {self.trials})")
        _check(self.timeout is None or self.timeout > 0, f"--timeout must be positive seconds (got {self.timeout})")
        _check(self.pruner in PRUNERS, f"unknown pruner {self.pruner!r}: use one of {', '.join(PRUNERS)}")
        _check(self.sampler in SAMPLERS, f"unknown sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")
        _check(self.device in DEVICES, f"unknown device {self.device!r}: use one of {', '.join(DEVICES)}")
        _check(self.workers >= 1, f"--workers must be at least 1 (got {self.workers})")
        _check(self.threads is None or self.threads >= 1, f"--threads must be at least 1 (got {self.threads})")
        _check(1 <= self.eval_points <= 100, f"--eval-points must be in 1..100 (got {self.eval_points})")
        _check(self.warm_start in (None, "presets"), "--warm-start takes only 'presets'")
        _check(self.confirm_top is None or self.confirm_top >= 0, f"--confirm-top must be 0 or more (got {self.confirm_top})")
        _check(self.reruns >= 0, f"--reruns must be 0 or more (got {self.reruns})")
        _check(bool(self.study) and "/" not in self.study, "--study must be a non-empty name without '/'")


def default_storage_url(study: str, workers: int = 1, root: str | Path = "studies") -> str:
    """SQLite for one process; a journal file (safe for several processes on one host)
    when there are several workers."""
    root = Path(root)
    if workers > 1:
        return f"{JOURNAL_PREFIX}{root / (study + '.journal')}"
    return f"sqlite:///{root / (study + '.db')}"
