"""A search run in the terminal: set-up messages, progress bars, a line per trial, the
leaderboard at the end. The Optuna calls themselves live in search.py and storage.py."""
from __future__ import annotations

import sys
import time
import warnings

from .config import JOURNAL_PREFIX, SearchConfig


def event_line(e) -> str:
    """The line printed for a finished trial (a search.TrialEvent); workers.py prints it
    too, tagged with the worker."""
    state = "rerun" if e.state == "complete" and e.rerun_of is not None else e.state
    head = f"trial {e.number:>4} {state:<9} {e.params:>8,} params ({100 * e.params / e.budget:5.1f}%)"
    if e.state == "complete":
        of = f"  (trial {e.rerun_of}, new seed)" if e.rerun_of is not None else ""
        return f"{head}  val {100 * e.val_acc:.2f}%  test {100 * e.test_acc:.2f}%  {e.seconds:.1f}s{of}"
    if e.state == "pruned":
        acc = f"  val {100 * e.val_acc:.2f}%" if e.val_acc is not None else ""
        return f"{head}  {e.reason}{acc}  {e.seconds:.1f}s"
    if e.reason and e.reason != "over budget":  # over the MAC or RAM budget: the reason says which
        return f"{head}  {e.reason}: never built"
    return f"{head}  over the {e.budget:,} budget: never built"


def check_budget_floor(budget: int, data) -> None:
    """Refuse a budget below the smallest network the data's space can build."""
    from .config import ConfigError
    from .search import data_space
    from .space import smallest_params
    floor = smallest_params(data_space(data))
    if budget < floor:
        raise ConfigError(f"--budget {budget} is below the smallest network the space can build for this data "
                          f"({floor} params): use --budget {floor} or more")


def data_notes(info: dict) -> list[str]:
    """What was done to the data, said once: its shape and identity for own data, then
    each conversion or held-out split."""
    lines = []
    if info.get("source") not in (None, "builtin"):
        c, h, w = info["shape"]
        lines.append(f"data: {len(info['classes'])} classes, images {c}x{h}x{w}, fingerprint {info['fingerprint']}"
                     + (" (decoded cache)" if info.get("cached") else ""))
    return lines + [f"note: {n}" for n in info.get("notes", [])]


def run_search(cfg: SearchConfig, url: str, progress: bool = True, worker: int = 0, quiet: bool = False) -> int:
    import optuna
    from tqdm import tqdm

    from . import leaderboard as lb
    from .data import load_data
    from .runtime import preload, resolve_device, set_threads, tune_malloc
    from .search import (Objective, create_or_load_study, enqueue_presets, optimize, recover_stale, retried,
                         trained_count)
    from .storage import STALE_RETRIES, artifacts_dir, check_writable_dir, open_storage, redact

    started = time.monotonic()  # --timeout counts from here: loading the data is part of the search
    # ERROR: a trial ended by Ctrl-C is a line of ours, not Optuna's warning with a traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    tune_malloc()
    threads = set_threads(cfg.threads, cfg.workers)
    device = resolve_device(cfg.device)
    weights_dir = artifacts_dir(cfg, url)
    check_writable_dir(weights_dir)
    data = load_data(cfg.data).to(device)  # bad data fails here, before any storage is touched
    check_budget_floor(cfg.budget, data)
    preload()
    # heartbeats on every RDB storage (SQLite too): a trial whose process was killed is
    # found stale and retried; the journal storage has none
    heartbeat = not url.startswith(JOURNAL_PREFIX)
    storage = open_storage(url, heartbeat=heartbeat)
    study = create_or_load_study(cfg, storage, worker, data)
    out = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    out(f"study {cfg.study!r} in {redact(url)}  ({len(study.trials)} trials so far)")
    for number in recover_stale(study):
        again = ("queued again" if retried(study, number) else
                 f"not queued again: its parameters were tried {1 + STALE_RETRIES} times")
        out(f"trial {number} was left running by a process that died: marked failed and {again}")
    out(f"watch it live:  budgetnas dashboard --study {cfg.study} --storage {redact(url)}")
    out(f"data: {data.info['dataset']} train {data.info['train_size']:,} / val {data.info['val_size']:,} / "
        f"test {data.info['test_size']:,}; device {device}, {threads} threads; budget {cfg.budget:,} params")
    for line in data_notes(data.info):
        out(line)
    if cfg.warm_start == "presets":
        names = enqueue_presets(study, cfg.budget, data)
        out(f"warm start: enqueued presets {', '.join(names) or '(none fit or already run)'}")

    total = cfg.trials or 0
    search_bar = tqdm(total=total or None, initial=min(total, trained_count(study)), desc="search", unit="trial",
                      position=0, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    trial_bar = tqdm(total=0, desc="trial", unit="step", position=1, disable=not progress, leave=False,
                     file=sys.stderr, dynamic_ncols=True)

    def on_progress(step: int, steps: int, acc: float | None) -> None:
        if trial_bar.total != steps or step < trial_bar.n:
            trial_bar.reset(total=steps)
        trial_bar.update(step - trial_bar.n)
        if acc is not None:
            trial_bar.set_postfix_str(f"val {100 * acc:.2f}%")

    def say(line: str) -> None:
        tqdm.write(line) if progress else out(line)

    def on_event(e) -> None:
        say(event_line(e))
        trial_bar.reset(total=0)

    def after_trial() -> None:
        search_bar.n = min(total, trained_count(study)) if total else search_bar.n + 1
        search_bar.refresh()

    objective = Objective(cfg, data, device, weights_dir, on_event, on_progress if progress else None)
    t0 = time.perf_counter()
    interrupted = False
    try:
        optimize(study, objective, cfg, after_trial, settle=heartbeat, note=say, started=started)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        trial_bar.close()
        search_bar.close()
    entries = lb.build(study.get_trials(deepcopy=False))
    out(f"\n{len(study.trials)} trials in the study; this run took {time.perf_counter() - t0:.0f}s")
    if entries:
        out(lb.format_table(entries[:10]))
    else:
        out("no trained trial yet")
    if interrupted:
        out("interrupted: the running trial is marked failed; rerun the same command to resume")
        return 130
    return 0
