"""Helpers for tests that run the real CLI in separate processes (crash, resume, bad
input, workers): the command line, an environment that imports this checkout, storage
polling, holding a trial mid-training (hold.TrialHold), file fingerprints and the
check that a killed trial was retried."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("BUDGETNAS_OFFLINE", "1")
    env.update(extra)
    return env


def budgetnas(*args: str) -> list[str]:
    return [sys.executable, "-m", "budgetnas", *map(str, args)]


def run(args: list[str], cwd: Path | str | None = None, env: dict | None = None, timeout: float = 300):
    return subprocess.run(args, cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


STARTED: list[subprocess.Popen] = []  # by start(), for kill_started()


def start(args: list[str], cwd: Path | str | None = None, env: dict | None = None,
          out: Path | None = None) -> subprocess.Popen:
    """Start a process as a terminal would (SIGINT not ignored, whatever the parent
    inherited); stdout and stderr go to files (pipes could fill up and block it)."""
    out = out or Path(cwd or ".") / "proc"
    proc = subprocess.Popen(args, cwd=cwd, env=env or cli_env(), text=True,
                            stdout=open(f"{out}.out", "w"), stderr=open(f"{out}.err", "w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    STARTED.append(proc)
    return proc


def kill_started() -> None:
    """Kill every process start() started that still runs: a test that failed half-way
    would otherwise leave one waiting for good on a held trial."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def wait_for(condition: Callable[[], object], timeout: float, proc: subprocess.Popen | None = None,
             what: str = "condition", poll: float = 0.1):
    """Poll until condition() is truthy (and return it); fail if the process ends first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            got = condition()
        except Exception:  # the storage may not exist yet or be mid-write
            got = None
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- a trial held mid-training (hold.TrialHold) ---------------------------------------------
def with_hold(cmd: list[str], folder: Path, at: int | str = 1) -> list[str]:
    """A ``budgetnas(...)`` command line whose every trained trial waits after validation
    report ``at`` (default 1; "last": its last one) until the test releases it
    (tests/hold.py wires the hook into the CLI)."""
    assert cmd[1:3] == ["-m", "budgetnas"], cmd
    return [cmd[0], str(ROOT / "tests" / "hold.py"), str(folder), str(at), *cmd[3:]]


def held(folder: Path, timeout: float = 300, proc: subprocess.Popen | None = None,
         seen: set[int] | frozenset = frozenset()) -> tuple[int, int]:
    """Wait until a trial not in ``seen`` is held; returns (trial number, pid holding it)."""
    folder = Path(folder)

    def new() -> tuple[int, int] | None:
        for f in sorted(folder.glob("held-*")):
            number = int(f.name.split("-", 1)[1])
            if number not in seen:
                return number, int(f.read_text())
        return None

    return wait_for(new, timeout, proc, f"a trial held in {folder}")


def release(folder: Path, number: int | None = None) -> None:
    """Let held trial ``number`` go on (None: every trial, now and later)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / ("release" if number is None else f"release-{number}")).touch()


def load_study(url: str, name: str):
    """The study as stored (opened the way budgetnas opens it: same driver, no writes)."""
    import optuna

    from budgetnas.study.storage import open_storage
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=open_storage(url, create=False),
                             sampler=optuna.samplers.RandomSampler())


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint(*roots: Path) -> dict[str, str]:
    """Every file and folder under the roots with its sha256: equal before and after
    means nothing stored changed."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            out[str(root)] = "<absent>"
            continue
        for p in sorted(root.rglob("*")):
            out[str(p)] = "<dir>" if p.is_dir() else sha256(p)
    return out


def assert_retried(study, killed):
    """The killed trial is failed and retried exactly once, with its parameters and seed,
    and nothing is left running or queued. Returns the retry."""
    trials = study.get_trials(deepcopy=False)
    assert study.trials[killed.number].state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1, [t.system_attrs for t in trials]
    retry = retries[0]
    assert retry.system_attrs["retry_history"] == [killed.number]
    assert retry.state.name in ("COMPLETE", "PRUNED")  # pruned only if its loss diverged
    assert retry.params == killed.params and retry.params, "the retry runs the killed trial's parameters"
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"], "and its seed"
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    return retry


# python -c code that runs the CLI as if onnx and onnxruntime were not installed
WITHOUT_ONNX = ("import sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None  # as if uninstalled\n"
                "from budgetnas.cli import main; sys.exit(main(sys.argv[1:]))")


# --- the CLI in forked processes (test_bad_input) -------------------------------------------
# A server process imports torch, optuna and budgetnas once; each call forks it into a
# child that runs the CLI as `python -m budgetnas ARGS` would, in its own working folder,
# environment and output files: a real process with a real exit status, without paying
# ~1.5 s of interpreter start and imports per call. The server runs no torch op before
# forking, so no OpenMP thread team exists to hang a child (runtime.end_openmp_threads).
FORK_SERVER = r"""
import atexit, gc, json, os, sys
import torch, optuna
import budgetnas.cli, budgetnas.data.load, budgetnas.study.storage
reply = os.fdopen(os.dup(1), "w")
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                               (2, req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            os.dup2(os.open(path, mode, 0o644), fd)
        sys.argv = ["budgetnas", *req["argv"]]
        try:
            code = budgetnas.cli.main(req["argv"])
        except SystemExit as e:  # argparse's own exits
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        # what matters of the interpreter's own ending (~0.75 s with torch loaded): objects
        # freed (SQLite connections close, folding their -wal and -shm files away), atexit
        # handlers, buffers flushed. An uncaught exception still ends it normally, traceback and all.
        gc.collect()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps(os.waitstatus_to_exitcode(status)) + "\n")
    reply.flush()
"""


class ForkedCLI:
    """run(argv, cwd, env) -> subprocess.CompletedProcess, like procs.run(budgetnas(...)),
    through ``servers`` fork servers (one call at a time each; thread-safe)."""

    def __init__(self, servers: int = 2):
        import queue
        self.idle: queue.Queue = queue.Queue()
        self.procs = []
        for _ in range(servers):
            proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], env=cli_env(), text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.procs.append(proc)
            self.idle.put(proc)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
        import json
        out, err = Path(cwd).parent / "forked.out", Path(cwd).parent / "forked.err"
        proc = self.idle.get(timeout=timeout)
        try:
            proc.stdin.write(json.dumps({"argv": list(map(str, argv)), "cwd": str(cwd), "env": env,
                                         "out": str(out), "err": str(err)}) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert line, f"the fork server ended (rc {proc.poll()})"
        finally:
            self.idle.put(proc)
        return subprocess.CompletedProcess(["budgetnas", *argv], json.loads(line), out.read_text(), err.read_text())

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(30)
