"""The fuzzer's shared inputs (scripts/fuzz.py), made once per run or reused from --world:
a tiny valid dataset (an .npz and the same as PNG class folders), a spec for it, a real
export and a real study made from them by the real CLI, a copy of the MNIST files, the
parser's options, the environment variables budgetnas reads, valid specs of every
layer kind and a valid value of every space-file key. Cases copy what they may damage."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from fuzzflags import parser_options
from fuzzcases import IDX_FILES, TINY, World, pattern_images

ROOT = Path(__file__).resolve().parent.parent
TINY_SPEC = {"layers": [{"kind": "conv", "out": 4, "kernel": 3, "padding": 1}, {"kind": "pool"},
                        {"kind": "conv", "out": 8, "kernel": 3, "padding": 1}, {"kind": "pool"}],
             "head": "gap", **TINY}
KIND_SPECS = [
    {"layers": [{"kind": "res", "out": 8, "stride": 2}, {"kind": "mbconv", "out": 8, "expand": 4, "kernel": 3,
                                                        "stride": 1, "se": True}, {"kind": "avgpool"}],
     "head": "flatten", "hidden": [16], "head_dropout": 0.1, **TINY},
    {"layers": [{"kind": "conv", "out": 6, "kernel": 3, "padding": 1, "groups": 1, "stride": 2},
                {"kind": "conv", "out": 6, "kernel": 3, "padding": 1, "groups": 6}, {"kind": "conv", "out": 12,
                                                                                     "kernel": 1, "padding": 0},
                {"kind": "mbconv", "out": 12, "expand": 2, "kernel": 5, "stride": 2}], "head": "gap", **TINY},
]
SPACE_EXAMPLES = {"stages": [2, 3], "blocks_per_stage": [1, 2], "growth": [1.0, 2.0], "fill": [0.5, 1.0],
                  "blocks": ["conv", "res"], "downsample": ["max", "stride"], "kernels": [3, 5], "expand": [2, 4],
                  "se": [False, True], "heads": ["gap"], "hidden": [0, 32], "conv_dropout": [0.0, 0.1],
                  "head_dropout": [0.0, 0.3], "width_step": 2, "lr": {"adamw": [1e-3, 1e-2]},
                  "schedules": ["cosine"], "batch_sizes": [32, 64], "weight_decay": [1e-6, 1e-3], "augment": [False],
                  "rotate": [0.0, 10.0], "translate": [0.0, 0.1], "label_smoothing": [0.0, 0.1]}


def cli_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT),
            "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "BUDGETNAS_CACHE": str(home / "decoded"),
            "BUDGETNAS_OFFLINE": "1", "BUDGETNAS_OFFLINE_DIRS": "", "OMP_NUM_THREADS": "1"}


def valid_specs() -> list[dict]:
    """Presets A-E, the tiny spec and specs with every layer kind, as their full JSON."""
    from budgetnas.arch import ArchSpec
    from budgetnas.space.presets import PRESETS
    out = [p.spec.to_dict() for p in PRESETS.values()]
    for d in (TINY_SPEC, *KIND_SPECS):
        try:
            out.append(ArchSpec.from_dict(json.loads(json.dumps(d))).to_dict())
        except Exception as e:  # the schema moved on: the fuzzer says so and goes on with the others
            print(f"fuzz: a seed spec is no longer valid ({type(e).__name__}: {e})", file=sys.stderr)
    return out


def find_mnist(source: str | Path | None) -> dict[str, tuple[bytes, bytes | None]] | None:
    """The four MNIST files from ``source`` or budgetnas's cache, md5-checked: {stem:
    (decompressed bytes, the .gz file's bytes or None)}; None if they are not all there."""
    from budgetnas.config import env
    from budgetnas.data.sources.idx import REGISTRY
    folder = Path(source) if source else env.data_root() / "mnist"
    out = {}
    for stem in IDX_FILES:
        for p in (folder / f"{stem}.gz", folder / stem):
            if p.is_file():
                data = p.read_bytes()
                raw = gzip.decompress(data) if p.suffix == ".gz" else data
                if hashlib.md5(raw).hexdigest() == REGISTRY["mnist"].md5[stem]:
                    out[stem] = (raw, data if p.suffix == ".gz" else None)
                    break
        else:
            return None
    return out


def make_world(root: Path, mnist: str | Path | None = None) -> World:
    """The world under ``root`` (made unless a previous run left it complete)."""
    from budgetnas.cli.parser import build_parser
    root.mkdir(parents=True, exist_ok=True)
    w = World(root=root, npz=root / "tiny.npz", folder=root / "tiny", spec=root / "spec.json",
              export=root / "export", study=root / "study", mnist=root / "mnist", mnist_raw=root / "mnist-raw")
    if not (root / "ready").exists():
        x, y = pattern_images(np.random.default_rng(0), 60, (12, 12), 3)
        np.savez(w.npz, x_train=x, y_train=y)
        from PIL import Image
        for i, (img, c) in enumerate(zip(x[:30], y[:30])):
            (w.folder / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(w.folder / f"class{c}" / f"{i:03d}.png")
        from budgetnas.arch import ArchSpec
        w.spec.write_text(ArchSpec.from_dict(TINY_SPEC).to_json())
        home = root / "home"
        warm = start_warm(w)
        made = [subprocess.Popen([sys.executable, "-m", "budgetnas", *argv], env=cli_env(home), cwd=root,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for argv in (
            ["train", str(w.spec), "--dataset", str(w.npz), "--epochs", "1", "--out", str(w.export), "--no-progress"],
            ["search", "--dataset", str(w.npz), "--budget", "3000", "--trials", "2", "--epochs", "1", "--storage",
             f"sqlite:///{w.study / 's.db'}", "--study", "s", "--no-progress", "--confirm-top", "0", "--space",
             "plain"])]
        try:
            for proc in made:
                out = proc.communicate(600)[0].decode(errors="replace")
                if proc.returncode != 0:
                    raise RuntimeError(f"making the fuzzer's world failed: {' '.join(map(str, proc.args[3:6]))}: "
                                       f"exit {proc.returncode}\n{out[-3000:]}")
        finally:
            end_warm(w, warm)
        files = find_mnist(mnist)
        if files is not None:
            w.mnist.mkdir(exist_ok=True)
            w.mnist_raw.mkdir(exist_ok=True)
            for stem, (raw, gz) in files.items():
                (w.mnist / f"{stem}.gz").write_bytes(gz or gzip.compress(raw, compresslevel=1))
                if stem != IDX_FILES[0]:
                    (w.mnist_raw / stem).write_bytes(raw)
        (root / "ready").write_text("made by scripts/fuzz.py\n")
    if not (w.mnist / f"{IDX_FILES[0]}.gz").exists():
        w.mnist = w.mnist_raw = None
    w.options = parser_options(build_parser())
    text = (ROOT / "budgetnas" / "config" / "env.py").read_text()
    w.env_names = sorted(set(re.findall(r"\b((?:BUDGETNAS|XDG)_[A-Z_]+)\b", text)))
    w.specs = valid_specs()
    from budgetnas.space.files import RULES
    w.space_examples = {k: SPACE_EXAMPLES.get(k, [1, 2]) for k in RULES}
    w.modules = json.loads((root / "modules.json").read_text())
    return w


# what the commands import (lazily, inside functions): the fork server imports it up front, so a
# case pays for its work and not for imports (alembic and sqlalchemy alone take ~1 s)
WARM = r"""
import json, sys
from budgetnas.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except BaseException:
        pass
skip = ("__main__", "__mp_main__")
print("MODULES " + json.dumps(sorted(m for m in sys.modules if m not in skip and not m.startswith("_pytest"))))
"""


def start_warm(w: World) -> subprocess.Popen:
    """Start listing the modules a few typical commands import (beside the other makers)."""
    case = w.root / "warm"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    argvs = [["data", str(w.npz)], ["presets"], ["space", "--samples", "20", "--budget", "5k"],
             ["search", "--create-only", "--dataset", str(w.npz), "--storage", f"sqlite:///{case / 'n.db'}",
              "--study", "s", "--budget", "3000"],
             ["train", str(w.spec), "--epochs", "1", "--dataset", str(w.npz), "--out", str(w.spec), "--no-progress"],
             ["leaderboard", "--storage", f"sqlite:///{case / 'n.db'}", "--study", "s"],
             ["report", "--storage", f"sqlite:///{case / 'n.db'}", "--study", "s", "--out", str(case / "r.html")]]
    return subprocess.Popen([sys.executable, "-c", WARM, json.dumps(argvs)], env=cli_env(case / "home"), cwd=case,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def end_warm(w: World, proc: subprocess.Popen) -> None:
    out = proc.communicate(600)[0].decode(errors="replace")
    found = [ln for ln in out.splitlines() if ln.startswith("MODULES ")]
    (w.root / "modules.json").write_text(found[-1][8:] if found else "[]")
    shutil.rmtree(w.root / "warm", ignore_errors=True)


def world_state(w: World) -> dict[str, tuple]:
    """(size, mtime, mode) of every file of the world the cases read: a case that changed
    one is caught at once (the contents are hashed again at the end of the run)."""
    out = {}
    for top in (w.npz, w.folder, w.spec, w.export, w.study, w.mnist):
        if top is None or not top.exists():
            continue
        for p in [top, *top.rglob("*")] if top.is_dir() else [top]:
            st = p.lstat()
            out[str(p.relative_to(w.root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out
