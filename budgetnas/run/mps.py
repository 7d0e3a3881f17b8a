"""Several trials on one GPU: NVIDIA's Multi-Process Service for ``--workers N --device cuda``.

Without MPS the GPU runs one process's kernels at a time (time slices); a small net's
step leaves most of the GPU idle, so N workers' trials barely overlap. With MPS their
kernels share the GPU at once. Where ``nvidia-cuda-mps-control`` is installed and no
MPS server is set up already, start() runs a private one (its pipe and log folder a new
temporary folder, named to the workers through CUDA_MPS_PIPE_DIRECTORY and
CUDA_MPS_LOG_DIRECTORY, which spawned workers inherit), checks that a process can use
CUDA through it, and stop() ends it. Anything short of that: no MPS, and the line says
why. $BUDGETNAS_MPS=0 turns it off. No torch here: the parent must not touch CUDA
before the daemon runs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable

from ..config import env

CONTROL = "nvidia-cuda-mps-control"
PROBE = "import torch; torch.zeros(1, device='cuda').add_(1); torch.cuda.synchronize()"


def _run(args: list[str], environ: dict, stdin: str | None = None, timeout: float = 60) -> bool:
    try:
        return subprocess.run(args, input=stdin, env=environ, capture_output=True, text=True,
                              timeout=timeout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def start(workers: int) -> tuple[str, Callable[[], None]]:
    """Start a private MPS server for ``workers`` processes on one GPU. Returns (what to
    say about it, how to stop it: call once the workers have exited)."""
    nothing = lambda: None
    if workers < 2:
        return "", nothing
    if not env.mps():
        return "NVIDIA MPS off ($BUDGETNAS_MPS=0): the workers' kernels take turns on the GPU", nothing
    if os.environ.get("CUDA_MPS_PIPE_DIRECTORY"):
        return f"NVIDIA MPS: using the server at {os.environ['CUDA_MPS_PIPE_DIRECTORY']}", nothing
    if shutil.which(CONTROL) is None:
        return f"NVIDIA MPS not available ({CONTROL} is not installed): the workers' kernels take turns on the GPU", \
            nothing
    folder = tempfile.mkdtemp(prefix="budgetnas-mps-")
    environ = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": folder, "CUDA_MPS_LOG_DIRECTORY": folder}

    def stop() -> None:
        _run([CONTROL], environ, stdin="quit\n", timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    if not _run([CONTROL, "-d"], environ, timeout=30):
        shutil.rmtree(folder, ignore_errors=True)
        return "NVIDIA MPS could not be started: the workers' kernels take turns on the GPU", nothing
    if not _run([sys.executable, "-c", PROBE], environ, timeout=120):
        stop()
        return "NVIDIA MPS started but CUDA failed through it: not used; the workers' kernels take turns", nothing
    os.environ.update(CUDA_MPS_PIPE_DIRECTORY=folder, CUDA_MPS_LOG_DIRECTORY=folder)

    def stop_and_forget() -> None:
        stop()
        for key in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
            os.environ.pop(key, None)
    return f"NVIDIA MPS on: {workers} workers run their kernels on the GPU at once", stop_and_forget
