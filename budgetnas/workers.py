"""``budgetnas search --workers N``: N worker processes on one study on this host.

The parent starts N spawned processes, checks the data and creates the study once (a
journal file by default: safe for several processes on one host, unlike SQLite), then
lets them go (they import torch and load the data meanwhile). Each loads the study with
a sampler seed of its own, trains with cores / N torch threads (or --threads), and sends a message per finished trial back over a queue; the parent
prints them, keeps the progress bars and prints the leaderboard at the end. --trials
stays the number of trained trials the whole study should hold.

Ctrl-C: workers run in their own process group, so a terminal's Ctrl-C reaches only the
parent, which forwards one SIGINT to each worker; Optuna marks each running trial failed
and the worker exits. A worker whose parent dies gets SIGINT too (Linux).

Nothing here imports torch at module level: a spawned worker sets its thread count in
the environment before torch (and its OpenMP runtime) is loaded.
"""
from __future__ import annotations

import os
import queue as queue_mod
import signal
import sys
import time
import traceback
import warnings
from datetime import datetime

from .config import ConfigError, SearchConfig

JOIN_SECONDS = 60  # after Ctrl-C, how long workers get to mark their trials failed and exit


def worker_threads(cfg: SearchConfig) -> int:
    """torch threads per worker: --threads, else cores / workers, fewer if the cores are
    busy (cli.default_threads)."""
    from .cli import default_threads
    return cfg.threads or default_threads(cfg.workers)


def _quiet_optuna() -> None:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial ended by Ctrl-C is our line, not a traceback
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


# --- the worker process --------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: SIGINT this process when its parent dies (it then stops like on Ctrl-C)."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


def pin_to_cores(index: int, threads: int, workers: int) -> set[int] | None:
    """Worker ``index`` keeps to cores of its own when the workers' threads exactly fill
    the CPUs this process may use (e.g. --workers 2 with 1 thread each on 2 cores), so
    the kernel does not move them between cores and their caches. Call before torch
    starts its thread pool. Returns the cores, or None where nothing was changed."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if workers * threads != len(cpus) or workers < 2:
            return None
        mine = set(cpus[(index % workers) * threads:(index % workers + 1) * threads])
        os.sched_setaffinity(0, mine)
        return mine
    except (AttributeError, OSError):  # no affinity API on this platform
        return None


def _worker_main(cfg: SearchConfig, url: str, index: int, threads: int, messages, go, progress: bool,
                 started: datetime, parent: int) -> None:
    """Entry point of worker ``index`` (spawned). Puts (kind, index, ...) tuples on ``messages``."""
    os.setpgrp()  # the terminal's Ctrl-C goes to the parent only; it forwards one SIGINT
    # SIGINT -> KeyboardInterrupt even if it was ignored where the parent was started (say, '&' in a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the parent blocked it while starting us
    _die_with_parent()
    code = 0
    try:
        if os.getppid() != parent:  # the parent died before prctl took effect
            raise KeyboardInterrupt
        # before torch loads: its OpenMP pool is sized from the environment, and its
        # threads inherit this thread's CPU affinity
        os.environ["OMP_NUM_THREADS"] = str(threads)
        pin_to_cores(index, threads, cfg.workers)
        code = _work(cfg, url, index, threads, messages, go, progress, started)
    except KeyboardInterrupt:
        code = 130
    except ConfigError as e:
        messages.put(("error", index, str(e)))
        code = 2
    except BaseException as e:  # noqa: BLE001 - the parent reports it; the traceback goes to stderr
        traceback.print_exc()
        messages.put(("error", index, f"{type(e).__name__}: {e}"))
        code = 1
    messages.put(("exit", index, code))
    messages.close()
    messages.join_thread()
    sys.exit(code)


def _work(cfg, url, index, threads, messages, go, progress, started) -> int:
    _quiet_optuna()
    import optuna  # noqa: F401

    from .cli import set_threads, tune_malloc
    from .data import load_data
    from .search import Objective, artifacts_dir, create_or_load_study, open_storage, optimize
    from .train import resolve_device

    tune_malloc()
    set_threads(threads)
    device = resolve_device(cfg.device)
    data = load_data(cfg.data).to(device)
    go.wait()  # the parent has checked the data and created the study (or it stops us first)
    heartbeat = not url.startswith(("journal:", "sqlite"))
    storage = open_storage(url, heartbeat=heartbeat)
    study = create_or_load_study(cfg, storage, worker=index)  # exists: loads it with this worker's sampler seed
    last = [0.0]

    def on_progress(step: int, steps: int, acc: float | None) -> None:
        now = time.monotonic()
        if acc is not None or now - last[0] > 0.2 or step == steps:  # a few messages a second at most
            last[0] = now
            messages.put(("progress", index, step, steps, acc))

    objective = Objective(cfg, data, device, artifacts_dir(cfg, url), lambda e: messages.put(("event", index, e)),
                          on_progress if progress else None)
    optimize(study, objective, cfg, lambda: messages.put(("trial", index)), running_since=started, settle=heartbeat)
    return 0


# --- the parent ------------------------------------------------------------------------------
def run_parallel(cfg: SearchConfig, url: str, progress: bool = True) -> int:
    """Run cfg.workers worker processes on one study; print their trials and the leaderboard.
    Exit status: 0 done, 1 a worker failed, 130 interrupted."""
    import multiprocessing

    from tqdm import tqdm

    from . import leaderboard as lb
    from .data import load_data
    from .runner import _event_line
    from .search import JOURNAL_PREFIX, create_or_load_study, enqueue_presets, open_storage, redact, trained_count
    from .train import resolve_device

    if url.startswith("sqlite"):
        raise ConfigError(f"--workers {cfg.workers}: SQLite ({redact(url)}) is not safe for several processes: "
                          f"leave out --storage (a journal file is used) or pass journal:FILE or postgresql://...")
    _quiet_optuna()
    threads = worker_threads(cfg)  # before the workers load the cores
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    # the workers start now, importing torch and loading the data while this process checks
    # the data and creates the study; they touch the storage only after `go` (~1.5 s saved)
    workers = _start(multiprocessing.get_context("spawn"), cfg, url, threads, progress)
    total = cfg.trials or 0
    try:
        info = load_data(cfg.data).info  # bad data fails here, before any storage is touched
        storage = open_storage(url, heartbeat=not url.startswith((JOURNAL_PREFIX, "sqlite")))
        study = create_or_load_study(cfg, storage)  # once, before any worker opens it
        print(f"study {cfg.study!r} in {redact(url)}  ({len(study.trials)} trials so far)")
        print(f"watch it live:  budgetnas dashboard --study {cfg.study} --storage {redact(url)}")
        print(f"data: {info['dataset']} train {info['train_size']:,} / val {info['val_size']:,} / "
              f"test {info['test_size']:,}; device {device}; budget {cfg.budget:,} params; "
              f"{cfg.workers} worker processes x {threads} threads")
        if cfg.warm_start == "presets":
            names = enqueue_presets(study, cfg.budget)
            print(f"warm start: enqueued presets {', '.join(names) or '(none fit or already run)'}")
        done = bool(total and trained_count(study) >= total)
    except BaseException:
        _stop_unstarted(workers)
        raise
    failed: list[str] = []
    interrupted = False
    if done:
        _stop_unstarted(workers)
    else:
        workers["go"].set()
        interrupted, failed = _supervise(cfg, workers, progress, study, total, tqdm, _event_line, trained_count)
    entries = lb.build(study.get_trials(deepcopy=False))
    print(f"\n{len(study.trials)} trials in the study; this run took {time.perf_counter() - t0:.0f}s")
    print(lb.format_table(entries[:10]) if entries else "no trained trial yet")
    for line in failed:
        print(line, file=sys.stderr)
    if interrupted:
        print("interrupted: running trials are marked failed; rerun the same command to resume")
        return 130
    return 1 if failed else 0


def _start(ctx, cfg: SearchConfig, url: str, threads: int, progress: bool) -> dict:
    """Spawn the workers; they wait for ``go`` before opening the study."""
    messages, go = ctx.Queue(), ctx.Event()
    started = datetime.now()  # trials running from before this (a killed run's) never count as running
    procs = []
    # SIGINT is blocked while starting: a Ctrl-C now reaches us (pending) and not a half-started worker
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for i in range(cfg.workers):
            p = ctx.Process(target=_worker_main, name=f"budgetnas-worker-{i}",
                            args=(cfg, url, i, threads, messages, go, progress, started, os.getpid()))
            p.start()
            procs.append(p)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return {"procs": procs, "messages": messages, "go": go}


def _stop_unstarted(workers: dict) -> None:
    """Stop workers that have not been given ``go`` (they have not touched the storage)."""
    for p in workers["procs"]:
        p.terminate()
    for p in workers["procs"]:
        p.join()


def _supervise(cfg, workers, progress, study, total, tqdm, event_line, trained_count):
    """Relay the workers' messages until all have exited; returns (interrupted, lines
    about failed workers)."""
    procs, messages = workers["procs"], workers["messages"]
    search_bar = tqdm(total=total or None, initial=min(total, trained_count(study)), desc="search", unit="trial",
                      position=0, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    bars = [tqdm(total=0, desc=f"worker {i}", unit="step", position=1 + i, disable=not progress, leave=False,
                 file=sys.stderr, dynamic_ncols=True) for i in range(cfg.workers)]
    exits: dict[int, int] = {}
    errors: dict[int, str] = {}
    interrupted = escalated = False
    deadline = None

    def handle(msg) -> None:
        kind, i = msg[0], msg[1]
        if kind == "event":
            line = f"{event_line(msg[2])}  [worker {i}]"
            tqdm.write(line, file=sys.stdout) if progress else print(line, flush=True)
            bars[i].reset(total=0)
        elif kind == "progress":
            step, steps, acc = msg[2:]
            if bars[i].total != steps or step < bars[i].n:
                bars[i].reset(total=steps)
            bars[i].update(step - bars[i].n)
            if acc is not None:
                bars[i].set_postfix_str(f"val {100 * acc:.2f}%")
        elif kind == "trial":
            search_bar.n = min(total, trained_count(study)) if total else search_bar.n + 1
            search_bar.refresh()
        elif kind == "error":
            errors[i] = msg[2]
        elif kind == "exit":
            exits[i] = msg[2]

    while True:
        try:
            alive = [p for p in procs if p.is_alive()]
            if not alive:
                while True:  # what the last worker sent before exiting
                    try:
                        handle(messages.get_nowait())
                    except queue_mod.Empty:
                        break
                break
            if deadline is not None and time.monotonic() > deadline:  # SIGTERM, then SIGKILL 5 s later
                for p in alive:
                    p.kill() if escalated else p.terminate()
                escalated, deadline = True, time.monotonic() + 5
            try:
                handle(messages.get(timeout=0.2))
            except queue_mod.Empty:
                pass
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl-C: stop waiting for the workers
                deadline = time.monotonic()
                continue
            interrupted = True
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGINT)
            deadline = time.monotonic() + JOIN_SECONDS
    for p in procs:
        p.join()
    for bar in (*bars, search_bar):
        bar.close()
    failed = []
    for i, p in enumerate(procs):
        code = exits.get(i, p.exitcode)
        if code not in (0, 130) or (code == 130 and not interrupted):
            failed.append(f"budgetnas: worker {i} failed (exit {code}): {errors.get(i, 'see the messages above')}")
    return interrupted, failed
