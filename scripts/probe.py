"""Measure variants of the built-in default candidates before changing them: each variant
(a default's Optuna parameters with some overridden) trained N epochs with several seeds on
full MNIST, validation accuracy printed first (what a choice may be made on), test second.

    python scripts/probe.py --budget 8000 --epochs 15 --seeds 0 1 2 --jobs 0/1 [--device cuda]

--jobs K/N runs every N-th (variant, seed) pair from the K-th, so N processes can share one
machine; each writes JSON lines to --out (default stdout only).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUG = {"augment": True, "rotate": 7.0, "translate": 0.05}
VARIANTS = {  # name: (default, overrides)
    "two-conv": ("DEFAULT_TRIAL", {}),
    "two-conv+aug": ("DEFAULT_TRIAL", AUG),
    "two-conv+aug10": ("DEFAULT_TRIAL", {**AUG, "rotate": 10.0, "translate": 0.1}),
    "two-conv+rot": ("DEFAULT_TRIAL", {**AUG, "translate": 0.0}),
    "two-conv-lr1e-2": ("DEFAULT_TRIAL", {"lr_adamw": 1e-2}),
    "two-conv-lr1e-2+aug": ("DEFAULT_TRIAL", {**AUG, "lr_adamw": 1e-2}),
    "two-conv+aug-b128": ("DEFAULT_TRIAL", {**AUG, "batch_size": 128}),
    "two-conv+aug-gap": ("DEFAULT_TRIAL", {**AUG, "head": "gap"}),
    "plain-sgd": ("PLAIN_SGD_TRIAL", {}),
    "plain-sgd+aug": ("PLAIN_SGD_TRIAL", AUG),
    "separable": ("SMALL_DEFAULT_TRIAL", {}),
    "separable+aug": ("SMALL_DEFAULT_TRIAL", AUG),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--jobs", default="0/1")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    import optuna
    import torch
    from budgetnas import arch, space as sp
    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.arch.build import build_model
    from budgetnas.train.loop import train

    torch.set_num_threads(a.threads)
    k, n = map(int, a.jobs.split("/"))
    pairs = [(v, s) for v in a.variants for s in a.seeds][k::n]
    data = load_data(DataConfig()).to(a.device)
    space = sp.Space()
    for variant, seed in pairs:
        base, over = VARIANTS[variant]
        params = {**getattr(sp, base), **over}
        trial = optuna.trial.FixedTrial(params)
        spec = sp.sample_spec(trial, space, a.budget)
        recipe = sp.sample_recipe(trial, space, a.epochs)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        r = train(build_model(spec), data, recipe, device=a.device, seed=seed)
        row = {"variant": variant, "seed": seed, "epochs": a.epochs, "budget": a.budget,
               "params": arch.param_count(spec), "val_acc": r.val_acc, "test_acc": r.test_acc,
               "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
