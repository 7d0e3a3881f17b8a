"""Command line: parse, validate once, call the modules, print. Exit codes: 0 ok,
2 bad input (one line on stderr, nothing stored changed), 130 interrupted.

Heavy imports (torch, optuna) happen inside commands so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import DATASETS, DEVICES, PRUNERS, SAMPLERS, ConfigError, DataConfig, SearchConfig

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


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(DATASETS)} (default mnist)")
    p.add_argument("--data-dir", help="folder with the idx files (default: $BUDGETNAS_DATA or the user cache dir)")
    p.add_argument("--val-size", type=positive_int, default=5000, help="validation images held out of training")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--train-limit", type=positive_int, help="use only N training images (smoke runs, tests)")


def add_study_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--study", default="budgetnas", help="study name (default budgetnas)")
    p.add_argument("--storage", help="sqlite:///FILE.db, postgresql://USER@HOST/DB or journal:FILE "
                                     "(default sqlite:///studies/STUDY.db)")


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(dataset=args.dataset, data_dir=args.data_dir, val_size=args.val_size,
                      split_seed=args.split_seed, train_limit=args.train_limit,
                      train_fraction=getattr(args, "train_fraction", 1.0),
                      subset_method=getattr(args, "subset", "random"),
                      curriculum=getattr(args, "curriculum", False))


def build_parser() -> Parser:
    parser = Parser(prog="budgetnas", description="Find small image classifiers under a hard parameter budget.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    s = sub.add_parser("search", help="search architectures and training recipes under a budget")
    s.add_argument("--budget", type=positive_int, default=25_000, help="max trainable parameters (default 25000)")
    s.add_argument("--epochs", type=int, default=1, help="training epochs per candidate (default 1)")
    s.add_argument("--trials", type=int, default=30,
                   help="stop when the study holds this many trained trials (complete or pruned; default 30)")
    s.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    add_study_args(s)
    s.add_argument("--artifacts", help="folder for trained weights (default: beside the storage)")
    s.add_argument("--seed", type=int, default=0, help="sampler seed; trial seeds derive from it (default 0)")
    s.add_argument("--pruner", default="median", help=f"one of {', '.join(PRUNERS)} (default median)")
    s.add_argument("--sampler", default="tpe", help=f"one of {', '.join(SAMPLERS)} (default tpe)")
    s.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    s.add_argument("--eval-points", type=int, default=4, help="validation reports per epoch (default 4)")
    s.add_argument("--workers", type=int, default=1, help="parallel worker processes on this host (default 1)")
    s.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    s.add_argument("--warm-start", choices=["presets"], help="enqueue the seed models that fit the budget first")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (one line per trial only)")
    add_data_args(s)
    s.set_defaults(func=cmd_search)

    sp = sub.add_parser("space", help="how the search space uses a budget (2,000 sampled candidates)")
    sp.add_argument("--budget", type=positive_int, default=25_000)
    sp.add_argument("--samples", type=int, default=2000)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_space)

    lb = sub.add_parser("leaderboard", help="the study's best models, recomputed from the storage")
    add_study_args(lb)
    lb.add_argument("--top", type=int, default=10)
    lb.add_argument("--sort", default="accuracy", choices=["accuracy", "efficiency", "params"])
    lb.add_argument("--all", action="store_true", help="also list pruned, rejected and failed trials")
    lb.set_defaults(func=cmd_leaderboard)

    pr = sub.add_parser("presets", help="the seed architectures A-E with parameters and MACs")
    pr.set_defaults(func=cmd_presets)
    return parser


# --- helpers ---------------------------------------------------------------------------------
def storage_url(args: argparse.Namespace, workers: int = 1) -> str:
    from .search import default_storage_url
    return args.storage or os.environ.get("BUDGETNAS_STORAGE") or default_storage_url(args.study, workers)


def load_existing_study(args: argparse.Namespace):
    """Open a study that must already exist (leaderboard, report, export...)."""
    import optuna
    from .search import open_storage, redact
    url = storage_url(args)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise ConfigError(f"no study storage at {url}: run 'budgetnas search' first or pass --storage")
    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)] if hasattr(optuna, "get_all_study_summaries") \
        else optuna.get_all_study_names(storage)
    if args.study not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(f"no study {args.study!r} in {redact(url)} (studies there: {known}): pass --study NAME")
    return optuna.load_study(study_name=args.study, storage=storage)


def idle_cores(window: float = 0.3) -> float | None:
    """How many cores sat idle during the next ``window`` seconds (Linux /proc/stat), or
    None where that cannot be read."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(1, total1 - total0)


def default_threads(workers: int = 1) -> int:
    """Torch threads per worker when --threads is not given: cores / workers, but no more
    than the cores other processes leave idle right now (measured over 0.3 s; the 1-minute
    load average where /proc/stat cannot be read). Why: on 2 cores shared with other
    processes, a seed-B training step took 9-10 ms with 1 thread and 17-25 ms (median)
    with 2, whose OpenMP threads wait for each other whenever another process holds one
    of the cores; on idle cores 2 threads are faster."""
    cores = os.cpu_count() or 1
    idle = idle_cores()
    if idle is None:
        try:
            idle = cores - os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average on this platform
            idle = cores
    return max(1, min(cores // workers, int(idle / workers + 0.5)))


def set_threads(threads: int | None, workers: int = 1) -> int:
    import torch
    n = threads or default_threads(workers)
    torch.set_num_threads(n)
    return n


def tune_malloc() -> None:
    """Keep freed activation buffers in the process instead of returning them to the OS
    (glibc's default costs up to millions of page faults per epoch)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(M_TOP_PAD, 256 << 20)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


# --- commands ---------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    cfg = SearchConfig(budget=args.budget, epochs=args.epochs, trials=args.trials, timeout=args.timeout,
                       study=args.study, storage=args.storage, artifacts=args.artifacts, seed=args.seed,
                       pruner=args.pruner, sampler=args.sampler, workers=args.workers, device=args.device,
                       eval_points=args.eval_points, warm_start=args.warm_start, threads=args.threads,
                       data=data_config(args))
    from .space import Space, smallest_params
    floor = smallest_params(Space())
    if cfg.budget < floor:
        raise ConfigError(f"--budget {cfg.budget} is below the smallest network the space can build "
                          f"({floor} params): use --budget {floor} or more")
    if cfg.workers > 1:  # N processes on one study on this host
        from .workers import run_parallel
        return run_parallel(cfg, storage_url(args, cfg.workers), progress=not args.no_progress)
    from .runner import run_search
    return run_search(cfg, storage_url(args, cfg.workers), progress=not args.no_progress)


def cmd_space(args: argparse.Namespace) -> int:
    from .space import budget_use_summary
    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = budget_use_summary(args.budget, args.samples, args.seed)
    print(f"budget {s['budget']:,}: {s['within']}/{s['n']} sampled candidates within budget "
          f"({100 * s['share_within']:.1f}%); the others are rejected before they are built")
    if s["quantiles"]:
        q = s["quantiles"]
        print("budget use of those within: " + ", ".join(f"p{int(k * 100)} {100 * v:.0f}%" for k, v in q.items()))
        top = max(s["histogram"]) or 1
        for i, count in enumerate(s["histogram"]):
            print(f"  {10 * i:3d}-{10 * i + 10:3d}%  {count:5d}  {'#' * round(40 * count / top)}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from . import leaderboard as lb
    study = load_existing_study(args)
    entries = lb.build(study.get_trials(deepcopy=False), sort=args.sort, include_all=args.all)
    done = [e for e in entries if e.state == "complete"]
    shown = done[: args.top] + [e for e in entries if e.state != "complete"]
    print(lb.format_table(shown))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS
    from .space import macs, param_count
    print(f"{'preset':6}  {'params':>8}  {'MACs':>10}  claim")
    for name, p in PRESETS.items():
        print(f"{name:6}  {param_count(p.spec):>8,}  {macs(p.spec):>10,}  {p.claim}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_BAD_INPUT
        return args.func(args)
    except ConfigError as e:
        print(f"budgetnas: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("budgetnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
