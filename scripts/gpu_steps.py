#!/usr/bin/env python
"""The training step on a GPU, eager against captured (issue 25; run by scripts/gpu-check.sh).

    python scripts/gpu_steps.py [--device cuda] [--train-limit N] [--seeds 3]

For seed B's architecture (and, with --preset, another) on full MNIST, one epoch each:

* syncs: host-device synchronizations counted while the steps run (CUDA's sync debug
  mode set to "warn", one warning per sync; evaluation at report points excluded), eager
  and captured;
* ms per step and seconds per 1-epoch trial (evaluation included) at batch 64 and 256,
  eager and captured, after one untimed run of each (CUDA start-up, cuDNN plans);
* accuracy: captured against eager over --seeds seeds (test accuracy, mean and spread).

The lines end with ``steps: captured X ms/step vs eager Y ms/step (batch 64)``. On a CPU
(--device cpu, a rehearsal) there is no capture and no sync to count: both arms are eager.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def summary(storage: str, study_name: str, seconds: float, label: str) -> None:
    """One line for a search: trained trials per hour of its wall time, median seconds of
    its complete trials, the winner (best validation accuracy) and its test accuracy."""
    from budgetnas.study import record
    from budgetnas.study.create import load_existing
    study, _ = load_existing(study_name, storage)
    trials = study.get_trials(deepcopy=False)
    trained = sum(record.trained(t) for t in trials)
    done = [record.read(t) for t in trials if record.status(t) in ("complete", "rerun")]
    median = statistics.median(r.seconds for r in done) if done else float("nan")
    best = max((r for r in done if r.rerun_of is None), key=lambda r: r.val_acc, default=None)
    captured = sum(r.step == "captured" for r in done)
    win = (f"winner {best.params:,} params val {100 * best.val_acc:.2f}% test {100 * best.test_acc:.2f}%"
           if best else "no winner")
    print(f"{label}: {trained} trained trials in {seconds:.0f} s = {3600 * trained / seconds:,.0f} an hour; "
          f"median trial {median:.2f} s ({captured}/{len(done)} captured); {win}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary", nargs=4, metavar=("STORAGE", "STUDY", "SECONDS", "LABEL"),
                    help="print one line about a finished search instead")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="B")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    if args.summary:
        return summary(args.summary[0], args.summary[1], float(args.summary[2]), args.summary[3])

    import torch

    from budgetnas.arch.build import build_model
    from budgetnas.config import DataConfig
    from budgetnas.data.load import load_data
    from budgetnas.space.presets import PRESETS
    from budgetnas.train import Recipe
    from budgetnas.train.loop import epoch_steps, train

    device = torch.device(args.device)
    data = load_data(DataConfig(data_dir=args.data_dir, train_limit=args.train_limit)).to(device)
    spec = PRESETS[args.preset].spec
    print(f"{args.preset}: {sum(p.numel() for p in build_model(spec).parameters()):,} params; device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else "")
          + f"; {len(data.train_x):,} training images", flush=True)

    def run(capture: bool, batch: int, seed: int = 0, **kw):
        torch.manual_seed(seed)
        model = build_model(spec)
        return train(model, data, Recipe(batch_size=batch, lr=0.005 * (batch / 64) ** 0.5), device=device, seed=seed,
                     capture=capture, **kw)

    # syncs counted: each sync in warn mode is one warning
    for capture in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = run(capture, 64, sync_debug="warn" if device.type == "cuda" else 0)
        syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
        print(f"syncs inside the steps, {'captured' if capture else 'eager'} ({r.step}): {syncs}", flush=True)

    times = {}
    for batch in (64, 256):
        steps = epoch_steps(len(data.train_x), batch)
        for capture in (False, True):
            run(capture, batch)  # untimed: start-up and cuDNN plans
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            r = run(capture, batch, seed=1)
            seconds = time.perf_counter() - t0
            times[(batch, capture)] = 1000 * seconds / steps
            print(f"batch {batch:>3}, {'captured' if capture else 'eager   '} ({r.step}): 1-epoch trial {seconds:.2f} s "
                  f"(eval included), {1000 * seconds / steps:.2f} ms/step over {steps} steps, test {100 * r.test_acc:.2f}%",
                  flush=True)

    accs = {}
    for capture in (False, True):
        accs[capture] = [100 * run(capture, 64, seed=100 + s).test_acc for s in range(args.seeds)]
        spread = statistics.pstdev(accs[capture])
        print(f"accuracy, {'captured' if capture else 'eager'}, {args.seeds} seeds: "
              f"{statistics.mean(accs[capture]):.2f}% +- {spread:.2f} ({', '.join(f'{a:.2f}' for a in accs[capture])})",
              flush=True)
    print(f"steps: captured {times[(64, True)]:.2f} ms/step vs eager {times[(64, False)]:.2f} ms/step (batch 64)")


if __name__ == "__main__":
    main()
