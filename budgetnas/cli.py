"""Command line: parse, validate once, call the modules, print. Exit codes: 0 ok,
1 a step after training failed (one line saying what was kept and where),
2 bad input (one line on stderr, nothing stored changed), 130 interrupted.

Heavy imports (torch, optuna) happen inside commands so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import (DATASET_HELP, DEVICES, PRUNERS, SAMPLERS, ConfigError, DataConfig, ExportIncomplete,
                     SearchConfig, default_storage_url, is_builtin)

EXIT_FAILED = 1  # a step after training failed; what was kept is said in one line
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see '{self.prog} --help')")


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", "").lower().rstrip("k")) * (1000 if text.lower().endswith("k") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


SIZE_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def size_int(text: str) -> int:
    """'300k' -> 300000, '2M' -> 2000000, '20000' -> 20000 (k = 1,000 and M = 1,000,000,
    for bytes too)."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = SIZE_SUFFIXES.get(t[-1:].lower(), 1) if t else 1
    digits = t[:-1] if scale > 1 else t
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use a whole number with an optional k (1,000) or "
                                         "M (1,000,000) suffix, e.g. 300k")
    return int(digits) * scale


def tier_list(text: str) -> list[int]:
    """'2k,5k,10k,25k' -> [2000, 5000, 10000, 25000]."""
    tiers = [positive_int(t.strip()) for t in text.split(",") if t.strip()]
    if not tiers or min(tiers) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of parameter counts like 2k,5k,10k,25k")
    return sorted(set(tiers))


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{DATASET_HELP} (default mnist; see README, 'Your own data')")
    p.add_argument("--data-dir", help="folder with the idx files, or torchvision's download folder "
                                      "(default: $BUDGETNAS_DATA or the user cache dir)")
    p.add_argument("--val-size", type=positive_int, help="validation images held out of training "
                                                         "(default 5000; own data: 10%% of it, at most 5000)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation (and held-out test) split")
    p.add_argument("--train-limit", type=positive_int, help="use only N training images (smoke runs, tests)")
    p.add_argument("--image-size", type=int, help="resize every image to S x S pixels (default: as stored)")
    p.add_argument("--channels", type=int, help="convert to 1 (gray) or 3 (RGB) channels (default: as stored)")
    p.add_argument("--hflip", choices=["auto", "yes", "no"], default="auto",
                   help="offer horizontal flips to the search (default auto: for own color images, never for digits)")


def add_study_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--study", default="budgetnas", help="study name (default budgetnas)")
    p.add_argument("--storage", help="sqlite:///FILE.db, postgresql://USER@HOST/DB or journal:FILE "
                                     "(default sqlite:///studies/STUDY.db)")


def data_config(args: argparse.Namespace, defaults: dict | None = None) -> DataConfig:
    """The data flags; ``defaults`` (an export's data record) fills in what is not given."""
    defaults = defaults or {}
    dataset = args.dataset or defaults.get("dataset") or "mnist"
    image_size = args.image_size if args.image_size is not None else defaults.get("image_size")
    channels = args.channels if args.channels is not None else defaults.get("channels")
    val_size = args.val_size or (5000 if is_builtin(dataset) else None)
    return DataConfig(dataset=dataset, data_dir=args.data_dir, val_size=val_size,
                      split_seed=args.split_seed, train_limit=args.train_limit,
                      train_fraction=getattr(args, "train_fraction", 1.0),
                      subset_method=getattr(args, "subset", "random"),
                      curriculum=getattr(args, "curriculum", False), image_size=image_size, channels=channels,
                      hflip=args.hflip)


def build_parser() -> Parser:
    parser = Parser(prog="budgetnas", description="Find small image classifiers under a hard parameter budget.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    s = sub.add_parser("search", help="search architectures and training recipes under a budget")
    s.add_argument("--budget", type=positive_int, default=25_000, help="max trainable parameters (default 25000)")
    s.add_argument("--max-macs", type=size_int, help="max multiply-accumulates per image, e.g. 300k or 2M "
                                                    "(default: no limit)")
    s.add_argument("--max-ram", type=size_int, help="max peak activation memory of one int8 inference in bytes, "
                                                   "e.g. 20k (README: peak RAM; default: no limit)")
    s.add_argument("--epochs", type=int, default=1, help="training epochs per candidate (default 1)")
    s.add_argument("--trials", type=int,
                   help="stop when the study holds this many trained trials (complete or pruned; default 30, "
                        "or as many as --timeout allows where only it is given)")
    s.add_argument("--timeout", type=float,
                   help="finish the search (data loading, trials, re-runs) within this many seconds: a candidate "
                        "expected to end later is not started")
    add_study_args(s)
    s.add_argument("--artifacts", help="folder for trained weights (default: beside the storage)")
    s.add_argument("--seed", type=int, default=0, help="sampler seed; trial seeds derive from it (default 0)")
    s.add_argument("--pruner", default="auto", help=f"one of {', '.join(PRUNERS)} (default auto: median for "
                                                   "1 epoch, hyperband across epochs for more)")
    s.add_argument("--confirm-top", type=int, help="re-run the K best candidates with new seeds before naming a "
                                                  "winner (default 3 for 10 or more trials, else 0)")
    s.add_argument("--reruns", type=int, default=2, help="extra runs of each of those (default 2: 3 runs each)")
    s.add_argument("--sampler", default="tpe", help=f"one of {', '.join(SAMPLERS)} (default tpe)")
    s.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    s.add_argument("--eval-points", type=int, default=4, help="validation reports per epoch (default 4)")
    s.add_argument("--workers", type=int, default=1, help="parallel worker processes on this host (default 1)")
    s.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    s.add_argument("--warm-start", choices=["presets"], help="enqueue the seed models that fit the budget first")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (one line per trial only)")
    s.add_argument("--train-fraction", type=float, default=1.0,
                   help="data-subset fidelity: train each trial on this share of the training set (default 1)")
    s.add_argument("--subset", default="random", choices=["random", "kmeans"],
                   help="how --train-fraction picks images: random, or a k-means coreset per class")
    s.add_argument("--curriculum", action="store_true", help="order the subset easy-to-hard in the first epoch")
    s.add_argument("--create-only", action="store_true",
                   help="only create the study with its settings and --trials target, then exit: "
                        "'budgetnas worker' processes on any host do the training")
    add_data_args(s)
    s.set_defaults(func=cmd_search)

    sp = sub.add_parser("space", help="how the search space uses a budget (2,000 sampled candidates)")
    sp.add_argument("--budget", type=positive_int, default=25_000)
    sp.add_argument("--max-macs", type=size_int, help="also a MAC budget (per image), e.g. 300k")
    sp.add_argument("--max-ram", type=size_int, help="also a peak int8 RAM budget in bytes, e.g. 20k")
    sp.add_argument("--samples", type=int, default=2000)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--dataset", help=f"the data whose input the networks take: {DATASET_HELP} (default: "
                                      "1x28x28 images, 10 classes)")
    sp.add_argument("--data-dir", help="folder with the idx files, or torchvision's download folder")
    sp.add_argument("--image-size", type=int, help="resize every image to S x S pixels")
    sp.add_argument("--channels", type=int, help="convert to 1 or 3 channels")
    sp.add_argument("--hflip", choices=["auto", "yes", "no"], default="auto", help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_space)

    lb = sub.add_parser("leaderboard", help="the study's best models, recomputed from the storage")
    add_study_args(lb)
    lb.add_argument("--top", type=int, default=10, help="show the K best completed trials (default 10)")
    lb.add_argument("--sort", default="accuracy", choices=["accuracy", "efficiency", "params"],
                    help="rank by val accuracy, by the efficiency score (README) or by size (default accuracy)")
    lb.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"],
                    help="output format (default table)")
    lb.add_argument("--tiers", type=tier_list,
                    help="budget tiers for 'best per tier', e.g. 2k,5k,10k,25k (default: from the study's budget)")
    lb.add_argument("--all", action="store_true", help="also list pruned, rejected and failed trials")
    lb.set_defaults(func=cmd_leaderboard)

    rp = sub.add_parser("report", help="one self-contained HTML report of a study (works offline)")
    add_study_args(rp)
    rp.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    rp.add_argument("--cost", default="params", choices=["params", "macs", "ram"],
                    help="the cost on the Pareto plot's x axis: params, MACs or peak int8 RAM (default params)")
    rp.set_defaults(func=cmd_report)

    db = sub.add_parser("dashboard", help="serve optuna-dashboard on a study's storage (live while a search runs)")
    add_study_args(db)
    db.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    db.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    db.set_defaults(func=cmd_dashboard)

    da = sub.add_parser("data", help="fetch and verify a dataset; print where it is and each file's md5 status")
    da.add_argument("name", nargs="?", default="mnist", metavar="DATASET", help=f"{DATASET_HELP} (default mnist)")
    da.add_argument("--data-dir", help="folder for the idx files (default: $BUDGETNAS_DATA or the user cache dir)")
    da.add_argument("--image-size", type=int, help="resize every image to S x S pixels (own data)")
    da.add_argument("--channels", type=int, help="convert to 1 or 3 channels (own data)")
    da.set_defaults(func=cmd_data)

    pr = sub.add_parser("presets", help="the seed architectures A-E with parameters and MACs")
    pr.set_defaults(func=cmd_presets)

    ex = sub.add_parser("export", help="write a trained trial as spec, standalone model.py, weights, TorchScript, "
                                       "ONNX and manifest (never retrains)")
    add_study_args(ex)
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="trial number to export")
    which.add_argument("--rank", type=int, help="leaderboard rank to export (default 1: the best)")
    ex.add_argument("--sort", default="accuracy", choices=["accuracy", "efficiency", "params"],
                    help="the ranking --rank refers to (default accuracy)")
    ex.add_argument("--out", help="output folder (default exports/STUDY-trialN)")
    ex.add_argument("--artifacts", help="folder holding the study's trial_N.pt weights, if they moved")
    ex.add_argument("--data-dir", help="folder with the idx files: training images calibrate model.int8.onnx, the "
                                       "test set measures it (default: $BUDGETNAS_DATA or the user cache dir)")
    ex.set_defaults(func=cmd_export)

    tr = sub.add_parser("train", help="train an exported spec or a preset on the full training set; "
                                      "save an export bundle")
    tr.add_argument("spec", nargs="?", help="a spec.json, or an export folder (its spec and recipe)")
    tr.add_argument("--preset", help="a seed architecture A-E instead of a spec (see 'budgetnas presets')")
    tr.add_argument("--epochs", type=int, required=True, help="training epochs")
    tr.add_argument("--seed", type=int, default=0, help="init, batch-order and augmentation seed (default 0)")
    tr.add_argument("--out", help="output folder of the bundle (default exports/NAME-Eep)")
    tr.add_argument("--budget", type=positive_int, help="refuse a spec with more trainable parameters than this")
    tr.add_argument("--max-macs", type=size_int, help="refuse a spec with more multiply-accumulates per image, "
                                                     "e.g. 300k")
    tr.add_argument("--max-ram", type=size_int, help="refuse a spec whose int8 inference needs more peak "
                                                    "activation memory (bytes), e.g. 20k")
    tr.add_argument("--optimizer", help="recipe override: adamw, adam or sgd")
    tr.add_argument("--lr", type=float, help="recipe override: peak learning rate")
    tr.add_argument("--schedule", help="recipe override: onecycle, cosine or constant")
    tr.add_argument("--batch-size", type=int, help="recipe override: batch size")
    tr.add_argument("--weight-decay", type=float, help="recipe override: weight decay")
    tr.add_argument("--rotate", type=float, help="recipe override: max rotation in degrees")
    tr.add_argument("--translate", type=float, help="recipe override: max shift, fraction of the side")
    tr.add_argument("--label-smoothing", type=float, help="recipe override: label smoothing")
    tr.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    tr.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_args(tr)
    tr.set_defaults(func=cmd_train)
    # --- worker: join a study from any machine (settings come from the study) ---
    w = sub.add_parser("worker", help="join an existing study from any machine (every setting comes from the study)")
    w.add_argument("--storage", help="the study's storage, e.g. postgresql://USER:PASSWORD@HOST/DB "
                                     "(default: $BUDGETNAS_STORAGE, else sqlite:///studies/STUDY.db)")
    w.add_argument("--study", required=True, help="study name (made by 'budgetnas search --create-only')")
    w.add_argument("--trials", type=int, help="stop when the study holds this many trained trials "
                                              "(default: the target stored by 'budgetnas search')")
    w.add_argument("--timeout", type=float,
                   help="stop within this many seconds: a candidate expected to end later is not started")
    w.add_argument("--artifacts", help="folder for trained weights; use one shared by all hosts "
                                       "(default: studies/STUDY-weights, or beside a file storage)")
    w.add_argument("--data-dir", help="folder with the idx files on this host (default: $BUDGETNAS_DATA or the cache)")
    w.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    w.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    w.add_argument("--no-progress", action="store_true", help="no progress bars (default when stderr is no terminal)")
    w.set_defaults(func=cmd_worker)
    return parser


# --- helpers ---------------------------------------------------------------------------------
def storage_url(args: argparse.Namespace, workers: int = 1) -> str:
    return args.storage or os.environ.get("BUDGETNAS_STORAGE") or default_storage_url(args.study, workers)


def load_existing_study(args: argparse.Namespace):
    """Open a study that must already exist (leaderboard, report, export...)."""
    import warnings

    import optuna
    from .storage import open_storage, redact
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    url = storage_url(args)
    storage = open_storage(url, create=False)  # creates no file, table or study
    names = optuna.get_all_study_names(storage)
    if args.study not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(f"no study {args.study!r} in {redact(url)} (studies there: {known}): pass --study NAME")
    return optuna.load_study(study_name=args.study, storage=storage)


# --- commands ---------------------------------------------------------------------------------
DEFAULT_TRIALS = 30  # search --trials when neither it nor --timeout is given (and with --create-only)


def cmd_search(args: argparse.Namespace) -> int:
    # like Optuna's optimize(timeout=...) without n_trials: a time-bounded search runs
    # trials until its time is up, not until a default count it never asked for
    trials = args.trials if args.trials is not None else (
        None if args.timeout is not None and not args.create_only else DEFAULT_TRIALS)
    cfg = SearchConfig(budget=args.budget, max_macs=args.max_macs, max_ram=args.max_ram, epochs=args.epochs,
                       trials=trials, timeout=args.timeout, study=args.study, storage=args.storage, artifacts=args.artifacts, seed=args.seed,
                       pruner=args.pruner, sampler=args.sampler, workers=args.workers, device=args.device,
                       confirm_top=args.confirm_top, reruns=args.reruns,
                       eval_points=args.eval_points, warm_start=args.warm_start, threads=args.threads,
                       data=data_config(args))
    check_floors(cfg.budget, cfg.max_macs, cfg.max_ram)
    if args.create_only:
        return create_study_only(cfg, storage_url(args, cfg.workers))
    if cfg.workers > 1:  # N processes on one study on this host
        from .workers import run_parallel
        return run_parallel(cfg, storage_url(args, cfg.workers), progress=not args.no_progress)
    from .runner import run_search
    return run_search(cfg, storage_url(args, cfg.workers), progress=not args.no_progress)


def check_floors(budget: int, max_macs: int | None, max_ram: int | None, space=None) -> None:
    """ConfigError for a budget below the smallest network the space can build (by that
    kind); the space of 28x28x1 images unless a data's space is given."""
    from .space import Space, smallest_macs, smallest_params, smallest_ram
    space = space or Space()
    for flag, value, floor, unit in (("--budget", budget, smallest_params(space), "params"),
                                     ("--max-macs", max_macs, smallest_macs(space), "MACs"),
                                     ("--max-ram", max_ram, smallest_ram(space), "bytes of peak RAM")):
        if value is not None and value < floor:
            raise ConfigError(f"{flag} {value} is below the smallest network the space can build "
                              f"({floor} {unit}): use {flag} {floor} or more")


def create_study_only(cfg: SearchConfig, url: str) -> int:
    """search --create-only: make the study (settings pinned, --trials stored as its
    target) so that workers started afterwards on any host need only its name and URL."""
    import warnings

    import optuna
    from .search import TARGET_ATTR, create_or_load_study, enqueue_presets
    from .storage import open_storage, redact
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    from .data import load_data
    from .runner import check_budget_floor, data_notes
    data = load_data(cfg.data)  # its identity is pinned in the study; bad data fails before the storage
    check_budget_floor(cfg.budget, data)
    storage = open_storage(url)
    existed = cfg.study in optuna.get_all_study_names(storage)
    study = create_or_load_study(cfg, storage, data=data)
    for line in data_notes(data.info):
        print(line)
    if cfg.warm_start == "presets":
        names = enqueue_presets(study, cfg.budget, data)
        print(f"warm start: enqueued presets {', '.join(names) or '(none fit or already run)'}")
    print(f"study {cfg.study!r} {'already in' if existed else 'created in'} {redact(url)}: budget {cfg.budget:,} params, "
          f"{cfg.epochs} epoch(s), target {study.user_attrs[TARGET_ATTR]} trained trials ({len(study.trials)} so far)")
    print(f"start workers on any host:  budgetnas worker --storage {redact(url)} --study {cfg.study}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Join an existing study: budget, epochs, data split, sampler, pruner... all come
    from the study's stored settings; only host-local things are flags."""
    import zlib

    from .search import TARGET_ATTR, config_from_study, worker_name
    url = storage_url(args)
    study = load_existing_study(args)
    config_from_study(study)  # a study not made by budgetnas fails here, before anything else
    trials = args.trials if args.trials is not None else study.user_attrs.get(TARGET_ATTR)
    if trials is None and args.timeout is None:
        raise ConfigError(f"study {args.study!r} stores no target number of trials: pass --trials N or --timeout S")
    cfg = config_from_study(study, trials=trials, timeout=args.timeout, storage=url, artifacts=args.artifacts,
                            device=args.device, threads=args.threads, data_dir=args.data_dir)
    name = worker_name()
    # a sampler seed of its own per worker: identical seeds would propose identical trials
    worker_id = 1 + zlib.crc32(name.encode()) % 999_983
    print(f"worker {name} joins study {cfg.study!r}: budget {cfg.budget:,} params, {cfg.epochs} epoch(s), "
          f"until the study holds {trials if trials is not None else 'any number of'} trained trials")
    from .runner import run_search
    return run_search(cfg, url, progress=not args.no_progress and sys.stderr.isatty(), worker=worker_id)


def cmd_space(args: argparse.Namespace) -> int:
    from .space import budget_use_summary
    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = None
    if args.dataset:
        from .data import load_data
        from .search import data_space
        args.val_size = args.train_limit = None
        args.split_seed = 0
        data = load_data(data_config(args))
        space = data_space(data)
        print(f"input {space.in_channels}x{space.image_size}x{space.image_size}, {space.num_classes} classes, "
              f"{space.stages[0]}-{space.stages[1]} stages" + (", flips searched" if space.hflip else ""))
    check_floors(args.budget, args.max_macs, args.max_ram, space)
    s = budget_use_summary(args.budget, args.samples, args.seed, space, max_macs=args.max_macs, max_ram=args.max_ram)
    limits = ", ".join([f"budget {s['budget']:,}"] + [f"{name} {limit:,}" for name, limit in
                                                       (("max MACs", args.max_macs), ("max RAM bytes", args.max_ram))
                                                       if limit])
    print(f"{limits}: {s['within']}/{s['n']} sampled candidates within "
          f"{'every budget' if 'kinds' in s else 'budget'} ({100 * s['share_within']:.1f}%); "
          "the others are rejected before they are built")
    if s["quantiles"]:
        q = s["quantiles"]
        what = "use of the tightest budget" if "kinds" in s else "budget use"
        print(f"{what} of those within: " + ", ".join(f"p{int(k * 100)} {100 * v:.0f}%" for k, v in q.items()))
        top = max(s["histogram"]) or 1
        for i, count in enumerate(s["histogram"]):
            print(f"  {10 * i:3d}-{10 * i + 10:3d}%  {count:5d}  {'#' * round(40 * count / top)}")
    names = {"params": "params", "macs": "MACs", "ram": "peak RAM"}
    for kind, k in s.get("kinds", {}).items():
        if k["quantiles"]:
            print(f"{names[kind]:>8} (limit {k['limit']:,}; tightest for {s['binding'][kind]} of {s['within']}): "
                  + ", ".join(f"p{int(q * 100)} {100 * v:.0f}%" for q, v in k["quantiles"].items()))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from . import leaderboard as lb
    from .storage import redact
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1 (got {args.top})")
    study = load_existing_study(args)
    trials = study.get_trials(deepcopy=False)
    everything = lb.build(trials, sort=args.sort, include_all=True)
    entries = everything if args.all else [e for e in everything if e.state == "complete"]
    done = [e for e in entries if e.state == "complete"]
    shown = done[: args.top] + [e for e in entries if e.state != "complete"]
    budget = study_budget(study, everything)
    tiers = args.tiers or (lb.default_tiers(budget) if budget else [])
    best = lb.best_per_tier(done, tiers)
    if args.format == "csv":
        print(lb.format_csv(shown), end="")
    elif args.format == "json":
        print(lb.format_json(shown, best, study=study.study_name, storage=redact(storage_url(args)),
                             budget=budget, sort=args.sort, pareto=sorted(e.trial for e in done if e.pareto),
                             counts=lb.state_counts(everything)))
    elif args.format == "markdown":
        print(lb.format_markdown(shown, best))
    else:
        counts = ", ".join(f"{n} {state}" for state, n in lb.state_counts(everything).items()) or "no trials"
        print(f"study {study.study_name!r} in {redact(storage_url(args))}: "
              f"budget {budget:,} params; {counts}" if budget else f"study {study.study_name!r}: {counts}")
        if not done:
            print("no completed trial yet: the table fills in as 'budgetnas search' finishes trials")
        print(lb.format_table(shown, arch=True))
        print(f"sorted by {args.sort}; * = on the accuracy/params Pareto front; "
              f"score = efficiency: val acc % - {lb.PP_PER_DOUBLING} x log2(params/{lb.REFERENCE_PARAMS})")
        if any(e.n_runs > 1 for e in done):
            print("runs: candidates re-run with new seeds show mean val/test accuracy and the val std in points; "
                  "they rank above candidates trained once")
        if best:
            print("\nbest per budget tier (most accurate with params <= tier)")
            print(lb.format_tiers(best))
    return 0


def study_budget(study, entries) -> int | None:
    """The study's budget: its pinned settings, else the largest budget its trials recorded."""
    budget = (study.user_attrs.get("settings") or {}).get("budget")
    return budget or max((e.budget for e in entries if e.budget), default=None)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import check_writable, write_report
    from .storage import redact
    out = Path(args.out)
    check_writable(out)  # before the (slow) storage read and plots
    study = load_existing_study(args)
    path = write_report(study, out, storage_label=redact(storage_url(args)), cost=args.cost)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained, works offline): open it in a browser")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import publish_plots, serve
    from .storage import redact
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535 (got {args.port})")
    study = load_existing_study(args)
    server = serve(study._storage, args.host, args.port)  # ConfigError if the port is busy
    try:
        publish_plots(study)  # the Pareto and leaderboard plots on the study page, fresh
    except Exception as e:  # e.g. a read-only storage: serve what is there
        print(f"note: could not refresh the study's plots ({type(e).__name__}); serving as stored", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard for study {study.study_name!r} in {redact(storage_url(args))}")
    print(f"open http://{host}:{server.server_port}/dashboard/studies/{study._study_id}  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    import hashlib

    from .data import FILES, REGISTRY, data_dir_for, obtain, parse_idx, verify_files
    cfg = DataConfig(dataset=args.name, data_dir=args.data_dir, val_size=None if not is_builtin(args.name) else 5000,
                     image_size=args.image_size, channels=args.channels)  # ConfigError for an unknown name
    if not is_builtin(cfg.dataset):
        return own_data_summary(cfg)
    info, directory = REGISTRY[cfg.dataset], data_dir_for(cfg)
    sources = obtain(info, directory)
    raw = verify_files(info, directory)
    print(f"{info.name} in {directory}")
    for stem in FILES:
        md5 = hashlib.md5(raw[stem]).hexdigest()
        print(f"  {stem:25}  md5 {md5} ok  ({sources[stem]})")
    train, test = (len(parse_idx(raw[stem], stem)) for stem in (FILES[0], FILES[2]))
    where = f"pass --data-dir {directory}" if args.data_dir else "the default for search and train"
    print(f"verified: {train:,} training and {test:,} test images ({where})")
    return 0


def own_data_summary(cfg: DataConfig) -> int:
    """budgetnas data FOLDER|FILE.npz|torchvision:NAME: decode (or read the cache) and say what it is."""
    import time

    from .data import cache_dir, load_data
    from .runner import data_notes
    t0 = time.perf_counter()
    data = load_data(cfg)
    info = data.info
    c, h, w = info["shape"]
    classes = info["classes"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    print(f"{cfg.dataset}: {info['images']:,} images of {c}x{h}x{w}, {len(classes)} classes ({shown})")
    print(f"  train {info['train_size']:,} / val {info['val_size']:,} / test {info['test_size']:,} "
          f"(test: {info['test_from']})")
    print(f"  mean {info['mean']}, std {info['std']} (per channel, training split)")
    print(f"  fingerprint {info['fingerprint']}; {'read from' if info['cached'] else 'decoded and cached in'} "
          f"{cache_dir()} in {time.perf_counter() - t0:.2f}s")
    for line in data_notes(info)[1:]:
        print(line)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS
    from .space import macs, param_count
    print(f"{'preset':6}  {'params':>8}  {'MACs':>10}  claim")
    for name, p in PRESETS.items():
        print(f"{name:6}  {param_count(p.spec):>8,}  {macs(p.spec):>10,}  {p.claim}")
    return 0


# --- export and train ---------------------------------------------------------------------------
RECIPE_FLAGS = ("optimizer", "lr", "schedule", "batch_size", "weight_decay", "rotate", "translate", "label_smoothing")


def _print_bundle(manifest: dict) -> None:
    """The self-check line, and one note per file that was skipped (e.g. ONNX without onnx)."""
    checks, skipped = manifest["checks"], manifest.get("skipped", {})
    parts = [f"{name} {checks[name]:.2g}" if checks.get(name) is not None else
             f"{name} {'skipped' if name in skipped else 'not run'}"
             for name in ("weights.pt", "model.py", "model.ts", "model.onnx")]
    print(f"checked (max |logit diff| vs the network, {checks['input']}): " + ", ".join(parts))
    int8, lat = manifest.get("int8"), manifest.get("latency")
    if int8:
        b = int8["bytes"]
        print(f"int8: model.int8.onnx test {100 * int8['int8_test_acc']:.2f}% vs float ONNX "
              f"{100 * int8['float_onnx_test_acc']:.2f}% ({int8['test_images']:,} test images, same class on "
              f"{100 * int8['agreement']:.2f}%); {b['model.int8.onnx']:,} vs {b['model.onnx']:,} bytes")
        if int8.get("problem"):
            print(f"warning: model.int8.onnx fails its check: {int8['problem']}")
    if lat:
        print("latency (median, 1 image, 1 thread, onnxruntime; measured on " + lat["machine"] + "): "
              + ", ".join(f"{name} {ms:.3f} ms" for name, ms in lat["median_ms"].items()))
    for name, why in skipped.items():
        if name == "model.int8.onnx" and "model.onnx" in skipped:
            continue  # made from model.onnx: the note on model.onnx says why
        print(f"note: {name} skipped: {why}")


def cmd_export(args: argparse.Namespace) -> int:
    from .api import export_trial
    study = load_existing_study(args)
    trial, out, manifest = export_trial(study, storage_url(args), args.out, args.trial, args.rank, args.sort,
                                        args.artifacts, data_dir=args.data_dir)
    acc = lambda v: "-" if v is None else f"{100 * v:.2f}%"
    print(f"exported trial {trial.number} of study {args.study!r} ({manifest['params']:,} params, "
          f"val {acc(manifest['val_acc'])}, test {acc(manifest['test_acc'])}) to {out}")
    print("files: " + ", ".join(manifest["files"]) + ", manifest.json")
    _print_bundle(manifest)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import Recipe
    from .export import spec_from_path
    from .presets import get_preset
    from .space import macs, param_count, peak_ram
    if (args.spec is None) == (args.preset is None):
        raise ConfigError("give either a spec (spec.json or an export folder) or --preset NAME")
    overrides = {k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k) is not None}
    manifest = None
    if args.preset:
        preset = get_preset(args.preset)
        spec, base, name = preset.spec, preset.recipe.to_dict(), f"preset-{preset.name}"
    else:
        spec, manifest = spec_from_path(args.spec)
        from .train import DEFAULT_RECIPE
        base = (manifest or {}).get("recipe") or DEFAULT_RECIPE.to_dict()
        p = Path(args.spec)
        name = p.resolve().name if p.is_dir() else p.stem
    recipe = Recipe.from_dict({**base, **overrides, "epochs": args.epochs})
    if args.preset and args.dataset and not is_builtin(args.dataset):
        raise ConfigError(f"preset {preset.name} takes 1x28x28 digits with 10 classes, not your own data: "
                          "train a spec exported from a search on it instead")
    params = param_count(spec)
    budget = args.budget or (manifest or {}).get("budget")
    if args.budget and params > args.budget:
        raise ConfigError(f"the spec has {params:,} parameters, over --budget {args.budget:,}: "
                          "pick a smaller spec or raise --budget")
    for flag, limit, cost, unit in (("--max-macs", args.max_macs, macs, "multiply-accumulates per image"),
                                    ("--max-ram", args.max_ram, peak_ram, "bytes of peak activation memory")):
        if limit is not None and cost(spec) > limit:
            raise ConfigError(f"the spec needs {cost(spec):,} {unit}, over {flag} {limit:,}: "
                              f"pick a smaller spec or raise {flag}")
    # an export trains on the data its manifest names (and at its size), unless told otherwise
    dcfg = data_config(args, (manifest or {}).get("data"))
    return _train_and_export(args, spec, recipe, name, dcfg, budget, manifest)


def _train_and_export(args, spec, recipe, name, dcfg, budget, source_manifest) -> int:
    import torch
    from tqdm import tqdm
    from .api import int8_inputs
    from .data import load_data
    from .export import data_record, export_bundle, prepare_out
    from .model import build_model
    from .runtime import resolve_device, set_threads, tune_malloc
    from .space import param_count
    from .train import train
    tune_malloc()
    threads = set_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(dcfg).to(device)
    c, h, w = data.shape
    if [c, h, w] != [spec.in_channels, spec.image_size, spec.image_size] or data.num_classes != spec.num_classes:
        raise ConfigError(f"the network takes {spec.in_channels}x{spec.image_size}x{spec.image_size} images and "
                          f"{spec.num_classes} classes; {dcfg.dataset} gives {c}x{h}x{w} and {data.num_classes}: "
                          "pass the --dataset it was searched on (or --image-size / --channels to match)")
    wanted = ((source_manifest or {}).get("data") or {}).get("fingerprint")
    if wanted and data.info["fingerprint"] != wanted:
        print(f"note: this data (fingerprint {data.info['fingerprint']}) is not the data of the export "
              f"(fingerprint {wanted})")
    out = prepare_out(args.out or Path("exports") / f"{name}-{args.epochs}ep")
    print(f"training {name}: {param_count(spec):,} params; {recipe.optimizer} lr {recipe.lr:g} {recipe.schedule}, "
          f"batch {recipe.batch_size}, {recipe.epochs} epochs -> {out}")
    print(f"data: {dcfg.dataset} train {data.info['train_size']:,} / val {data.info['val_size']:,} / "
          f"test {data.info['test_size']:,}; device {device}, {threads} threads")
    from .runner import data_notes
    for line in data_notes(data.info):
        print(line)
    torch.manual_seed(args.seed)
    net = build_model(spec)
    steps = (len(data.train_x) // min(recipe.batch_size, len(data.train_x))) * recipe.epochs
    bar = tqdm(total=steps, desc=f"train {name}", unit="step", disable=args.no_progress, file=sys.stderr,
               dynamic_ncols=True)

    def on_progress(done: int, total: int, acc: float | None) -> None:
        bar.update(done - bar.n)
        if acc is not None:
            bar.set_postfix_str(f"val {100 * acc:.2f}%")

    def on_epoch(h: dict) -> None:
        line = (f"epoch {h['epoch']:>3}/{recipe.epochs}  loss {h['loss']:.4f}  val {100 * h['val_acc']:.2f}%  "
                f"test {100 * h['test_acc']:.2f}%  {h['seconds']:.0f}s")
        tqdm.write(line) if not args.no_progress else print(line, flush=True)

    try:
        result = train(net, data, recipe, device=device, seed=args.seed, progress=on_progress, test_each_epoch=True,
                       on_epoch=on_epoch)
    finally:
        bar.close()
    meta = {
        "source": "train", "name": name, "preset": args.preset.upper() if args.preset else None,
        "trained_from": str(args.spec) if args.spec else None,
        "val_acc": result.val_acc, "test_acc": result.test_acc, "budget": budget, "seconds": result.seconds,
        "history": result.history, "seeds": {"init": args.seed, "split": dcfg.split_seed},
        "recipe": recipe.to_dict(),
        "data": data_record(dcfg.dataset, data.info, val_size=data.info["val_size"], split_seed=dcfg.split_seed,
                            train_limit=dcfg.train_limit, train_size=data.info["train_size"]),
        "trained_on": {"device": str(device), "torch": torch.__version__},
    }
    if source_manifest:
        meta["parent"] = {k: source_manifest.get(k) for k in ("study", "trial", "val_acc", "test_acc")}
    manifest = export_bundle(out, spec, {k: v.cpu() for k, v in net.state_dict().items()}, meta,
                             f"{name} trained by budgetnas for {recipe.epochs} epochs", int8_data=int8_inputs(data))
    print(f"saved {out}: val {100 * result.val_acc:.2f}%, test {100 * result.test_acc:.2f}% "
          f"({manifest['params']:,} params, {result.seconds:.0f}s)")
    _print_bundle(manifest)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_BAD_INPUT
        return args.func(args)
    except ExportIncomplete as e:
        print(f"budgetnas: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as e:
        print(f"budgetnas: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("budgetnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head & co: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
