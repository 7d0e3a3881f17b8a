#!/usr/bin/env python
"""Per-trial overhead of the search itself: ``python scripts/bench.py --overhead``.

Everything a search does around training, measured with the trainer stubbed out: the
sampler, the budget checks, the trial record and its storage writes, the dashboard note,
the pruner's reads at each report, building the model, saving its weights, the plots
published for optuna-dashboard, the --trials bookkeeping. The stub reports a made-up
validation accuracy (a smooth function of the parameter count plus seeded noise, rising
over the reports) at every report point, so the pruner prunes and TPE models the values
as in a real search; it does no arithmetic.

For each size (100, 1,000, 5,000 trials by default), in a fresh process each:

* search: ``run.engine.run_search`` (the code ``budgetnas search`` runs) on a new SQLite
  file, with the stub as trainer;
* Optuna alone: a study on a new SQLite file (opened as budgetnas opens one), the same
  sampler (TPE as budgetnas makes it for one process) sampling the same space with the
  same budget constraint (a candidate over it set as infeasible and pruned), the same
  made-up reports judged by the same pruner, the same value returned; no record, no note,
  no model, no weights, no plots: Optuna's own cost for such a study, what a user wiring
  Optuna to the same space would pay.

It prints ms per trial over the whole run and over its last tenth (what one more trial
costs at that size), for both, and their difference: what budgetnas adds. The last line
is ``overhead: N ms/trial at 1000 trials`` (the whole search's mean at 1,000 trials).
Run it alone: another process on these cores changes every number.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BUDGETNAS_OFFLINE", "1")

BUDGET = 25_000


REPORTS = 4  # validation reports of a 1-epoch trial (the default --eval-points)


def accuracy(params: int, seed: int) -> float:
    """The made-up final validation accuracy of a net of ``params`` parameters."""
    return min(0.995, 0.90 + 0.08 * (1 - math.exp(-params / 8000)) + random.Random(seed).gauss(0, 0.01))


def stub_train(model, data, recipe, *, seed=0, report=None, eval_points=REPORTS, **_ignored):
    """train.loop.train's contract without the training: reports, then a TrainResult."""
    from budgetnas.train.loop import TrainResult, report_count
    final = accuracy(sum(p.numel() for p in model.parameters()), seed)
    n = report_count(len(data.train_x), recipe, eval_points)
    for k in range(1, n + 1):
        if report is not None:
            report(k, final * (0.85 + 0.15 * k / n))
    history = [{"epoch": e + 1, "val_acc": final, "loss": 0.1, "seconds": 0.0} for e in range(recipe.epochs)]
    history[-1]["test_acc"] = final - 0.002
    return TrainResult(val_acc=final, test_acc=final - 0.002, seconds=0.0, epochs=recipe.epochs, history=history)


def tiny_dataset(folder: Path) -> Path:
    """600 random 1x28x28 images of 10 classes: the trainer is stubbed, only shapes matter."""
    import numpy as np
    rng = np.random.default_rng(0)
    path = folder / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (600, 28, 28), dtype=np.uint8), y_train=np.arange(600) % 10)
    return path


def run_search(n: int, folder: Path) -> dict:
    from budgetnas.config import DataConfig, SearchConfig
    from budgetnas.run import engine
    from budgetnas.study import objective

    objective.train = stub_train
    url = f"sqlite:///{folder / 'overhead.db'}"
    cfg = SearchConfig(budget=BUDGET, epochs=1, trials=n, study="overhead", storage=url, threads=1,
                       data=DataConfig(dataset=str(tiny_dataset(folder)), val_size=100))
    stamps: list[float] = []
    start = [0.0]

    class Clock(engine.View):
        def started(self, study, lines) -> None:  # the data is loaded, the study made: trials begin
            start[0] = time.perf_counter()

        def trial_done(self) -> None:
            stamps.append(time.perf_counter())

    outcome = engine.run_search(cfg, url, Clock())
    states: dict[str, int] = {}
    for t in outcome.study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    return {"stamps": stamps, "start": start[0], "states": states}


def run_sampler(n: int, folder: Path) -> dict:
    import optuna

    from budgetnas.arch import param_count
    from budgetnas.space import Space, sample_recipe, sample_spec
    from budgetnas.study.create import make_pruner, make_sampler, quiet_optuna
    from budgetnas.study.storage import open_storage

    quiet_optuna()
    space = Space()
    storage = open_storage(f"sqlite:///{folder / 'sampler.db'}")  # as budgetnas opens it (WAL, fast commits)
    study = optuna.create_study(storage=storage, sampler=make_sampler("tpe", 0, parallel=False),
                                pruner=make_pruner("auto", 1, REPORTS), direction="maximize")
    stamps: list[float] = []
    start = time.perf_counter()

    def objective(trial):
        spec = sample_spec(trial, space, BUDGET)
        params = param_count(spec)
        trial.set_constraint("params_over_budget", float(params - BUDGET))  # what TPE sees of the budget
        if params > BUDGET:
            raise optuna.TrialPruned()  # rejected unbuilt, as budgetnas rejects it
        sample_recipe(trial, space, 1)
        final = accuracy(params, trial.number)
        for k in range(1, REPORTS + 1):  # the stub's reports, judged by the same pruner
            trial.report(final * (0.85 + 0.15 * k / REPORTS), k)
            if k < REPORTS and trial.should_prune():
                raise optuna.TrialPruned()
        return final

    study.optimize(objective, n_trials=n, callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return {"stamps": stamps, "start": start, "states": {}}


def per_trial(stamps: list[float], start: float) -> tuple[float, float]:
    """(ms per trial over the run, ms per trial over its last tenth)."""
    n = len(stamps)
    tenth = max(1, n // 10)
    whole = 1000 * (stamps[-1] - start) / n
    last = 1000 * (stamps[-1] - stamps[-tenth - 1]) / tenth if n > tenth else whole
    return whole, last


def child(kind: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="budgetnas-overhead-") as tmp:
        out = (run_search if kind == "search" else run_sampler)(n, Path(tmp))
        whole, last = per_trial(out["stamps"], out["start"])  # start-up (data, study) not counted
        print(json.dumps({"trials": len(out["stamps"]), "whole_ms": whole, "last_ms": last,
                          "states": out["states"]}))


def measure(kind: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} at {n} trials failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(sizes: list[int]) -> None:
    print(f"per-trial cost of the search with the trainer stubbed (SQLite, TPE, budget {BUDGET:,}, 1 epoch, "
          f"4 reports a trial); ms per trial over the run / over its last tenth", flush=True)
    print(f"{'trials':>7} {'search':>17} {'Optuna alone':>17} {'budgetnas adds':>17}  trial states", flush=True)
    at: dict[int, float] = {}
    for n in sizes:
        s, o = measure("search", n), measure("sampler", n)
        at[n] = s["whole_ms"]
        print(f"{n:>7} {s['whole_ms']:>8.1f} /{s['last_ms']:>7.1f} {o['whole_ms']:>8.1f} /{o['last_ms']:>7.1f} "
              f"{s['whole_ms'] - o['whole_ms']:>8.1f} /{s['last_ms'] - o['last_ms']:>7.1f}  "
              f"{', '.join(f'{v} {k}' for k, v in sorted(s['states'].items()))}", flush=True)
    ref = 1000 if 1000 in at else sizes[-1]
    print(f"overhead: {at[ref]:.1f} ms/trial at {ref} trials")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--child", choices=["search", "sampler"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n)
    else:
        main([int(v) for v in args.sizes.split(",")])
