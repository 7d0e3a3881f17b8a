"""Fuzz budgetnas's entry points with broken input (issue #24).

    .venv/bin/python scripts/fuzz.py --n 2000 [--seed 1] [--kinds npz,folder,...] [--keep DIR]
                                     [--jobs 2] [--timeout 60] [--cli-share 0.02] [--world DIR] [--mnist DIR]

Each case writes its inputs into a fresh folder (kinds: npz files, image folders, the
MNIST idx files, spec and manifest JSON, every flag of every command, space TOML files,
environment variables) and runs the real CLI, ``budgetnas.cli.main(argv)``, in a process
forked from a server that has imported it (a share of the cases, --cli-share, as a real
``python -m budgetnas``); as root, without the capabilities that let root read files of
mode 000. A
case fails on a traceback, an exit status other than 0 or 2, a status 2 whose stderr is
not exactly one 'budgetnas: error: ' line, a hang (no exit within --timeout seconds) or
any change to its inputs (names, contents, modes). Nothing is downloaded: every case
runs with BUDGETNAS_OFFLINE=1, no offline copies, and its own HOME and caches.

The run is deterministic given --seed and --n (case i's kind is the i-th of --kinds in
turn). A failing case is kept under --keep DIR/KIND-I/ (its inputs made again, the
command line, its output and a repro.sh). The summary table goes to stdout; exit status
1 if any case failed. tests/test_fuzz.py runs 240 cases in the suite.

The parts: fuzzworld.py (the shared inputs, made once), fuzzcases.py (npz, folder, idx),
fuzzdata.py (arrays, .npz files, images), fuzzargs.py (spec, manifest, space, env),
fuzzflags.py (flags), fuzzrun.py (fork server, input hashes, checks), fuzzreport.py.
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # its helper modules, beside it
    sys.path.append(str(Path(__file__).resolve().parent))

import fuzzargs  # noqa: E402
import fuzzflags  # noqa: E402
import fuzzcases  # noqa: E402
from fuzzcases import Case, Dirs, Rand, World  # noqa: E402
from fuzzrun import ForkServer, Failure, classify, run_subprocess, tree_diff, tree_state, force_rmtree  # noqa: E402
from fuzzworld import make_world, world_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = {"npz": fuzzcases.gen_npz, "folder": fuzzcases.gen_folder, "idx": fuzzcases.gen_idx,
              "spec": fuzzargs.gen_spec, "manifest": fuzzargs.gen_manifest, "flags": fuzzflags.gen_flags,
              "space": fuzzargs.gen_space, "env": fuzzargs.gen_env}
KINDS = tuple(GENERATORS)
CLASSES = ("traceback", "status", "hang", "changed", "multi-line")
DEFAULT_ENTRY = "budgetnas.cli:main"
WORLD_PARTS = ("tiny.npz", "tiny", "spec.json", "export", "study", "mnist")


@dataclass
class Result:
    kind: str
    index: int
    argv: list[str]
    note: str
    status: int | None  # None: hung (killed)
    seconds: float
    cli: bool  # ran as python -m budgetnas
    failures: list[Failure] = field(default_factory=list)
    root: str = ""  # the case folder (for shortening argv in reports)
    split: tuple = (0.0, 0.0)  # seconds making the case, running it
    said: str = ""  # the last line of stderr (what the user was told)


@dataclass
class Summary:
    results: list[Result]
    seconds: float
    text: str
    world_changed: bool = False

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.failures]

    def __repr__(self) -> str:
        return f"Summary({len(self.results)} cases, {len(self.failed)} failed)"

    @property
    def ok(self) -> bool:
        return not self.failed and not self.world_changed


def case_env(d: Dirs, extra: dict[str, str], python_path: list[str]) -> dict[str, str]:
    """Every case's environment: offline, no offline copies, its own HOME and caches."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *python_path]), "HOME": str(d.root / "home"),
           "XDG_CACHE_HOME": str(d.root / "home" / ".cache"), "BUDGETNAS_CACHE": str(d.root / "cache"),
           "BUDGETNAS_OFFLINE": "1", "BUDGETNAS_OFFLINE_DIRS": "", "TMPDIR": str(d.root / "tmp"),
           "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    env.update(extra)
    return env


def make_case(kind: str, index: int, seed: int, root: Path, world: World) -> tuple[Case, Dirs]:
    d = Dirs(root)
    r = Rand(f"{seed}:{kind}:{index}")
    return GENERATORS[kind](r, d, world, index), d


class Fuzzer:
    """Runs cases on ``jobs`` fork servers (one case at a time each)."""

    def __init__(self, world: World, seed: int, timeout: float, cli_share: float, keep: Path | None,
                 entry: str = DEFAULT_ENTRY, python_path: list[str] | None = None, jobs: int = 2):
        self.world, self.seed, self.timeout, self.cli_share, self.keep = world, seed, timeout, cli_share, keep
        self.entry, self.python_path = entry, list(python_path or [])
        self.scratch = Path(tempfile.mkdtemp(prefix="cases-", dir=world.root))
        server_env = case_env(Dirs(world.root / "server"), {}, self.python_path)
        self.servers: queue.Queue = queue.Queue()
        self.all_servers = [ForkServer(entry, server_env, world.modules) for _ in range(jobs)]
        for s in self.all_servers:
            self.servers.put(s)
        self.world_before = world_state(world)
        self.lock = threading.Lock()

    def close(self) -> None:
        for s in self.all_servers:
            s.close()
        force_rmtree(self.scratch)

    def run(self, kind: str, index: int) -> Result:
        root = self.scratch / f"{kind}-{index}"
        t0 = time.monotonic()
        try:
            case, d = make_case(kind, index, self.seed, root, self.world)
        except Exception as e:  # the fuzzer's own bug: said, never hidden
            import traceback
            force_rmtree(root)
            return Result(kind, index, [], "", None, 0.0, False,
                          [Failure("fuzzer", f"generator raised {type(e).__name__}", traceback.format_exc())])
        made = time.monotonic()
        cli = Rand(f"{self.seed}:{kind}:{index}:cli").chance(self.cli_share)
        env = case_env(d, case.env, self.python_path)
        before = tree_state(d.inp)
        out, err = d.root / "stdout", d.root / "stderr"
        try:
            if cli:
                status, hung = run_subprocess(self.entry, case.argv, d.cwd, env, out, err, self.timeout)
            else:
                server = self.servers.get()
                try:
                    status, hung = server.run(case.argv, d.cwd, env, out, err, self.timeout)
                finally:
                    self.servers.put(server)
        except RuntimeError as e:  # a fork server ended (it is started again): said, and the run goes on
            force_rmtree(d.root)
            return Result(kind, index, case.argv, case.note, None, time.monotonic() - t0, cli,
                          [Failure("fuzzer", "the fork server ended", str(e))], str(d.root))
        ran = time.monotonic()
        seconds = ran - t0
        # a search or a worker may write the study storage it is given (a copy in the case's inputs)
        allowed = ("study/s.db", "study/s-weights") if case.argv[:1] in (["search"], ["worker"]) else ()
        changed = tree_diff(before, tree_state(d.inp), allowed)
        with self.lock:
            world_now = world_state(self.world)
            if world_now != self.world_before:
                changed += [f"shared input {k[0]}" for k in sorted(set(world_now.items()) ^
                                                                   set(self.world_before.items()))][:3]
                self.world_before = world_now
        stdout, stderr = (p.read_text(errors="replace") if p.exists() else "" for p in (out, err))
        failures = classify(None if hung else status, stdout, stderr, hung, changed, self.timeout, str(d.root))
        result = Result(kind, index, case.argv, case.note, None if hung else status, seconds, cli, failures,
                        str(d.root), (made - t0, ran - made), (stderr.strip().splitlines() or [""])[-1][:300])
        if failures and self.keep is not None:
            self.keep_case(result, case, env, stdout, stderr)
        force_rmtree(d.root)
        return result

    def keep_case(self, result: Result, case: Case, env: dict, stdout: str, stderr: str) -> None:
        """The failing case made again (its inputs as they were) under keep/KIND-I/, with
        its command line, output and a repro.sh."""
        import json
        import shlex
        dest = self.keep / f"{result.kind}-{result.index}"
        force_rmtree(dest)
        again, d = make_case(result.kind, result.index, self.seed, dest, self.world)
        env = case_env(d, again.env, self.python_path)
        (dest / "argv.json").write_text(json.dumps(again.argv, ensure_ascii=True) + "\n")
        (dest / "stdout").write_text(stdout, errors="backslashreplace")
        (dest / "stderr").write_text(stderr, errors="backslashreplace")
        (dest / "result.txt").write_text(
            f"{result.kind} case {result.index} of --seed {self.seed}: {result.note}\n"
            f"exit {result.status}{' (python -m budgetnas)' if result.cli else ''}, {result.seconds:.2f}s\n"
            + "".join(f"{f.cls}: {f.key}\n{f.detail}\n" for f in result.failures), errors="backslashreplace")
        module, _, func = self.entry.partition(":")
        run = ["-m", "budgetnas"] if self.entry == DEFAULT_ENTRY else \
            ["-c", f"import sys; from {module} import {func}; sys.exit({func}(sys.argv[1:]))"]
        # as root, without the capabilities that let root read a file of mode 000 (as the case ran)
        caps = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
                "-dac_override,-dac_read_search"] if os.geteuid() == 0 and shutil.which("setpriv") else []
        words = [*caps, "env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())), sys.executable, *run,
                 *again.argv]
        script = "#!/bin/sh\n# " + result.note.replace("\n", " ") + "\ncd " + shlex.quote(str(d.cwd)) + " && " + \
            " ".join(shlex.quote(w) for w in words) + "\n"
        (dest / "repro.sh").write_bytes(os.fsencode(script))
        os.chmod(dest / "repro.sh", 0o755)


def plan(n: int, kinds: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(kinds[i % len(kinds)], i) for i in range(n)]


def fuzz(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS, keep: str | Path | None = None, jobs: int = 2,
         timeout: float = 60, cli_share: float = 0.02, world_dir: str | Path | None = None,
         mnist: str | Path | None = None, entry: str = DEFAULT_ENTRY, python_path: list[str] | None = None,
         progress=None) -> Summary:
    """Run ``n`` cases; returns the results and the summary text."""
    t0 = time.monotonic()
    own_world = world_dir is None
    if keep is not None:
        keep = Path(keep).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        world_dir = world_dir or keep / "_world"  # kept cases' command lines name the world's files
    root = Path(world_dir or tempfile.mkdtemp(prefix="budgetnas-fuzz-")).resolve()
    world = make_world(root, mnist)
    notes = []
    if "idx" in kinds and world.mnist is None:
        kinds = tuple(k for k in kinds if k != "idx")
        notes.append("idx cases skipped: no MNIST files found (pass --mnist DIR)")
    world_before = {name: tree_state(world.root / name) for name in WORLD_PARTS}
    fuzzer = Fuzzer(world, seed, timeout, cli_share, keep, entry, python_path, jobs)
    results: list[Result] = []
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(fuzzer.run, kind, i) for kind, i in plan(n, kinds)]
        try:
            for done, f in enumerate(futures, 1):
                results.append(f.result())
                if progress and (done % 100 == 0 or done == n):
                    bad = sum(1 for r in results if r.failures)
                    progress(f"[{done}/{n}] {bad} failed, {time.monotonic() - t0:.0f}s")
        except BaseException:  # Ctrl-C: the cases not started are dropped, the running ones end
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        for name in WORLD_PARTS:  # the shared inputs, byte for byte
            changed = tree_diff(world_before[name], tree_state(world.root / name))
            if changed:
                notes.append(f"FAILED: the shared {name} changed during the run: {'; '.join(changed[:5])}")
    finally:
        fuzzer.close()
        if own_world and keep is None:
            force_rmtree(root)
    from fuzzreport import summary_text
    seconds = time.monotonic() - t0
    text = summary_text(results, seconds, seed, jobs, timeout, notes, keep, str(root))
    if keep is not None:
        (keep / f"summary-seed{seed}-n{n}.txt").write_text(text + "\n")
    return Summary(results, seconds, text, any(n.startswith("FAILED") for n in notes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/fuzz.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, required=True, help="cases to run")
    p.add_argument("--seed", type=int, default=0, help="the same seed and --n run the same cases (default 0)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)} (default all)")
    p.add_argument("--keep", help="folder where failing cases are kept for reproduction (KIND-I/repro.sh)")
    p.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    p.add_argument("--timeout", type=float, default=60, help="seconds before a case counts as a hang (default 60)")
    p.add_argument("--cli-share", type=float, default=0.02,
                   help="share of cases run as a real 'python -m budgetnas' process (default 0.02)")
    p.add_argument("--world", help="folder for the shared inputs (tiny dataset, export, study, MNIST copy), "
                                   "made once and reused by later runs (default: a temporary folder)")
    p.add_argument("--mnist", help="folder with the MNIST idx files (default: budgetnas's cache)")
    p.add_argument("--entry", default=DEFAULT_ENTRY, help=argparse.SUPPRESS)  # tests plant faults with it
    args = p.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown or not kinds or args.n < 0 or args.jobs < 1 or args.timeout <= 0:
        p.error(f"--kinds takes {', '.join(KINDS)}; --n >= 0, --jobs >= 1, --timeout > 0")
    try:
        summary = fuzz(args.n, args.seed, kinds, args.keep, args.jobs, args.timeout, args.cli_share, args.world,
                       args.mnist, args.entry, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("fuzz: interrupted", file=sys.stderr)
        return 130
    print(summary.text)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
