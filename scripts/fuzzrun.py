"""How the fuzzer (scripts/fuzz.py) runs a case and judges it: a fork server that has
imported the CLI (each case a forked child in its own session, killed with its process
group past the timeout), a real `python -m budgetnas` for a sample, the hash of a
case's inputs before and after (names, contents, modes, link targets), and the checks
that turn exit status and output into failures grouped by class and place."""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ERROR_PREFIX = "budgetnas: error: "

# Root reads a file of mode 000 all the same: each case (forked child or real process) drops
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so permissions bind it as they bind a user (and
# its own children: dropped from the bounding set too). Nothing to do for a user.
def drop_dac() -> None:
    import ctypes
    import os
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) == 0:
        for name in ("effective", "permitted", "inheritable"):
            setattr(data[0], name, getattr(data[0], name) & ~0b110)
        libc.capset(ctypes.byref(header), data)

# The server imports the entry point and what the commands import later (faithful: a
# real process imports the same modules, only later), sets torch to one thread and runs
# no torch op, so no OpenMP thread team exists to hang a forked child. Each request is
# one JSON line; the server answers {"pid"} once forked and {"status"} once reaped.
SERVER = inspect.getsource(drop_dac) + r"""
import atexit, gc, importlib, json, os, sys, tempfile, traceback
entry_name, preload = sys.argv[1], json.loads(sys.stdin.readline())  # the modules to import: the first line
for name in preload:
    try:
        importlib.import_module(name)
    except Exception:
        pass
try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    pass
module, _, func = entry_name.partition(":")
entry = getattr(importlib.import_module(module), func)
gc.collect()
gc.freeze()  # what the server holds is never collected by a child: no copy-on-write of all of it, no 0.2 s per case
reply = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints of the server never reach the protocol
reply.write('{"ready": true}\n'); reply.flush()
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        drop_dac()
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        tempfile.tempdir = None
        for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                               (2, req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            os.dup2(os.open(path, mode, 0o644), fd)
        sys.argv = ["budgetnas", *req["argv"]]
        try:
            code = entry(req["argv"])
        except SystemExit as e:
            if isinstance(e.code, int) or e.code is None:
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        gc.collect()
        atexit._run_exitfuncs()
        # what the interpreter's end would do besides: close SQLite connections still held
        # (the last one folds a -wal file back into the database and removes it)
        for obj in gc.get_objects():  # the server's frozen objects are not listed
            if type(obj).__name__ == "Connection" and type(obj).__module__ == "sqlite3":
                try:
                    obj.close()
                except Exception:
                    pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    reply.write(json.dumps({"pid": pid}) + "\n"); reply.flush()
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n"); reply.flush()
"""
PRELOAD = ["numpy", "PIL.Image", "optuna", "budgetnas.data.load", "budgetnas.study.storage", "budgetnas.study.create",
           "budgetnas.run.engine", "budgetnas.data.sources", "budgetnas.export.bundle"]
NOT_PRELOADED = ("onnxruntime",)  # starts a thread when imported: a forked child would inherit its locks


class Lines:
    """Lines from a pipe with a timeout (select on the raw descriptor, own buffer)."""

    def __init__(self, fd: int):
        self.fd, self.buf = fd, b""

    def read(self, timeout: float | None) -> str | None:
        """The next line; None past the timeout; '' at the end of the stream."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = None if end is None else max(0.0, end - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return ""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


class ForkServer:
    def __init__(self, entry: str, env: dict[str, str], preload: list[str] | None = None):
        self.entry, self.env = entry, env
        self.preload = PRELOAD + [m for m in preload or [] if m.split(".")[0] not in NOT_PRELOADED]
        self.start()

    def start(self) -> None:
        import tempfile
        self.log = tempfile.TemporaryFile()  # the server's own stderr (a pipe nobody read could fill and block it)
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, self.entry], env=self.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.proc.stdin.write((json.dumps(self.preload) + "\n").encode())
        self.proc.stdin.flush()
        self.lines = Lines(self.proc.stdout.fileno())
        if self.lines.read(300) != '{"ready": true}':
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"the fork server did not start: {self.log.read().decode(errors='replace')[-2000:]}")

    def run(self, argv: list[str], cwd: Path, env: dict, out: Path, err: Path, timeout: float) -> tuple[int, bool]:
        """(exit status, hung) of the entry point run on ``argv`` in a forked child."""
        req = {"argv": list(argv), "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        first = self.lines.read(60)
        if not first:
            self.restart()
            raise RuntimeError("the fork server ended or did not fork")
        pid = json.loads(first)["pid"]
        line = self.lines.read(timeout)
        hung = line is None
        if hung:
            kill_group(pid)
            line = self.lines.read(60)
        if not line:
            self.restart()
            raise RuntimeError("the fork server ended while a case ran")
        return json.loads(line)["status"], hung

    def restart(self) -> None:
        self.close()
        self.start()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.proc.stdout.close()
        self.log.close()


def kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass


def run_subprocess(entry: str, argv: list[str], cwd: Path, env: dict, out: Path, err: Path,
                   timeout: float) -> tuple[int, bool]:
    """The same as a real process: `python -m budgetnas ARGS` (or the planted entry)."""
    module, _, func = entry.partition(":")
    head = ["-m", "budgetnas"] if entry == "budgetnas.cli:main" else \
        ["-c", f"import sys; from {module} import {func}; sys.exit({func}(sys.argv[1:]))"]
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, *head, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=o, stderr=e, start_new_session=True, preexec_fn=drop_dac)
        try:
            return proc.wait(timeout), False
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            return proc.wait(), True


# --- inputs before and after ----------------------------------------------------------------
def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (and root itself): type, permission bits, sha1 of a
    file's bytes or a link's target. Links are not followed; FIFOs are not opened."""
    out: dict[str, tuple] = {}
    base = os.fsencode(root)

    def entry(path: bytes) -> tuple:
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            return ("link", os.fsdecode(os.readlink(path)))
        if stat.S_ISREG(st.st_mode):
            try:
                h = hashlib.sha1()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                digest = h.hexdigest()
            except OSError:
                digest = "unreadable"
            return ("file", mode, digest)
        return ("dir" if stat.S_ISDIR(st.st_mode) else f"type {stat.S_IFMT(st.st_mode)}", mode)

    if not os.path.lexists(base):
        return {".": ("absent",)}
    out["."] = entry(base)
    for top, dirs, files in os.walk(base, followlinks=False):
        for name in dirs + files:
            path = os.path.join(top, name)
            out[os.fsdecode(os.path.relpath(path, base))] = entry(path)
    return out


def tree_diff(before: dict, after: dict, allowed: tuple[str, ...] = ()) -> list[str]:
    """What changed; ``allowed``: paths (and what is under them) a command may write."""
    words = []
    for key in sorted(before.keys() | after.keys()):
        if any(key == a or key.startswith(a + "/") for a in allowed):
            continue
        if key not in after:
            words.append(f"removed {key!r}")
        elif key not in before:
            words.append(f"added {key!r}")
        elif before[key] != after[key]:
            what = "mode" if before[key][0] == after[key][0] and before[key][-1] == after[key][-1] else "changed"
            words.append(f"{what} {key!r}")
    return words


def force_rmtree(path: Path | str) -> None:
    """Remove a case folder whatever its permissions (folders and files made unreadable)."""
    path = os.fsencode(path)
    if not os.path.lexists(path):
        return

    def fix(p: bytes) -> None:
        try:
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(p, 0o700)
                for e in os.scandir(p):
                    fix(e.path)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(p, 0o600)
        except OSError:
            pass

    fix(path)
    import shutil
    shutil.rmtree(path, ignore_errors=True)


# --- judging --------------------------------------------------------------------------------
@dataclass
class Failure:
    cls: str  # traceback, status, hang, changed, multi-line (fuzzer: the fuzzer's own bug)
    key: str  # what groups it with others: exception type and where, an exit status, a line's shape
    detail: str  # the evidence, a few lines


FRAME = re.compile(r'^  File "(.+)", line (\d+), in (.+)$')


def traceback_key(text: str) -> tuple[str, str]:
    """(exception type at the last budgetnas frame (file:function) and the last frame,
    the last traceback's exception line and frames) of the last traceback in ``text``."""
    block = text[text.rindex("Traceback (most recent call last)"):].splitlines()
    frames = [m.groups() for m in map(FRAME.match, block) if m]
    rest = [ln for ln in block[1:] if ln and not ln.startswith(" ")]
    exc_line = rest[0] if rest else "?"
    exc_type = exc_line.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    ours = [f for f in frames if "/budgetnas/" in f[0] and "/scripts/" not in f[0]]

    def place(f, with_line: bool) -> str:
        path = f[0].split("/budgetnas/", 1)[-1] if "/budgetnas/" in f[0] else f[0].rsplit("/", 1)[-1]
        prefix = "budgetnas/" if "/budgetnas/" in f[0] and "site-packages" not in f[0] else ""
        return f"{prefix}{path}:{f[2]}" + (f" (line {f[1]})" if with_line else "")

    where = place(ours[-1], False) if ours else (place(frames[-1], False) if frames else "?")
    last = place(frames[-1], True) if frames else "?"
    key = f"{exc_type} in {where}"
    detail = f"{exc_line[:300]}\n  at {place(ours[-1], True) if ours else '?'}; last frame {last}"
    return key, detail


def shape(line: str, root: str) -> str:
    """A line with the case's folder and numbers taken out, to group alike lines."""
    line = line.replace(root, "$CASE") if root else line
    line = re.sub(r"\d+", "N", line)
    return line[:90]


def classify(status: int | None, stdout: str, stderr: str, hung: bool, changed: list[str], timeout: float,
             root: str = "") -> list[Failure]:
    """The failures of one case (none: it passed)."""
    failures = []
    if hung:
        failures.append(Failure("hang", f"no exit within {timeout:g}s", stderr.strip()[-300:]))
    text = stdout + "\n" + stderr
    if "Traceback (most recent call last)" in text:
        key, detail = traceback_key(text)
        failures.append(Failure("traceback", key, detail))
    elif not hung and status not in (0, 2):
        last = (stderr.strip().splitlines() or [""])[-1]
        what = f"killed by {signal.Signals(-status).name}" if status is not None and status < 0 else f"exit {status}"
        failures.append(Failure("status", f"{what}: {shape(last, root)}" if last else what, stderr.strip()[-500:]))
    elif status == 2 and not hung:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if len(lines) != 1 or not lines[0].startswith(ERROR_PREFIX):
            odd = next((ln for ln in lines if not ln.startswith(ERROR_PREFIX)), None)
            key = ("nothing on stderr" if not lines else f"{len(lines)} stderr lines: {shape(odd, root)}"
                   if odd is not None else f"{len(lines)} error lines")
            failures.append(Failure("multi-line", key, "\n".join(lines[:6])[:800]))
    if changed:
        failures.append(Failure("changed", "inputs changed", "; ".join(changed[:5])))
    return failures
