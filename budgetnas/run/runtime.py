"""Process runtime: how many torch threads a process gets (and a worker, as others
finish), pinning workers to cores, the allocator, torch's OpenMP thread team before a
fork, the one-time torch import, and the device. Each process sets these once, before
its first trial.

torch is imported inside the functions: a spawned worker sets OMP_NUM_THREADS before
torch (and its OpenMP runtime) loads, and ``budgetnas --help`` stays instant.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:
    import torch


# --- threads ------------------------------------------------------------------------------
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
    load average where /proc/stat cannot be read). Why: on cores shared with other
    processes, OpenMP threads wait for each other whenever another process holds one of
    the cores, and one thread per free core is faster (docs/PERFORMANCE.md)."""
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


class Cores:
    """A worker's torch threads: its share (``threads``) while all workers run; once some
    have finished, the threads all workers were given (workers x threads, never more than
    the CPUs ``cpus`` this process may use) are shared among the rest. So the last trials
    of a search, run by the last worker left, use every core instead of leaving the
    others idle. Checked between training steps; only ever grows."""

    def __init__(self, active, threads: int, workers: int, cpus: set[int], pinned: bool):
        self.active, self.threads, self.total = active, threads, threads * workers
        self.cpus, self.pinned, self.now = cpus, pinned, threads

    def update(self) -> None:
        want = min(max(self.threads, self.total // max(1, self.active.value)), len(self.cpus))
        if want <= self.now:
            return
        import torch
        if self.pinned:  # the threads torch starts from now on inherit this affinity
            os.sched_setaffinity(0, self.cpus)
        torch.set_num_threads(want)
        self.now = want


# --- allocator and OpenMP -----------------------------------------------------------------
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


def end_openmp_threads() -> bool:
    """End the thread team of torch's OpenMP runtime (GNU libgomp) in this process, so
    that a child forked next starts its own: a child forked while the team exists hangs
    at its first parallel op (measured with torch 2.13). OpenMP 5.0's
    omp_pause_resource_all(omp_pause_hard) does it; the next parallel op here starts a
    new team. False (fork is not safe) where torch's runtime is not libgomp or has no
    such call."""
    import ctypes
    import re
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return False
    runtimes = set(re.findall(r"/\S*/lib[gi]omp[^/\s]*\.so[^/\s]*", maps))
    if len(runtimes) != 1 or "libgomp" not in next(iter(runtimes)):
        return False
    try:
        return ctypes.CDLL(runtimes.pop()).omp_pause_resource_all(2) == 0  # 2: omp_pause_hard
    except (OSError, AttributeError):
        return False


# --- torch --------------------------------------------------------------------------------
def preload() -> None:
    """Import now what torch.optim imports when it makes its first optimizer (torch._dynamo,
    about a second of one core), so that a process pays it once before its first trial
    is timed and workers forked afterwards inherit it."""
    import torch._dynamo  # noqa: F401


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for --device: auto (CUDA where visible, else CPU), cpu or cuda."""
    import torch
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch: use --device cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")
