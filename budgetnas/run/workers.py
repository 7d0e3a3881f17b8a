"""``budgetnas search --workers N``: N worker processes on one study on this host.

On CPU the parent loads and checks the data and forks N processes that inherit it
(with CUDA, N spawned processes import torch and load the data while the parent checks
it). It then creates the study once (a journal file by default: safe for several
processes on one host, unlike SQLite) and lets them go. Each loads the study with a
sampler seed of its own, trains with cores / N torch threads (or --threads; the last
workers left take the threads of those that finished, see runtime.Cores), and sends a message
per finished trial back over a queue; the parent prints them, keeps the progress bars
and prints the leaderboard at the end. --trials stays the number of trained trials the
whole study should hold.

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
from datetime import datetime

from ..config import JOURNAL_PREFIX, ConfigError, SearchConfig, env
from . import mps
from .runtime import Cores, default_threads, end_openmp_threads, pin_to_cores

JOIN_SECONDS = 60  # after Ctrl-C, how long workers get to mark their trials failed and exit


def worker_threads(cfg: SearchConfig) -> int:
    """torch threads per worker: --threads, else cores / workers, fewer if the cores are
    busy (runtime.default_threads)."""
    return cfg.threads or default_threads(cfg.workers)


def _heartbeats(url: str) -> bool:
    """Trial heartbeats for workers: on PostgreSQL (the journal has none; SQLite is refused)."""
    return not url.startswith((JOURNAL_PREFIX, "sqlite"))


# --- the worker process --------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: SIGINT this process when its parent dies (it then stops like on Ctrl-C)."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


def _worker_main(cfg: SearchConfig, url: str, index: int, threads: int, messages, go, progress: bool,
                 started: datetime, parent: int, active, data=None, after_report=None) -> None:
    """Entry point of worker ``index`` (forked with the parent's ``data``, or spawned).
    Puts (kind, index, ...) tuples on ``messages``."""
    os.setpgrp()  # the terminal's Ctrl-C goes to the parent only; it forwards one SIGINT
    # SIGINT -> KeyboardInterrupt even if it was ignored where the parent was started (say, '&' in a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the parent blocked it while starting us
    _die_with_parent()
    code = 0
    try:
        if os.getppid() != parent:  # the parent died before prctl took effect
            raise KeyboardInterrupt
        # before torch starts its thread pool (spawned: before torch loads, as the pool is
        # sized from the environment): its threads inherit this thread's CPU affinity
        os.environ["OMP_NUM_THREADS"] = str(threads)
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        cores = Cores(active, threads, cfg.workers, cpus, pin_to_cores(index, threads, cfg.workers) is not None)
        code = _work(cfg, url, index, cores, messages, go, progress, started, data, after_report)
    except KeyboardInterrupt:
        code = 130
    except ConfigError as e:
        messages.put(("error", index, str(e)))
        code = 2
    except BaseException as e:  # noqa: BLE001 - the parent reports it; the traceback goes to stderr
        traceback.print_exc()
        messages.put(("error", index, f"{type(e).__name__}: {e}"))
        code = 1
    with active.get_lock():
        active.value -= 1
    messages.put(("exit", index, code))
    messages.close()
    messages.join_thread()
    sys.exit(code)


def _work(cfg, url, index, cores, messages, go, progress, started, data, after_report) -> int:
    from ..config import artifacts_dir
    from ..data.load import load_data
    from ..results.dashboard import Publisher
    from ..study.create import create_or_load_study, quiet_optuna
    from ..study.objective import Objective
    from ..study.optimize import optimize
    from ..study.storage import open_storage
    from .runtime import preload, resolve_device, set_threads, tune_malloc

    quiet_optuna()
    tune_malloc()
    set_threads(cores.threads)
    device = resolve_device(cfg.device)
    data = (data if data is not None else load_data(cfg.data)).to(device)
    preload()  # inherited where forked
    go.wait()  # the parent has checked the data and created the study (or it stops us first)
    heartbeat = _heartbeats(url)
    storage = open_storage(url, heartbeat=heartbeat)
    study = create_or_load_study(cfg, storage, worker=index, data=data)  # exists: loads it with this worker's seed
    last = [0.0]

    def on_progress(step: int, steps: int, acc: float | None) -> None:  # every 20 steps and at reports
        cores.update()
        now = time.monotonic()
        if progress and (acc is not None or now - last[0] > 0.2 or step == steps):  # a few messages a second
            last[0] = now
            messages.put(("progress", index, step, steps, acc))

    objective = Objective(cfg, data, device, artifacts_dir(cfg.study, url, cfg.artifacts),
                          lambda e: messages.put(("event", index, e)), on_progress, after_report=after_report)
    # the first worker alone queues and runs the re-runs of the best candidates (two would
    # queue the same ones twice); the others end when the target is reached
    optimize(study, objective, cfg, lambda: messages.put(("trial", index)), running_since=started, settle=heartbeat,
             confirm=index == 0, publish=Publisher())
    return 0


# --- the parent ------------------------------------------------------------------------------
def run_parallel(cfg: SearchConfig, url: str, progress: bool = True, after_report=None) -> int:
    """Run cfg.workers worker processes on one study; print their trials and the leaderboard.
    Exit status: 0 done, 1 a worker failed, 130 interrupted."""
    import multiprocessing

    from ..study.create import quiet_optuna
    from ..study.storage import redact
    from .engine import load_checked
    from .runtime import preload, resolve_device

    if url.startswith("sqlite"):
        raise ConfigError(f"--workers {cfg.workers}: SQLite ({redact(url)}) is not safe for several processes: "
                          f"leave out --storage (a journal file is used) or pass journal:FILE or postgresql://...")
    quiet_optuna()
    threads = worker_threads(cfg)  # before the workers load the cores
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    start = env.worker_start()
    data = None
    if device.type == "cpu" and start != "spawn":
        # the workers are forked once the data is loaded: they inherit torch and the data
        # (no import or load of their own; the pages are shared), so the first trials start
        # sooner than with spawned workers (bench.py --mode search)
        data = load_checked(cfg)  # bad data fails here, before any worker or storage exists
        preload()
    # CUDA cannot be used in a forked child, nor OpenMP where its threads cannot be ended:
    # spawned workers import torch and load the data meanwhile, while this process checks it
    fork = data is not None and end_openmp_threads()
    shared, stop_mps = ("", lambda: None) if device.type != "cuda" else mps.start(cfg.workers)  # before they start
    held = [data]
    del data  # once the workers have started, the parent drops it (they hold their own copy-on-write view)
    try:
        return _run_workers(cfg, url, progress, after_report, multiprocessing.get_context("fork" if fork else "spawn"),
                            threads, device, held, fork, shared, t0)
    finally:
        stop_mps()


def _run_workers(cfg, url, progress, after_report, ctx, threads, device, held, fork, shared, t0) -> int:
    """run_parallel once the start method is chosen; ``held`` holds the data loaded
    (or None), emptied once the workers have their own."""
    from ..study.create import create_or_load_study
    from ..study.schedule import trained_count
    from ..study.storage import open_storage
    from .engine import end_lines, load_checked, start_lines, warm_start_line

    workers = _start(ctx, cfg, url, threads, progress, held[0] if fork else None, after_report)
    total = cfg.trials or 0
    try:
        loaded = held.pop() or load_checked(cfg)  # bad data fails before the storage
        storage = open_storage(url, heartbeat=_heartbeats(url))
        study = create_or_load_study(cfg, storage, data=loaded)  # once, before any worker opens it
        compute = f"{cfg.workers} worker processes x {threads} threads ({workers['how']})"
        if shared:
            compute += f"; {shared}"
        for line in start_lines(cfg, url, study, loaded.info, device, compute) + warm_start_line(study, cfg, loaded):
            print(line, flush=True)
        del loaded
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
        interrupted, failed = _supervise(cfg, workers, progress, study, total)
    for line in end_lines(study, time.perf_counter() - t0, interrupted, several=True):
        print(line, flush=True)
    for line in failed:
        print(line, file=sys.stderr)
    return 130 if interrupted else 1 if failed else 0


def _start(ctx, cfg: SearchConfig, url: str, threads: int, progress: bool, data=None, after_report=None) -> dict:
    """Start the workers (forked with ``data``, or spawned to load it themselves); they
    wait for ``go`` before opening the study."""
    messages, go = ctx.Queue(), ctx.Event()
    active = ctx.Value("i", cfg.workers)  # workers still running trials (see Cores)
    started = datetime.now()  # trials running from before this (a killed run's) never count as running
    procs = []
    # SIGINT is blocked while starting: a Ctrl-C now reaches us (pending) and not a half-started worker
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for i in range(cfg.workers):
            p = ctx.Process(target=_worker_main, name=f"budgetnas-worker-{i}",
                            args=(cfg, url, i, threads, messages, go, progress, started, os.getpid(), active, data,
                                  after_report))
            p.start()
            procs.append(p)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    how = {"fork": "forked with the data", "spawn": "spawned"}.get(ctx.get_start_method(), ctx.get_start_method())
    # all kept while the workers run: a spawned worker rebuilds each queue, event and value
    # from its name, which is gone once this process drops it
    return {"procs": procs, "messages": messages, "go": go, "active": active, "how": how}


def _stop_unstarted(workers: dict) -> None:
    """Stop workers that have not been given ``go`` (they have not touched the storage)."""
    for p in workers["procs"]:
        p.terminate()
    for p in workers["procs"]:
        p.join()


def _supervise(cfg, workers, progress, study, total):
    """Relay the workers' messages until all have exited; returns (interrupted, lines
    about failed workers)."""
    from ..study.schedule import trained_count
    from .terminal import Bars, event_line, say

    procs, messages = workers["procs"], workers["messages"]
    bars = Bars(progress, total, trained_count(study), [f"worker {i}" for i in range(cfg.workers)])
    exits: dict[int, int] = {}
    errors: dict[int, str] = {}
    interrupted = escalated = False
    deadline = None

    def handle(msg) -> None:
        kind, i = msg[0], msg[1]
        if kind == "event":
            say(f"{event_line(msg[2])}  [worker {i}]", progress)
            bars.trial_ended(i)
        elif kind == "progress":
            bars.step(i, *msg[2:])
        elif kind == "trial":
            bars.trained(trained_count(study))
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
    bars.close()
    failed = []
    for i, p in enumerate(procs):
        code = exits.get(i, p.exitcode)
        if code not in (0, 130) or (code == 130 and not interrupted):
            failed.append(f"budgetnas: worker {i} failed (exit {code}): {errors.get(i, 'see the messages above')}")
    return interrupted, failed
