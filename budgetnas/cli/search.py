"""The commands that search: ``search`` (one process, N workers on this host, or only
creating the study), ``worker`` (joining a study from any host) and ``space`` (how the
space uses a budget)."""
from __future__ import annotations

import argparse
import sys
import zlib

from ..config import ConfigError, DataConfig, SearchConfig, storage_url
from .parser import config_kwargs


def data_config(args: argparse.Namespace, command: str, defaults: dict | None = None) -> DataConfig:
    """The data flags given on ``command``'s line; ``defaults`` (an export's data record)
    fills in dataset, image size and channels not given; --val-size not given is the
    source's default (built-in datasets 5,000; own data 10%, at most 5,000)."""
    from ..data.sources import source_for
    given = config_kwargs(DataConfig, args, command)
    for key in ("dataset", "image_size", "channels"):
        if key not in given and (defaults or {}).get(key) is not None:
            given[key] = defaults[key]
    dataset = given.get("dataset", DataConfig.dataset)
    if "val_size" not in given:
        given["val_size"] = source_for(dataset).default_val_size
    return DataConfig(**given)


def search_config(args: argparse.Namespace) -> SearchConfig:
    given = config_kwargs(SearchConfig, args, "search")
    if args.trials is None and args.timeout is not None and not args.create_only:
        # like Optuna's optimize(timeout=...) without n_trials: a time-bounded search runs
        # trials until its time is up, not until a default count it never asked for
        given["trials"] = None
    cfg = SearchConfig(**given, data=data_config(args, "search"))
    if "workers" not in given and not args.create_only:
        cfg = gpu_workers(cfg)
    return cfg


def gpu_workers(cfg: SearchConfig) -> SearchConfig:
    """--workers not given and trials train on a GPU: GPU_WORKERS worker processes share
    it (one trial of a small net leaves most of a GPU idle), except on a SQLite storage,
    which is for one process (said)."""
    import dataclasses

    from ..config import GPU_WORKERS, env
    from ..run.runtime import resolve_device
    if resolve_device(cfg.device).type != "cuda":
        return cfg
    if (cfg.storage or env.storage() or "").startswith("sqlite"):
        print(f"note: one worker on this GPU: SQLite is for one process (pass --storage journal:FILE to run "
              f"{GPU_WORKERS} trials at once)", file=sys.stderr)
        return cfg
    return dataclasses.replace(cfg, workers=GPU_WORKERS)


def cmd_search(args: argparse.Namespace) -> int:
    from ..space import check_floors, for_data
    cfg = search_config(args)
    # a bad space file fails here, before any storage is touched; the data's own space is checked once loaded
    check_floors(for_data(cfg.space, 1, 28, 10), cfg.budget, cfg.max_macs, cfg.max_ram)
    url = storage_url(cfg.storage, cfg.study, cfg.workers)
    from ..study.storage import check_storage
    check_storage(url)  # in memory, a folder, another application's file: refused before the data is loaded
    if args.create_only:
        return create_study_only(cfg, url)
    if cfg.workers > 1:  # N processes on one study on this host
        from ..run.workers import run_parallel
        return run_parallel(cfg, url, progress=not args.no_progress, after_report=args.after_report)
    from ..run.terminal import run_in_terminal
    return run_in_terminal(cfg, url, progress=not args.no_progress, after_report=args.after_report)


def create_study_only(cfg: SearchConfig, url: str) -> int:
    """search --create-only: make the study (settings pinned, --trials stored as its
    target) so that workers started afterwards on any host need only its name and URL."""
    from ..run.engine import create_only
    from ..study.settings import TARGET_ATTR
    from ..study.urls import redact
    study, existed, lines = create_only(cfg, url)
    for line in lines:
        print(line)
    print(f"study {cfg.study!r} {'already in' if existed else 'created in'} {redact(url)}: budget {cfg.budget:,} params, "
          f"{cfg.epochs} epoch(s), target {study.user_attrs[TARGET_ATTR]} trained trials ({len(study.trials)} so far)")
    print(f"start workers on any host:  budgetnas worker --storage {redact(url)} --study {cfg.study}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Join an existing study: budget, epochs, data split, sampler, pruner... all come
    from the study's stored settings; only host-local things are flags."""
    from ..study.create import load_existing
    from ..study.objective import worker_name
    from ..study.settings import SETTINGS_ATTR, TARGET_ATTR, config_from_settings
    local = config_kwargs(SearchConfig, args, "worker")
    SearchConfig(**local, data=DataConfig(data_dir=args.data_dir))  # this host's flags, checked before the storage
    study, url = load_existing(args.study, args.storage)
    settings = study.user_attrs.get(SETTINGS_ATTR)
    config_from_settings(args.study, settings)  # a study not made by budgetnas fails here, before anything else
    trials = args.trials if args.trials is not None else study.user_attrs.get(TARGET_ATTR)
    if trials is None and args.timeout is None:
        raise ConfigError(f"study {args.study!r} stores no target number of trials: pass --trials N or --timeout S")
    local.update(trials=trials, storage=url, data_dir=args.data_dir)
    local.pop("study")
    cfg = config_from_settings(args.study, settings, **local)
    name = worker_name()
    # a sampler seed of its own per worker: identical seeds would propose identical trials
    worker_id = 1 + zlib.crc32(name.encode()) % 999_983
    print(f"worker {name} joins study {cfg.study!r}: budget {cfg.budget:,} params, {cfg.epochs} epoch(s), "
          f"until the study holds {trials if trials is not None else 'any number of'} trained trials")
    from ..run.terminal import run_in_terminal
    return run_in_terminal(cfg, url, progress=not args.no_progress and sys.stderr.isatty(), worker=worker_id,
                           after_report=args.after_report)


def cmd_space(args: argparse.Namespace) -> int:
    from ..space import budget_use_summary, check_floors, for_data, label, space_lines
    from ..study.create import quiet_optuna
    quiet_optuna()  # the sampling study's own log lines are not the user's business
    cfg = SearchConfig(**config_kwargs(SearchConfig, args, "space"))
    space = for_data(cfg.space, 1, 28, 10)
    if args.dataset:
        from ..data.load import load_data
        from ..study.settings import data_space
        data = load_data(DataConfig(**config_kwargs(DataConfig, args, "space"), val_size=None))
        space = data_space(data, cfg.space)
        print(f"input {space.in_channels}x{space.image_size}x{space.image_size}, {space.num_classes} classes, "
              f"{space.stages[0]}-{space.stages[1]} stages" + (", flips searched" if space.hflip else ""))
    print(f"space {label(cfg.space)}:")
    for line in space_lines(space):
        print(f"  {line}")
    check_floors(space, cfg.budget, cfg.max_macs, cfg.max_ram)
    s = budget_use_summary(cfg.budget, args.samples, cfg.seed, space, max_macs=cfg.max_macs, max_ram=cfg.max_ram)
    limits = ", ".join([f"budget {s['budget']:,}"] + [f"{name} {limit:,}" for name, limit in
                                                       (("max MACs", cfg.max_macs), ("max RAM bytes", cfg.max_ram))
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
