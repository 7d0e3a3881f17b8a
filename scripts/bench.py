#!/usr/bin/env python
"""How fast is a budgetnas trial, and how many trials per hour does a search run?

    python scripts/bench.py                  # seed B, one epoch on full MNIST: reference loop vs budgetnas
    python scripts/bench.py --mode search    # trials per hour: --workers 1 (2 threads) vs --workers 2 (1 each)
    python scripts/bench.py --mode parts     # where a budgetnas step goes: B without BatchNorm, without max pool
    python scripts/bench.py --overhead       # the search's own cost per trial, trainer stubbed (bench_overhead.py)

Train mode (the default) trains seed B's architecture with its own recipe (Adam 0.015,
cosine, batch 64, grad clip 1.0) for one epoch on the full MNIST training split, twice,
each arm in a fresh Python process so neither inherits the other's allocator or thread
settings:

* reference: the way a typical PyTorch script does it: a ``Dataset`` that returns one
  sample at a time (uint8 image -> float, /255, normalised, per-sample augmentation if the
  recipe has any), a ``DataLoader`` with default settings, the model as its README
  describes it (conv -> BN -> ReLU -> max pool per block, ``model.literal_order``: the
  same initial weights as budgetnas's) in NCHW, torch's default threads, test accuracy
  under ``torch.no_grad`` in batches of 1000.
* budgetnas: what a search worker does: ``runtime.tune_malloc()``, ``runtime.set_threads()``
  (cores, or fewer when other processes keep them busy), then ``train.loop.train`` with its
  defaults (data resident in tensors, channels_last, bf16 autocast where the CPU has
  native bf16, fused optimizer; it also validates 4 times, which the reference does not,
  and that time is included). ``--reference-threads 1`` shows how much of the ratio is
  thread settings.

Neither arm's time includes the one-time ``import torch._dynamo`` that torch.optim does
when it makes a process's first optimizer (~1 s here): both import it first, as a
search process does before its first trial (``runtime.preload``).

Same split, same initial weights (same seed). It prints wall time, accuracy, peak RSS
and achieved GFLOP/s of each against this machine's fp32 matmul peak measured in the
same run; the last line is ``speedup: R`` (reference seconds / budgetnas seconds).

FLOP count: MACs per image are ``space.macs(spec)`` (convs and linears, forward). A
training step costs about 3x the forward (forward, grad of inputs, grad of weights; the
first conv needs no input grad, so this slightly overcounts both arms alike), and one
MAC is 2 FLOP. Evaluation images cost 1x the forward. The peak is fp32 even where
budgetnas runs the forward pass in bf16.

Parts mode times ``train.loop.train``'s steady-state training step (steps 41-240 of 256,
between its progress calls; evaluation only after the last step) for seed B as built and
with its BatchNorm layers removed and/or its max pools replaced by a stride-2 subsample
(the same shapes, no pooling work), in alternation; the step-time shares bound what any
faster BatchNorm or pooling kernel could save.

Search mode runs the real CLI (``budgetnas search``) in subprocesses on the same data
with a fixed workload: a study pre-filled with seeds A-D in turn (12 trials, fixed
architectures and recipes, --pruner none), so both runs train exactly the same models;
two rounds, alternating. Trials per hour count the whole command, start-up and data
loading included; the last line is the ratio over all rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BUDGETNAS_OFFLINE", "1")


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the two arms (each runs in its own process) ---------------------------------------------
def arm_reference(preset_name: str, train_limit: int | None, seed: int, threads: int | None = None) -> dict:
    """A typical PyTorch training script (per-sample Dataset, default DataLoader)."""
    import math

    import torch
    if threads:  # --reference-threads: to see how much of the ratio is thread settings
        torch.set_num_threads(threads)
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.data.sources.idx import REGISTRY
    from budgetnas.arch.build import build_model, literal_order
    from budgetnas.space.presets import get_preset

    preset = get_preset(preset_name)
    recipe = preset.recipe
    info = REGISTRY["mnist"]
    data = load_data(DataConfig(train_limit=train_limit))

    def raw(x: torch.Tensor):  # back to the uint8 pixels the files hold (exact)
        return (x.squeeze(1) * info.std + info.mean).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()

    class MNIST(Dataset):
        def __init__(self, images, labels, augment: bool):
            self.images, self.labels, self.augment = images, labels.numpy(), augment

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int):
            x = torch.from_numpy(self.images[i]).float().div(255).unsqueeze(0)  # like ToTensor
            if self.augment:  # like RandomAffine(degrees=rotate, translate=(t, t)) on one image
                a = math.radians(recipe.rotate) * (2 * torch.rand(()).item() - 1)
                tx, ty = (2 * torch.rand(2) - 1) * 2 * recipe.translate
                theta = torch.tensor([[math.cos(a), -math.sin(a), tx], [math.sin(a), math.cos(a), ty]])
                grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
                x = F.grid_sample(x[None], grid, align_corners=False)[0]
            x = (x - info.mean) / info.std  # like Normalize((0.1307,), (0.3081,))
            return x, int(self.labels[i])

    train_set = MNIST(raw(data.train_x), data.train_y, recipe.rotate > 0 or recipe.translate > 0)
    test_set = MNIST(raw(data.test_x), data.test_y, False)
    import torch._dynamo  # noqa: F401  once per process (see the docstring), untimed in both arms
    torch.manual_seed(seed)
    model = literal_order(build_model(preset.spec))  # budgetnas's initial weights, the layers as written
    t0, c0, f0 = time.perf_counter(), _cpu_s(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True)
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                              weight_decay=recipe.weight_decay)
    else:
        cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
        opt = cls(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = len(loader) * recipe.epochs
    sched = {"cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
             "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=total, pct_start=0.25),
             "constant": lambda: None}[recipe.schedule]()
    model.train()
    for _ in range(recipe.epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test_set, batch_size=1000):
            correct += (model(x).argmax(1) == y).sum().item()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_s() - c0, "test_acc": correct / len(test_set),
            "train_images": len(train_set) * recipe.epochs, "eval_images": len(test_set),
            "threads": torch.get_num_threads(), "rss_mb": _rss_mb(),
            "minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}


def arm_budgetnas(preset_name: str, train_limit: int | None, seed: int) -> dict:
    """What a search worker does for one trial."""
    import torch

    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.arch.build import build_model
    from budgetnas.space.presets import get_preset
    from budgetnas.run.runtime import preload, set_threads, tune_malloc
    from budgetnas.train.loop import INTERMEDIATE_VAL, eval_steps, train

    tune_malloc()
    threads = set_threads(None, 1)
    preset = get_preset(preset_name)
    data = load_data(DataConfig(train_limit=train_limit))
    preload()  # as a search process does before its first trial
    torch.manual_seed(seed)
    model = build_model(preset.spec)
    c0, f0 = _cpu_s(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    result = train(model, data, preset.recipe, seed=seed)
    steps = len(data.train_x) // min(preset.recipe.batch_size, len(data.train_x))
    points = len(eval_steps(steps, 4))
    val_images = (points - 1) * min(INTERMEDIATE_VAL, len(data.val_x)) + len(data.val_x)
    return {"seconds": result.seconds, "cpu_seconds": _cpu_s() - c0, "test_acc": result.test_acc,
            "precision": result.precision,
            "train_images": steps * min(preset.recipe.batch_size, len(data.train_x)) * preset.recipe.epochs,
            "eval_images": val_images + len(data.test_x), "threads": threads, "rss_mb": _rss_mb(),
            "minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}


def run_arm(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--arm", name, "--preset", args.preset, "--seed", str(args.seed)]
    if args.train_limit:
        cmd += ["--train-limit", str(args.train_limit)]
    if args.reference_threads:
        cmd += ["--reference-threads", str(args.reference_threads)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- measurements -------------------------------------------------------------------------------
def matmul_peak(threads: int, n: int = 2048, reps: int = 20) -> float:
    """Best fp32 torch.mm GFLOP/s of an n x n product with ``threads`` threads (two
    warm-up products first: with one, 4096 x 4096 best of 5 once read 109 GFLOP/s on 2
    threads where repeated runs read 166-184)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


def train_mode(args: argparse.Namespace) -> None:
    import torch

    from budgetnas.space.presets import get_preset
    from budgetnas.arch import macs, param_count

    preset = get_preset(args.preset)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()) \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"machine: {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f} (other processes share these cores)")
    cores = os.cpu_count() or 1
    peaks = {t: matmul_peak(t) for t in sorted({1, cores})}
    peak = peaks[cores]
    print("fp32 matmul peak (2048x2048 torch.mm, best of 20): "
          + ", ".join(f"{p:.0f} GFLOP/s with {t} thread{'s' * (t > 1)}" for t, p in peaks.items()))
    m = macs(preset.spec)
    print(f"seed {args.preset}: {param_count(preset.spec):,} params, {m:,} MACs per image forward; recipe "
          f"{preset.recipe.optimizer} lr {preset.recipe.lr} {preset.recipe.schedule} batch {preset.recipe.batch_size} "
          f"grad clip {preset.recipe.grad_clip}, 1 epoch, seed {args.seed}")
    res = {}
    # budgetnas first: its thread count follows the load average at start, which the
    # reference's own run would otherwise raise for a minute
    for name in ("budgetnas", "reference"):
        r = res[name] = run_arm(name, args)
        flop = 2 * m * (3 * r["train_images"] + r["eval_images"])
        r["gflops"] = flop / r["seconds"] / 1e9
        label = {"reference": "reference loop (per-sample Dataset + DataLoader)",
                 "budgetnas": f"budgetnas train.loop.train ({r.get('precision', 'fp32')} forward)"}
        print(f"{label[name]:<50} {r['seconds']:6.1f} s wall ({r['cpu_seconds']:.1f} s CPU, {r['threads']} threads)  "
              f"test {100 * r['test_acc']:.2f}%  {r['gflops']:5.1f} GFLOP/s = {100 * r['gflops'] / peak:4.1f}% of the "
              f"{cores}-thread peak  peak RSS {r['rss_mb']:.0f} MB")
    ref, bn = res["reference"], res["budgetnas"]
    print(f"MACs per epoch: 3 (fwd + bwd) x {m:,} x {bn['train_images']:,} images = {3 * m * bn['train_images']:,} "
          f"({6 * m * bn['train_images'] / 1e12:.2f} TFLOP); budgetnas also evaluates {bn['eval_images']:,} images, "
          f"the reference {ref['eval_images']:,}")
    print(f"test accuracy: budgetnas {100 * bn['test_acc']:.2f}% vs reference {100 * ref['test_acc']:.2f}% "
          f"({100 * (bn['test_acc'] - ref['test_acc']):+.2f} pp)")
    print(f"peak memory of the budgetnas process (a search worker's work on full MNIST): {bn['rss_mb']:.0f} MB "
          f"(limit 1536 MB); minor page faults while training: {bn['minflt']:,} with runtime.tune_malloc, "
          f"{ref['minflt']:,} in the reference")
    print(f"speedup: {ref['seconds'] / bn['seconds']:.2f}")


def parts_mode(args: argparse.Namespace) -> None:
    import dataclasses

    import torch
    from torch import nn

    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.arch.build import build_model
    from budgetnas.space.presets import get_preset
    from budgetnas.run.runtime import preload, set_threads, tune_malloc
    from budgetnas.train.loop import train

    class Subsample(nn.Module):  # a max pool's output shape without its work
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, ::2, ::2]

    tune_malloc()
    threads = set_threads(None, 1)
    preset = get_preset(args.preset)
    batch = preset.recipe.batch_size
    data = load_data(DataConfig(train_limit=256 * batch))
    data = dataclasses.replace(data, val_x=data.val_x[:500], val_y=data.val_y[:500], test_x=data.test_x[:500],
                               test_y=data.test_y[:500])
    preload()
    variants = {"as built": set(), "without BatchNorm": {"bn"}, "max pool -> subsample": {"pool"},
                "without both": {"bn", "pool"}}

    def step_ms(drop: set) -> float:
        torch.manual_seed(args.seed)
        model = build_model(preset.spec)
        for m in model.modules():
            if "bn" in drop and isinstance(getattr(m, "bn", None), nn.BatchNorm2d):
                m.bn = nn.Identity()
            if "pool" in drop:
                for name, child in m.named_children():
                    if isinstance(child, nn.MaxPool2d):
                        setattr(m, name, Subsample())
        marks: dict[int, float] = {}
        train(model, data, preset.recipe, seed=args.seed, eval_points=1,
              progress=lambda done, total, acc: marks.setdefault(done, time.perf_counter()))
        return (marks[240] - marks[40]) / 200 * 1e3

    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.parts_repeats):
        for name, drop in variants.items():
            times[name].append(step_ms(drop))
    print(f"seed {args.preset}, batch {batch}, {threads} threads, {args.parts_repeats} rounds in alternation "
          f"(ms per training step, median):")
    full = sorted(times["as built"])[len(times["as built"]) // 2]
    for name, ts in times.items():
        ms = sorted(ts)[len(ts) // 2]
        print(f"  {name:<24} {ms:5.2f} ms  ({100 * (1 - ms / full):+5.1f}% of the step saved)  rounds: "
              + ", ".join(f"{t:.2f}" for t in ts))


# --- search mode ---------------------------------------------------------------------------------
SEARCH_PRESETS = ("A", "B", "C", "D")


def _prefill(workdir: Path, study: str, args: argparse.Namespace, storage: str) -> None:
    """Create the study as the CLI would and enqueue the fixed workload."""
    from budgetnas.config import DataConfig, SearchConfig
    from budgetnas.space.presets import get_preset
    from budgetnas.study import record
    from budgetnas.study.create import create_or_load_study, quiet_optuna
    from budgetnas.study.storage import open_storage

    quiet_optuna()
    cfg = SearchConfig(budget=25_000, epochs=1, trials=args.search_trials, study=study, pruner="none",
                       data=DataConfig(train_limit=args.search_train_limit, val_size=args.search_val_size))
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        s = create_or_load_study(cfg, open_storage(storage))
        for i in range(args.search_trials):
            p = get_preset(SEARCH_PRESETS[i % len(SEARCH_PRESETS)])
            s.enqueue_trial({}, user_attrs=record.queued(preset=p.name, preset_spec=p.spec.to_dict(),
                                                         preset_recipe=p.recipe.to_dict()))
    finally:
        os.chdir(cwd)


def _run_cli(workdir: Path, study: str, storage: str, workers: int, threads: int | None, args) -> dict:
    cmd = [sys.executable, "-m", "budgetnas", "search", "--study", study, "--storage", storage, "--budget", "25000",
           "--epochs", "1", "--trials", str(args.search_trials), "--pruner", "none", "--workers", str(workers),
           "--train-limit", str(args.search_train_limit),
           "--val-size", str(args.search_val_size), "--no-progress", "--device", "cpu"]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = workdir / f"{study}.log"
    with open(log, "w") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=workdir, stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(p.pid, 0)  # usage covers the CLI and the workers it waited for
        seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    return {"seconds": seconds, "rc": p.returncode, "rss_mb": usage.ru_maxrss / 1024, "log": text,
            "errors": sum(1 for line in text.splitlines() if "Traceback" in line or "Error" in line)}


def search_mode(args: argparse.Namespace) -> None:
    import optuna

    from budgetnas.study.schedule import trained_count
    from budgetnas.study.storage import open_storage

    cores = os.cpu_count() or 1
    one, two = (1, cores), (2, max(1, cores // 2))
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f} (other processes share these cores)")
    print(f"workload: {args.search_trials} trials (seeds {'-'.join(SEARCH_PRESETS[::3])} in turn, fixed recipes, 1 epoch "
          f"on {args.search_train_limit:,} images, {args.search_val_size:,} val, 10,000 test), --pruner none; "
          f"{args.search_repeats} round(s) of --workers 1 and 2 in alternation")
    # the comparison the issue asks for (alternating, so a change in the machine's load
    # hits both), then optionally --workers 1 with its default threads (cores, or fewer
    # when other processes keep the cores busy: see run.runtime.default_threads)
    runs = [one, two] * args.search_repeats + ([(1, None)] if args.search_default_threads else [])
    seconds: dict[tuple, float] = {}
    trials: dict[tuple, int] = {}
    workdir = Path(tempfile.mkdtemp(prefix="budgetnas-bench-"))
    try:
        for k, (workers, threads) in enumerate(runs):
            study = f"bench-{k}-w{workers}-t{threads or 'default'}"
            storage = f"journal:{workdir / (study + '.journal')}"
            _prefill(workdir, study, args, storage)
            r = _run_cli(workdir, study, storage, workers, threads, args)
            s = optuna.load_study(study_name=study, storage=open_storage(storage))
            states = [t.state.name for t in s.trials]
            numbers = [t.number for t in s.trials]
            trained = trained_count(s)
            seconds[workers, threads] = seconds.get((workers, threads), 0.0) + r["seconds"]
            trials[workers, threads] = trials.get((workers, threads), 0) + trained
            used = re.search(r"x (\d+) threads|(\d+) threads;", r["log"])
            shown = f"--threads {threads}" if threads else f"default threads ({next(g for g in used.groups() if g) if used else '?'})"
            print(f"--workers {workers} {shown}: {trained} trained trials in {r['seconds']:.1f} s = "
                  f"{trained / r['seconds'] * 3600:.0f} trials/hour; exit {r['rc']}, failed trials {states.count('FAIL')}, "
                  f"duplicate trial numbers {len(numbers) - len(set(numbers))}, error lines {r['errors']}, "
                  f"peak RSS of the largest process {r['rss_mb']:.0f} MB", flush=True)
            if r["rc"] != 0 or r["errors"]:
                print(r["log"][-3000:])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rate = {key: trials[key] / seconds[key] * 3600 for key in seconds}
    if (1, None) in rate:
        print(f"--workers 2 / --workers 1 with default threads: {rate[two] / rate[1, None]:.2f}")
    print(f"search speedup (--workers {two[0]} --threads {two[1]} / --workers 1 --threads {cores}, trials per hour, "
          f"all rounds): {rate[two] / rate[one]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["train", "search", "parts"], default="train")
    ap.add_argument("--preset", default="B", help="seed model for train mode (default B)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-limit", type=int, help="train mode: use only N training images (default: all 55,000)")
    ap.add_argument("--reference-threads", type=int,
                    help="train mode: torch threads of the reference loop (default: torch's default)")
    ap.add_argument("--parts-repeats", type=int, default=3, help="parts mode: rounds of the four variants")
    ap.add_argument("--search-trials", type=int, default=12)
    ap.add_argument("--search-train-limit", type=int, default=10000)
    ap.add_argument("--search-repeats", type=int, default=2, help="search mode: rounds of the two runs")
    ap.add_argument("--search-val-size", type=int, default=2000)
    ap.add_argument("--search-default-threads", action="store_true",
                    help="search mode: also run --workers 1 with its default thread count")
    ap.add_argument("--overhead", action="store_true",
                    help="the search's own cost per trial at 100, 1,000 and 5,000 trials (scripts/bench_overhead.py)")
    ap.add_argument("--overhead-sizes", default="100,1000,5000", help="overhead: the study sizes")
    ap.add_argument("--arm", choices=["reference", "budgetnas"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.overhead:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_overhead
        bench_overhead.main([int(v) for v in args.overhead_sizes.split(",")])
    elif args.arm:
        if args.arm == "reference":
            print(json.dumps(arm_reference(args.preset, args.train_limit, args.seed, args.reference_threads)))
        else:
            print(json.dumps(arm_budgetnas(args.preset, args.train_limit, args.seed)))
    elif args.mode == "search":
        search_mode(args)
    elif args.mode == "parts":
        parts_mode(args)
    else:
        train_mode(args)


if __name__ == "__main__":
    main()
