"""The settings dataclasses, built once at the edge (CLI or Python API) and passed down.

Each field is the one place for its default, its check, its command-line flag (which
commands have it, help, parser) and what a study does with it (``store``: 'pinned'
settings must be equal on a rerun or a worker; 'stored' ones are kept in the study for
workers; None: of this host or process only) and whether the report shows it. The
parser (cli/parser.py), the study's settings (study/settings.py) and the report
(results/report.py) read these fields: a new flag is a new field here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import env
from .values import (bytes_int, check_real, check_seed, check_study_name, check_text, check_whole, finite_float,
                     macs_int, positive_int, require, seed_int)

JOURNAL_PREFIX = "journal:"
PRUNERS = ("auto", "margin", "median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DEVICES = ("auto", "cpu", "cuda")
SUBSET_METHODS = ("random", "kmeans")
HFLIP = ("auto", "yes", "no")
DEFAULT_TRIALS = 30  # search --trials when neither it nor --timeout is given


# --- field metadata ----------------------------------------------------------------------------
AS_DEFAULT = "<the default>"  # Flag.absent: a study made before the setting existed meant its default


@dataclass(frozen=True)
class Flag:
    """How a settings field meets the user: its flag on ``commands`` and what a study does with it."""

    help: str
    commands: tuple[str, ...] = ("search",)
    type: Callable[[str], Any] | None = None
    choices: tuple | None = None
    store: str | None = None  # 'pinned' | 'stored' | None (see the module docstring)
    report: bool = False  # shown in the report's settings line
    option: str | None = None  # the flag, if not --field-name
    action: str | None = None  # e.g. 'store_true'
    show_default: bool = True  # help ends with "(default X)"
    absent: Any = AS_DEFAULT  # what a study stored before this setting existed means
    helps: tuple[tuple[str, str], ...] = ()  # (command, help) where a command words it differently
    hidden: tuple[str, ...] = ()  # commands that accept it without listing it in --help
    required: tuple[str, ...] = ()  # commands where it must be given


def flag(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its Flag (``default_factory`` when ``default`` is a callable class)."""
    return field(default=default, metadata={"flag": Flag(help, **kw)})


def flags(cls) -> list[tuple[dataclasses.Field, Flag]]:
    """(field, Flag) of each field of a settings class that has one, in field order."""
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]


def absent_value(f: dataclasses.Field, fl: Flag) -> Any:
    """The value a study made before ``f`` existed implies."""
    return f.default if fl.absent == AS_DEFAULT else fl.absent


# --- the settings ---------------------------------------------------------------------------------
DATA_COMMANDS = ("search", "train", "space")
# upper limits of the counts: beyond them a value is a typo (and some would overflow later)
MAX_EPOCHS = 10_000
MAX_TRIALS = 1_000_000
MAX_TIMEOUT = 10 ** 8  # seconds (three years)
MAX_WORKERS = 1024
GPU_WORKERS = 4  # --workers not given, trials on a GPU: a small net's step leaves most of it idle (README "GPU")
MAX_THREADS = 1024
MAX_RERUNS = 1000


@dataclass(frozen=True)
class DataConfig:
    dataset: str = flag("mnist", "{datasets} (see README, 'Your own data')", commands=DATA_COMMANDS, store="pinned",
                        report=True, helps=(("space", "the data whose input the networks take: {datasets} "
                                                      "(default: 1x28x28 images, 10 classes)"),))
    train_limit: int | None = flag(None, "use only N training images (smoke runs, tests)", commands=("search", "train"),
                                   type=positive_int, store="pinned", report=True)
    val_size: int | None = flag(5000, "validation images held out of training (default 5000; own data: 10%% of it, "
                                      "at most 5000)", commands=("search", "train"), type=positive_int,
                                store="pinned", report=True, show_default=False)
    split_seed: int = flag(0, "seed of the train/validation (and held-out test) split", commands=("search", "train"),
                           type=seed_int, store="pinned", report=True)
    data_dir: str | None = flag(None, "folder with the idx files, or torchvision's download folder (default: "
                                      "$BUDGETNAS_DATA or the user cache dir)",
                                commands=(*DATA_COMMANDS, "worker", "data"),
                                helps=(("worker", "folder with the data on this host (default: $BUDGETNAS_DATA or "
                                                  "the cache)"),))
    train_fraction: float = flag(1.0, "data-subset fidelity: train each trial on this share of the training set",
                                 type=finite_float, store="pinned")
    subset_method: str = flag("random", "how --train-fraction picks images: random, or a k-means coreset per class",
                              option="--subset", choices=SUBSET_METHODS, store="stored", show_default=False)
    curriculum: bool = flag(False, "order the subset easy-to-hard in the first epoch", action="store_true",
                            store="stored", show_default=False)
    image_size: int | None = flag(None, "resize every image to S x S pixels (default: as stored)",
                                  commands=(*DATA_COMMANDS, "data"), type=int, store="pinned", show_default=False)
    channels: int | None = flag(None, "convert to 1 (gray) or 3 (RGB) channels (default: as stored)",
                                commands=(*DATA_COMMANDS, "data"), type=int, store="pinned", show_default=False)
    hflip: str = flag("auto", "offer horizontal flips to the search (auto: for own color images, never for digits)",
                      commands=DATA_COMMANDS, choices=HFLIP, store="pinned", hidden=("space",))

    def __post_init__(self) -> None:
        d = self.dataset
        require(isinstance(d, str) and d.strip() != "", "--dataset must name a dataset, a folder or an .npz file")
        if ":" not in d and Path(d).exists():  # a path, made absolute: the study pins where it is
            object.__setattr__(self, "dataset", str(Path(d).resolve()))
        if self.val_size is not None:
            check_whole(self.val_size, "--val-size", 100)
        require(self.image_size is None or self.image_size in range(8, 1025) and not isinstance(self.image_size, bool),
               f"--image-size must be in 8..1024 pixels (got {self.image_size})")
        require(self.channels is None or self.channels in (1, 3) and not isinstance(self.channels, bool),
               f"--channels must be 1 or 3 (got {self.channels})")
        require(self.hflip in HFLIP, f"--hflip must be auto, yes or no (got {self.hflip!r})")
        if self.train_limit is not None:
            check_whole(self.train_limit, "--train-limit", 100)
        check_seed(self.split_seed, "--split-seed")
        if self.data_dir is not None:
            check_text(self.data_dir, "--data-dir", "leave it out for $BUDGETNAS_DATA or the user cache dir")
        check_real(self.train_fraction, "--train-fraction", 0.0, 1.0, lo_open=True,
                   message=f"--train-fraction must be in (0, 1] (got {self.train_fraction})")
        require(self.subset_method in SUBSET_METHODS,
               f"unknown subset method {self.subset_method!r}: use random or kmeans")


@dataclass(frozen=True)
class SearchConfig:
    budget: int = flag(25_000, "max trainable parameters", commands=("search", "space"), type=positive_int,
                       store="pinned", report=True)
    max_macs: int | None = flag(None, "max multiply-accumulates per image, e.g. 300k or 2M (default: no limit)",
                                commands=("search", "space"), type=macs_int, store="pinned", report=True,
                                show_default=False)
    max_ram: int | None = flag(None, "max peak activation memory of one int8 inference in bytes, e.g. 20k "
                                     "(README: peak RAM; default: no limit)", commands=("search", "space"),
                               type=bytes_int, store="pinned", report=True, show_default=False)
    epochs: int = flag(1, "training epochs per candidate", type=int, store="pinned", report=True)
    data: DataConfig = field(default_factory=DataConfig)
    trials: int | None = flag(DEFAULT_TRIALS, "stop when the study holds this many trained trials (complete or "
                                              "pruned; default 30, or as many as --timeout allows where only it is "
                                              "given)", commands=("search", "worker"), type=int, show_default=False,
                              helps=(("worker", "stop when the study holds this many trained trials (default: "
                                                "the target stored by 'budgetnas search')"),))
    timeout: float | None = flag(None, "finish the search (data loading, trials, re-runs) within this many seconds: "
                                       "a candidate expected to end later is not started",
                                 commands=("search", "worker"), type=finite_float)
    study: str = flag("budgetnas", "study name", commands=("search", "worker", "study"), required=("worker",),
                      helps=(("worker", "study name (made by 'budgetnas search --create-only')"),))
    storage: str | None = flag(None, "sqlite:///FILE.db, postgresql://USER@HOST/DB or journal:FILE "
                                     "(default: $BUDGETNAS_STORAGE, else sqlite:///studies/STUDY.db)",
                               commands=("search", "worker", "study"), show_default=False)
    artifacts: str | None = flag(None, "folder for trained weights (default: beside the storage); with workers on "
                                       "several hosts, one they all share", commands=("search", "worker"))
    seed: int = flag(0, "sampler seed; trial seeds derive from it", commands=("search", "space"), type=seed_int,
                     store="stored", report=True)
    sampler: str = flag("tpe", "the Optuna sampler", choices=SAMPLERS, store="stored", report=True)
    pruner: str = flag("auto", "median for 1 epoch and hyperband across epochs for more (auto), or as named "
                               "(margin: also stop a trial far behind the best early in its run)",
                       choices=PRUNERS, store="stored", report=True)
    eval_points: int = flag(4, "validation reports per epoch", type=int, store="pinned", report=True)
    confirm_top: int | None = flag(None, "re-run the K best candidates with new seeds before naming a winner "
                                         "(default 3 for 10 or more trials, else 0)", type=int, store="stored",
                                   show_default=False, absent=0)
    reruns: int = flag(2, "extra runs (new seeds) of each of those; 2: 3 runs each", type=int, store="stored")
    workers: int = flag(1, f"parallel worker processes on this host (default 1; trials on a GPU: {GPU_WORKERS}, "
                           "sharing it)", type=int, show_default=False)
    threads: int | None = flag(None, "torch threads per worker (default: cores / workers)",
                               commands=("search", "worker"), type=int, show_default=False)
    device: str = flag("auto", "where trials train: auto (CUDA where visible), cpu or cuda",
                       commands=("search", "worker"), choices=DEVICES)
    space: Any = flag(None, "the search space: plain, resnet, mobile, default, or a TOML file (see README, "
                            "'Search spaces'; default: default; a rerun: the study's)", commands=("search", "space"),
                      show_default=False)
    warm_start: str | None = flag(None, "enqueue the seed models that fit the budget first", choices=("presets",),
                                  show_default=False)

    @property
    def confirm(self) -> int:
        """How many of the best candidates are re-run: ``confirm_top`` if given, else 3 for
        a search of 10 or more trials (or one bounded by --timeout only), 0 for a smaller one
        (smoke runs and tests, where re-runs would cost more than the search)."""
        if self.confirm_top is not None:
            return self.confirm_top
        return 3 if self.trials is None or self.trials >= 10 else 0

    def __post_init__(self) -> None:
        check_whole(self.budget, "--budget", low=f"must be a positive number of parameters (got {self.budget})")
        for option, value, unit in (("--max-macs", self.max_macs, "multiply-accumulates"),
                                    ("--max-ram", self.max_ram, "bytes")):
            if value is not None:
                check_whole(value, option, low=f"must be a positive number of {unit} (got {value})")
        check_whole(self.epochs, "--epochs", 1, MAX_EPOCHS)
        if self.trials is not None:
            check_whole(self.trials, "--trials", 1, MAX_TRIALS)
        if self.timeout is not None:
            check_real(self.timeout, "--timeout", 0.0, MAX_TIMEOUT, lo_open=True,
                       message=f"--timeout must be positive seconds (got {self.timeout})"
                       if isinstance(self.timeout, (int, float)) and self.timeout <= 0 else
                       f"--timeout must be a finite number of seconds, at most {MAX_TIMEOUT:,} (got {self.timeout})")
        require(self.pruner in PRUNERS, f"unknown pruner {self.pruner!r}: use one of {', '.join(PRUNERS)}")
        require(self.sampler in SAMPLERS, f"unknown sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")
        require(self.device in DEVICES, f"unknown device {self.device!r}: use one of {', '.join(DEVICES)}")
        check_whole(self.workers, "--workers", 1, MAX_WORKERS)
        if self.threads is not None:
            check_whole(self.threads, "--threads", 1, MAX_THREADS)
        check_whole(self.eval_points, "--eval-points", 1, 100, low=f"must be in 1..100 (got {self.eval_points})")
        require(self.warm_start in (None, "presets"), "--warm-start takes only 'presets'")
        if self.confirm_top is not None:
            check_whole(self.confirm_top, "--confirm-top", 0, MAX_RERUNS,
                        low=f"must be 0 or more (got {self.confirm_top})")
        check_whole(self.reruns, "--reruns", 0, MAX_RERUNS, low=f"must be 0 or more (got {self.reruns})")
        check_seed(self.seed, "--seed")
        check_study_name(self.study)
        if self.storage is not None:
            check_text(self.storage, "--storage", "leave it out for $BUDGETNAS_STORAGE or sqlite:///studies/STUDY.db")
        if self.artifacts is not None:
            check_text(self.artifacts, "--artifacts", "leave it out to keep the weights beside the storage")


# --- where a study's files go -----------------------------------------------------------------------
def default_storage_url(study: str, workers: int = 1, root: str | Path = "studies") -> str:
    """SQLite for one process; a journal file (safe for several processes on one host)
    when there are several workers."""
    root = Path(root)
    if workers > 1:
        return f"{JOURNAL_PREFIX}{root / (study + '.journal')}"
    return f"sqlite:///{root / (study + '.db')}"


def storage_url(storage: str | None, study: str, workers: int = 1) -> str:
    """The storage a command uses: the one given, else $BUDGETNAS_STORAGE, else the default."""
    if storage is not None:
        check_text(storage, "--storage", "leave it out for $BUDGETNAS_STORAGE or sqlite:///studies/STUDY.db")
    check_study_name(study)
    return storage or env.storage() or default_storage_url(study, workers)


def storage_file(url: str) -> Path | None:
    """The file of a file storage (sqlite:///FILE or journal:FILE), else None."""
    for prefix in ("sqlite:///", JOURNAL_PREFIX):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


def artifacts_dir(study: str, storage_url: str, artifacts: str | None = None) -> Path:
    """Where a study's trained weights go: ``artifacts``, else beside a file storage, else
    studies/<study>-weights."""
    if artifacts:
        return Path(artifacts)
    path = storage_file(storage_url)
    return (path.with_suffix("").parent if path else Path("studies")) / f"{study}-weights"
