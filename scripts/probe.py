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
    # issue 23: the residual and inverted-residual first trials
    "res": ("RES_TRIAL", {}),
    "res-g1.5": ("RES_TRIAL", {"growth": 1.5}),
    "res-2": ("RES_TRIAL", {"growth": 1.5, "convs_per_stage": 2}),
    "res-stride": ("RES_TRIAL", {"growth": 1.5, "downsample": "stride"}),
    "res-adamw": ("RES_TRIAL", {"growth": 1.5, "optimizer": "adamw", "lr_adamw": 1e-2, "batch_size": 64}),
    "res-b32": ("RES_TRIAL", {"growth": 1.5, "batch_size": 32}),
    "res-b128": ("RES_TRIAL", {"growth": 1.5, "batch_size": 128}),
    "res-lr0.15": ("RES_TRIAL", {"growth": 1.5, "lr_sgd": 0.15}),
    "res-ls": ("RES_TRIAL", {"growth": 1.5, "label_smoothing": 0.1}),
    "res-flip": ("RES_TRIAL", {"growth": 1.5, "hflip": True}),
    "res-gap": ("RES_TRIAL", {"growth": 1.5, "head": "gap"}),
    "res-g1": ("RES_TRIAL", {"growth": 1.0}),
    "res-cos": ("RES_TRIAL", {"growth": 1.5, "schedule": "cosine"}),
    "res-wd": ("RES_TRIAL", {"growth": 1.5, "weight_decay": 5e-4}),
    "plain-sgd-b32": ("PLAIN_SGD_TRIAL", {"batch_size": 32}),
    "mb": ("MBCONV_TRIAL", {}),
    "mb-g1.5": ("MBCONV_TRIAL", {"growth": 1.5}),
    "mb-1": ("MBCONV_TRIAL", {"growth": 1.5, "convs_per_stage": 1}),
    "mb-se": ("MBCONV_TRIAL", {"growth": 1.5, "se": True}),
    "mb-flat": ("MBCONV_TRIAL", {"growth": 1.5, "head": "flatten"}),
    "mb-sgd": ("MBCONV_TRIAL", {"growth": 1.5, "optimizer": "sgd", "lr_sgd": 0.3}),
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
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--space", default="default", help="the named space the variants are made into")
    a = ap.parse_args()
    import optuna
    import torch
    from budgetnas import arch, space as sp
    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.arch.build import build_model
    from budgetnas.space.defaults import fill
    from budgetnas.train.loop import train

    torch.set_num_threads(a.threads)
    k, n = map(int, a.jobs.split("/"))
    pairs = [(v, s) for v in a.variants for s in a.seeds][k::n]
    data = load_data(DataConfig(dataset=a.dataset)).to(a.device)
    c, h, _ = data.shape
    space = sp.for_data(a.space, c, h, data.num_classes, data.hflip)
    for variant, seed in pairs:
        base, over = VARIANTS[variant]
        params = fill({**getattr(sp, base), **over}, space, a.budget, None, None, a.epochs)
        trial = optuna.trial.FixedTrial(params)
        spec = sp.sample_spec(trial, space, a.budget)
        recipe = sp.sample_recipe(trial, space, a.epochs)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        r = train(build_model(spec), data, recipe, device=a.device, seed=seed)
        row = {"variant": variant, "dataset": a.dataset, "arch": arch.summary(spec.to_dict()), "seed": seed, "epochs": a.epochs, "budget": a.budget,
               "params": arch.param_count(spec), "val_acc": r.val_acc, "test_acc": r.test_acc,
               "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
