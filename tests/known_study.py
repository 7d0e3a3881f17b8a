"""A real SQLite study whose leaderboard is known in advance: the test writes each trial's
stored measurements itself (real specs, their real parameter counts and MACs), so the
Pareto front, the tier winners and every sort order can be asserted by trial number.

Budget 25,000; default tiers 2k, 5k, 10k, 20k, 25k.

  trial  spec           params  val acc  state      why
  0      preset B       24,048  99.0     complete   most accurate: front, 25k winner
  1      preset A        8,762  98.5     complete   front; 10k and 20k winner
  2      preset C       12,400  98.0     complete   dominated by 1 (larger, less accurate)
  3      preset D        9,798  98.5     complete   ties 1 on accuracy but larger: not front
  4      10 P 16 P       1,752  95.0     complete   front; 2k winner
  5      6 P 8 P           604  (99.0)   pruned     its last report would top the front
  6      48 48 P 64 64  86,778  -        rejected   over budget, never built
  7      16 P 24 P       3,930  96.0     complete   front; 5k winner
  8      12 P 16 P       2,062  94.0     complete   dominated by 4
  9      -                   -  -        failed
  10     16 P 32 P       5,178  97.0     complete   front (just over the 5k tier)
"""
from __future__ import annotations

import optuna

from budgetnas.space.presets import PRESETS
from budgetnas.arch import macs, param_count
from budgetnas.space import stage_spec

NAME = "known"
BUDGET = 25_000
FRONT = [0, 1, 4, 7, 10]
TIERS = {2_000: 4, 5_000: 7, 10_000: 1, 20_000: 1, 25_000: 0}
ORDER = {  # trial numbers, best first, as each --sort must rank the completed trials
    "accuracy": [0, 1, 3, 2, 10, 7, 4, 8],
    "efficiency": [1, 3, 0, 2, 10, 7, 4, 8],  # 100*acc - 0.5*log2(params/1000): 96.93, 96.85, 96.71, ...
    "params": [4, 8, 7, 10, 1, 3, 2, 0],
}
PARAMS = {0: 24_048, 1: 8_762, 2: 12_400, 3: 9_798, 4: 1_752, 7: 3_930, 8: 2_062, 10: 5_178}


def small(widths: list[int], convs: int = 1):
    return stage_spec(len(widths), convs, widths, True, "gap", 0, 0.0, 0.0)


def make(url: str) -> str:
    """Create the study in ``url`` (an SQLite URL); return its name."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=NAME, storage=url, direction="maximize")
    study.set_user_attr("settings", {"budget": BUDGET, "dataset": "mnist", "epochs": 1})
    P = optuna.trial.TrialState.PRUNED

    def complete(spec, acc):
        return optuna.trial.create_trial(value=acc, intermediate_values={1: acc - 0.05, 2: acc}, user_attrs={
            "val_acc": acc, "test_acc": acc - 0.001, "params": param_count(spec), "macs": macs(spec),
            "budget": BUDGET, "seconds": 2.0, "spec": spec.to_dict()})

    trials = [
        complete(PRESETS["B"].spec, 0.990),
        complete(PRESETS["A"].spec, 0.985),
        complete(PRESETS["C"].spec, 0.980),
        complete(PRESETS["D"].spec, 0.985),
        complete(small([10, 16]), 0.950),
        optuna.trial.create_trial(state=P, intermediate_values={1: 0.99}, user_attrs={
            "params": param_count(small([6, 8])), "budget": BUDGET, "spec": small([6, 8]).to_dict(), "pruned_at": 1}),
        optuna.trial.create_trial(state=P, user_attrs={
            "params": param_count(small([48, 64], 2)), "budget": BUDGET, "spec": small([48, 64], 2).to_dict(),
            "rejected": f"{param_count(small([48, 64], 2))} params > budget {BUDGET}"}),
        complete(small([16, 24]), 0.960),
        complete(small([12, 16]), 0.940),
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL),
        complete(small([16, 32]), 0.970),
    ]
    for t in trials:
        study.add_trial(t)
    got = {t.number: t.user_attrs.get("params") for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert got == PARAMS, got  # the table above still describes the study
    return NAME
