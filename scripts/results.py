"""Regenerate docs/RESULTS.md from real runs: seed reproductions, searches that try to
beat each seed at its own parameter count, budget tiers, a long-trained 8k winner, and
the data-subset fidelity option.

Every run's measurements are cached in studies/results/runs.json (keyed by what was run),
so the script can be stopped and resumed, and the table is rebuilt from the cache:

    python scripts/results.py                  # everything (hours on a 2-core CPU)
    python scripts/results.py --part repro     # one part: repro | search | long | seeds | subset | race
    python scripts/results.py --part race --race race5k   # one row of the 15-minute race
    python scripts/results.py --part int8      # int8 exports of the race's 25k and 5k winners
    python scripts/results.py --render         # only rewrite docs/RESULTS.md from the cache

Selection is on the validation split only; test accuracy is reported, never used to pick.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from budgetnas.config import DataConfig, SearchConfig
from budgetnas.train.recipe import Recipe

OUT = ROOT / "studies" / "results"
CACHE = OUT / "runs.json"
SEEDS = (0, 1, 2)
SEED_BUDGETS = {"A": 8_762, "B": 24_048, "C": 12_400, "D": 9_798, "E": 421_642}
TIER_BUDGETS = (25_000, 10_000, 5_000, 2_000)
TARGETS = {25_000: 0.9935, 10_000: 0.9915, 5_000: 0.99, 2_000: 0.983}

# The race (issue 14): a search given the time a person would spend tuning by hand,
# against a quick hand-tuned net of the same size trained the same way. name: (budget,
# epochs, search seconds, target test accuracy, the hand-tuned widths)
RACE = {
    "race25k": (25_000, 1, 900, 0.9935, (16, 32, 48)),
    "race10k": (10_000, 1, 900, 0.9920, (8, 16, 32)),
    "race5k": (5_000, 1, 900, 0.9900, (8, 13, 18)),
    "race2k": (2_000, 1, 900, 0.9830, (4, 6, 10)),
    "race8k15": (8_000, 15, 3600, 0.9945, (8, 16, 24)),
}
# the hand-tuned recipe: 3x3 conv (no bias) + BN + ReLU + 2x2 max pool per stage, flatten,
# one linear layer; SGD momentum 0.9 Nesterov, OneCycle peak lr 0.3, batch 64, no augmentation
HAND_RECIPE = Recipe(optimizer="sgd", lr=0.3, schedule="onecycle", batch_size=64, weight_decay=0.0)


def load_cache() -> dict:
    return json.loads(CACHE.read_text()) if CACHE.exists() else {}


def save(cache: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(CACHE)


_DATA = {}


def data(cfg: DataConfig = DataConfig()):
    from budgetnas.data.load import load_data
    if cfg not in _DATA:
        _DATA[cfg] = load_data(cfg)
    return _DATA[cfg]


def train_once(spec_dict: dict, recipe: Recipe, seed: int, cfg: DataConfig = DataConfig()) -> dict:
    import torch
    from budgetnas.arch.build import build_model
    from budgetnas.arch import ArchSpec, param_count
    from budgetnas.train.loop import train
    spec = ArchSpec.from_dict(spec_dict)
    torch.manual_seed(seed)
    model = build_model(spec)
    r = train(model, data(cfg), recipe, seed=seed, test_each_epoch=True)
    return {"val_acc": r.val_acc, "test_acc": r.test_acc, "seconds": r.seconds, "params": param_count(spec),
            "history": r.history}


def cached_train(cache, key, spec_dict, recipe, seed, cfg=DataConfig()):
    if key not in cache:
        print(f"[results] {key} ...", flush=True)
        cache[key] = train_once(spec_dict, recipe, seed, cfg)
        save(cache)
        print(f"[results] {key}: test {100 * cache[key]['test_acc']:.2f}% in {cache[key]['seconds']:.0f}s", flush=True)
    return cache[key]


# --- parts -------------------------------------------------------------------------------
def part_repro(cache: dict, long_seeds: int = 3) -> None:
    from budgetnas.space.presets import PRESETS
    for name, p in PRESETS.items():
        for epochs in sorted({1, p.recipe.epochs}):
            recipe = Recipe.from_dict({**p.recipe.to_dict(), "epochs": epochs})
            for seed in SEEDS[: long_seeds if epochs > 1 else 3]:  # long_seeds=0: 1-epoch runs only
                cached_train(cache, f"repro/{name}/e{epochs}/s{seed}", p.spec.to_dict(), recipe, seed)


def run_study(cache: dict, name: str, budget: int, trials: int | None, epochs: int = 1, timeout: float | None = None,
              search_kw: dict | None = None, **data_kw) -> dict:
    """A real search (the CLI's runner); returns its rank 1 (by validation accuracy; mean
    over runs where the search re-ran its best candidates)."""
    import optuna
    from budgetnas.results import leaderboard as lb
    from budgetnas.run.engine import run_search
    key = f"search/{name}"
    if key not in cache:
        url = f"sqlite:///{OUT / (name + '.db')}"
        cfg = SearchConfig(budget=budget, epochs=epochs, trials=trials, timeout=timeout, study=name, seed=0,
                           artifacts=str(OUT / f"{name}-weights"), warm_start=None, data=DataConfig(**data_kw),
                           **(search_kw or {}))
        t0 = time.perf_counter()
        print(f"[results] search {name} (budget {budget}, {trials} trials) ...", flush=True)
        run_search(cfg, url)  # silent: the engine with no view
        study = optuna.load_study(study_name=name, storage=url)
        entries = lb.build(study.get_trials(deepcopy=False))
        best = entries[0]
        # the first trained trial: the built-in default (a default over the budget, as the
        # 2k one is, is rejected untrained and has no recipe)
        first = next(t for t in study.trials if t.user_attrs.get("recipe"))
        cache[key] = {"budget": budget, "trials": len(study.trials), "seconds": time.perf_counter() - t0,
                      "best_trial": best.trial, "val_acc": best.sel_acc, "test_acc_trial": best.test_mean,
                      "runs": best.n_runs, "first": {"spec": first.user_attrs.get("spec"),
                                                     "recipe": first.user_attrs.get("recipe")},
                      "params": best.params, "spec": best.spec, "recipe": best.recipe,
                      "trained": sum(e.state in ("complete", "pruned") for e in lb.build(study.trials, include_all=True)),
                      "rejected": sum(e.state == "rejected" for e in lb.build(study.trials, include_all=True)),
                      "sampled": sampled_quality(study)}
        save(cache)
        print(f"[results] search {name}: best val {100 * best.val_acc:.2f}% at {best.params:,} params", flush=True)
    return cache[key]


def confirm(cache: dict, name: str, found: dict, epochs: int = 1, seeds: int = 3, cfg: DataConfig = DataConfig()
            ) -> list[dict]:
    """Retrain the search's winner (spec + recipe) with fresh seeds (3 unless told)."""
    recipe = Recipe.from_dict({**found["recipe"], "epochs": epochs})
    return [cached_train(cache, f"confirm/{name}/e{epochs}/s{seed}", found["spec"], recipe, 100 + seed, cfg)
            for seed in SEEDS[:seeds]]


def sampled_quality(study) -> dict:
    """Issue 23, item 4: where each trained candidate ended (its last validation report,
    pruned or not) against the best built-in first trial at the same report: the median
    sampled candidate's gap, and the share of the trials' time (re-runs included) spent on
    candidates that ended 2 pp or more behind. Re-runs and presets are not candidates."""
    trials = [t for t in study.trials if t.intermediate_values and t.user_attrs.get("seconds") is not None]
    first = [t for t in trials if "rerun_of" not in t.user_attrs and not t.user_attrs.get("preset")]
    builtin = [t for t in first if t.user_attrs.get("default_trial")]
    sampled = [t for t in first if not t.user_attrs.get("default_trial")]
    if not builtin or not sampled:
        return {}

    def gap(t) -> float:  # behind the best built-in one at t's last report
        step = max(t.intermediate_values)
        best = max((b.intermediate_values[step] for b in builtin if step in b.intermediate_values), default=None)
        return 0.0 if best is None else best - t.intermediate_values[step]

    total = sum(t.user_attrs["seconds"] for t in trials)
    behind = sum(t.user_attrs["seconds"] for t in first if gap(t) >= 0.02)
    return {"median_gap": statistics.median(gap(t) for t in sampled), "sampled": len(sampled),
            "share_time_2pp_behind": behind / total if total else 0.0,
            "pruned": sum(t.state.name == "PRUNED" for t in first)}


def hand_tuned(widths: tuple[int, ...]) -> dict:
    from budgetnas.space import stage_spec
    return stage_spec(len(widths), 1, list(widths), True, "flatten", 0, 0.0, 0.0).to_dict()


def part_race(cache: dict, only: list[str] | None = None) -> None:
    """Each row: a search with --timeout (re-runs of its best candidates inside that time),
    its winner, the hand-tuned net of the row and the study's built-in first trial, each
    retrained with 3 fresh seeds the same way (the row's epochs)."""
    for name, (budget, epochs, seconds, _, widths) in RACE.items():
        if only and name not in only:
            continue
        found = run_study(cache, name, budget, None, epochs=epochs, timeout=seconds)
        winner = confirm(cache, name, found, epochs=epochs)
        if (found["first"]["spec"], found["first"]["recipe"]) == (found["spec"], found["recipe"]):
            # the built-in first trial won: the same spec, recipe and seeds train the same
            # model, so its rows are the winner's (not trained twice)
            for seed, run in zip(SEEDS, winner):
                cache.setdefault(f"confirm/{name}-first/e{epochs}/s{seed}", {**run, "same_as": name})
            save(cache)
        confirm(cache, f"{name}-first", {**found["first"]}, epochs=epochs)
        confirm(cache, f"{name}-hand", {"spec": hand_tuned(widths), "recipe": HAND_RECIPE.to_dict()}, epochs=epochs)


# Issue 23: the default space (all block kinds) against the targets. name: (dataset, budget,
# search seconds, target test accuracy, extra search settings)
MARGIN = {"pruner": "margin"}  # what these rows ran with (it was 'auto' then; 'auto' is the median pruner again)
SPACE_ROWS = {
    "fm10k-median": ("fashion-mnist", 10_000, 900, 0.900, {"pruner": "median"}),  # before: the median pruner
    "fm10k": ("fashion-mnist", 10_000, 900, 0.900, MARGIN),
    "fm25k": ("fashion-mnist", 25_000, 900, 0.905, MARGIN),
    "mn10k": ("mnist", 10_000, 900, 0.9920, MARGIN),
    "mn5k": ("mnist", 5_000, 900, 0.9900, MARGIN),
    "mn25k": ("mnist", 25_000, 900, 0.9935, MARGIN),
    "mn2k": ("mnist", 2_000, 900, 0.9830, MARGIN),
    "color10k": ("color", 10_000, 600, None, MARGIN),  # scripts/make_color_data.py: no target, a check of the defaults
}
COLOR = OUT / "color.npz"


def dataset_of(name: str) -> str:
    """The --dataset of a row: 'color' is the synthetic color set, written if missing."""
    if name != "color":
        return name
    if not COLOR.exists():
        import subprocess
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_color_data.py"), str(COLOR)], check=True)
    return str(COLOR)
RACE_OF = {"mn10k": "race10k", "mn5k": "race5k", "mn25k": "race25k", "mn2k": "race2k"}  # the plain space's row


def hand_residual(budget: int, in_channels: int = 1, image_size: int = 28) -> dict:
    """The hand-placed residual net of issue 23: conv, max pool, a residual block, max pool,
    conv, max pool, flatten (12/12/28 channels at 10k: 8,382 params), scaled to the budget."""
    from budgetnas.arch import POOL, ArchSpec, Residual, conv
    w = {10_000: (12, 12, 28), 25_000: (20, 20, 44), 5_000: (8, 8, 20), 2_000: (4, 4, 8)}[budget]
    return ArchSpec((conv(w[0]), POOL, Residual(w[1]), POOL, conv(w[2]), POOL), head="flatten", in_channels=in_channels,
                    image_size=image_size).to_dict()


def part_spaces(cache: dict, only: list[str] | None = None) -> None:
    """Each row: a 15-minute search of the default space, its winner, the built-in first
    trial and the hand-placed residual net, each retrained with 3 fresh seeds."""
    from budgetnas.arch import ArchSpec
    for name, (dataset, budget, seconds, _, extra) in SPACE_ROWS.items():
        if only and name not in only:
            continue
        dataset = dataset_of(dataset)
        cfg = DataConfig(dataset=dataset)
        found = run_study(cache, name, budget, None, epochs=1, timeout=seconds, search_kw=extra, dataset=dataset)
        if (OUT / f"{name}.db").exists():  # measured again: the definition may have changed since the run
            import optuna
            found["sampled"] = sampled_quality(optuna.load_study(study_name=name, storage=f"sqlite:///{OUT / name}.db"))
            save(cache)
        confirm(cache, name, found, cfg=cfg)
        confirm(cache, f"{name}-first", {**found["first"]}, cfg=cfg)
        first = ArchSpec.from_dict(found["first"]["spec"])  # the data's input
        confirm(cache, f"{name}-hand", {"spec": hand_residual(budget, first.in_channels, first.image_size),
                                        "recipe": HAND_RECIPE.to_dict()}, cfg=cfg)


PIPE = "\\|"  # a '|' inside a table cell


def hand_params(found: dict, budget: int) -> int:
    from budgetnas.arch import ArchSpec, param_count
    first = ArchSpec.from_dict(found["first"]["spec"])
    return param_count(ArchSpec.from_dict(hand_residual(budget, first.in_channels, first.image_size)))


def pct(target: float | None) -> str:
    return "-" if target is None else f"{100 * target:.2f}"


def space_lines(cache: dict) -> list[str]:
    from budgetnas.results.formats import arch_summary
    lines = ["", "## Search spaces: residual and inverted-residual blocks (issue 23)", "",
             "Each row: `budgetnas search --dataset D --budget B --epochs 1 --timeout 900` (the color row: 600)",
             "with the default",
             "space (plain and separable convs, residual blocks, inverted residuals), its winner, the",
             "study's built-in first trial and a hand-placed residual net (conv, pool, residual block,",
             "pool, conv, pool, flatten; the quick SGD recipe), each retrained with 3 fresh seeds. Test",
             "accuracy, mean ± std. \"sampled\": the median sampled candidate's gap, at its last validation",
             "report (a pruned one's where it stopped), to the best built-in first trial at that report,",
             "and the share of the search's trial time spent on candidates that ended 2 pp or more behind.", "",
             "| row | target | search winner | params | architecture | built-in first | hand-placed residual | params "
             "| plain space (race) | sampled: median gap / time 2 pp behind | trained | met? |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (dataset, budget, seconds, target, extra) in SPACE_ROWS.items():
        found = cache.get(f"search/{name}")
        conf, first = runs(cache, f"confirm/{name}/e1/"), runs(cache, f"confirm/{name}-first/e1/")
        hand = runs(cache, f"confirm/{name}-hand/e1/")
        label = f"{ {'fashion-mnist': 'Fashion-MNIST', 'mnist': 'MNIST', 'color': 'Color (synthetic)'}.get(dataset, dataset)} {budget // 1000}k" + (
            f" ({', '.join(f'{k} {v}' for k, v in extra.items())})" if extra else "")
        race = runs(cache, f"confirm/{RACE_OF[name]}/e1/") if name in RACE_OF else []
        if not found or not conf:
            lines.append(f"| {label} | {pct(target)} | not run | | | | | | {ms(race) if race else '-'} | | | |")
            continue
        q = found.get("sampled") or {}
        sampled = (f"{100 * q['median_gap']:.2f} pp / {100 * q['share_time_2pp_behind']:.0f}%" if q else "-")
        m = mean(conf)
        verdict = "-" if target is None else "yes" if met(m, target) else f"no ({100 * (target - m):.2f} pp short)"
        lines.append(f"| {label} | {pct(target)} | {ms(conf)} | {found['params']:,} | "
                     f"`{arch_summary(found['spec']).replace('|', PIPE)}` "
                     f"| {ms(first)} | {ms(hand)} | {hand_params(found, budget):,} | "
                     f"{ms(race) if race else '-'} | {sampled} | {found.get('trained', '?')} | {verdict} |")
    return lines + SPACE_NOTES


SPACE_NOTES = """
- **What the rows ran with.** `fm10k-median` is the first run: the default space as first
  written (all four block kinds, widths filling 50-100% of the budget, batch 32-256, AdamW
  lr 1e-3-3e-2, SGD 0.01-0.3) and the median pruner deciding from three quarters of a run.
  The other rows run the default space as it is now (fill 70-100%, batch 32-128, AdamW
  3e-3-3e-2, SGD 0.05-0.3: the 11 candidates the first study sampled outside these ranges
  all ended 2.4 pp or more behind its best) and the margin pruner (`--pruner margin`, below).
  Same 15 minutes: 97 trained trials instead of 75 at Fashion-MNIST 10k, and a 0.34 pp better
  winner (89.20 against 88.86), an inverted-residual net (`8 P m14:5x4 P | flat`: one MBConv
  block, kernel 5, expand 4, 8,618 params).
- **The built-in first trials of the new blocks** were picked on Fashion-MNIST 10k, 1 epoch,
  validation accuracy, seeds 0 and 1 (`scripts/probe.py`, log in
  `docs/probes/issue23-fashion10k.jsonl`): the residual net with SGD at peak lr 0.15 (89.38 /
  89.18) over lr 0.3 (89.28 / 88.88), batch 128 (89.12 / 88.64), batch 32 (88.26 / 87.70),
  growth 2 (88.70), two blocks per stage (88.26) and stride-2 blocks instead of pools (87.84);
  the inverted-residual net with the quick SGD recipe (89.16 / 88.70) over AdamW (88.92), SE
  (88.66), kernel 5 or one block per stage (88.66). The plain SGD default scored 89.10 /
  89.16 there, the two-conv AdamW one 88.54.
- **Pruning** (`--pruner margin`, `study/create.py` `MarginPruner`; `auto` stays the median
  pruner): the median pruner decides only from three quarters of a run, so a candidate
  headed for last place costs three quarters of a trial. Replayed on the trials of
  `fm10k-median` (all of them ran to three quarters): stopping a trial more than 5 pp behind
  the best at a quarter of its run or 3 pp behind at half, and keeping the median rule after
  that, would have saved 20% of the trial time against the median pruner's 11%, and stopped
  one candidate that ended 0.44 pp behind the best (4, 3, 2 pp: the same; 3, 2, 1 pp: 37%,
  but three candidates within 0.5 pp of the best stopped; 8, 5 pp: 11%, none). The rows
  after `fm10k-median` ran with it. On the color set it stopped 81 of the 82 sampled
  candidates, most at their first report: there accuracy climbs steeply within the epoch
  (the built-in first trials went from 55-73% at a quarter to 95-99% at the end), so a
  quarter-run gap says little about the end. That is why `auto` is still the median pruner
  and the margin one is a choice.
- **"sampled"** compares each candidate where it ended (pruned ones at their last report)
  with the best built-in first trial at that same report. Target: the median within 1 pp.
  The time column counts every trained trial's seconds, re-runs included.
- The issue's numbers for the plain space at Fashion-MNIST 10k (22 trained trials, the
  median pruner, before this work): winner 88.45% test; its sampled candidates' median
  85.4% against 88.5-89.0% for the built-in ones.
- **Targets not met, and by how much.** Fashion-MNIST 10k: 89.20, 0.80 pp short of 90.00,
  but 0.75 pp above the plain space's search and above both the built-in first trial
  (88.12) and the hand-placed residual net (88.99). Fashion-MNIST 25k: 89.80, 0.70 pp short
  of 90.50, level with the hand-placed residual net (89.92 ± 0.25) within the retrains' spread
  (± 0.54: one epoch of Fashion-MNIST moves 0.5 pp from seed to seed). The median sampled
  candidate is within 1 pp of the best built-in one on MNIST (0.30 at 10k, 0.65 at 5k) and about at it on
  Fashion-MNIST 10k (1.00 with the median pruner, 1.10 with the margin one), not at
  25k (2.90) or on the color set (26 pp).
- **MNIST is 0.05-0.07 pp below the plain space's race rows**, inside one standard deviation:
  10k 98.96 ± 0.07 against 99.03 ± 0.08 (86 trained candidates, the race row 22; it named the
  plain SGD default `12 P 18 P 28 P`, validation mean 98.79 against the race winner's 98.75),
  5k 98.76 ± 0.14 against 98.81 ± 0.03 (80 trained, a plain two-conv net). MNIST does not
  separate the block kinds (the hand-placed residual net: 99.06 at 10k, 98.75 at 5k). The
  25k and 2k rows were not run again.
- **The color set** (`scripts/make_color_data.py`: shapes at random places in random colors,
  32x32 RGB) is where the new blocks matter most: the winner, inverted residuals with
  squeeze-excite and a GAP head, scored 99.45 against 97.26 for the built-in first trial
  and 94.36 for the hand-placed residual net (10,558 params: three input channels put it
  over 10k). Its median gap of 26 pp is measured where the margin pruner stopped the
  candidates, mostly at a quarter of their run (Pruning, below). A prior learned on the
  grey datasets alone would have removed this winner: on Fashion-MNIST the GAP head scored
  worst of the heads, here the winner has one. The heads stay a choice.
""".splitlines()


INT8_ROWS = ("race25k", "race5k")  # issue 16: int8 within 0.3 pp of float for the 25k and 5k winners
INT8_TARGET_PP = 0.3


def part_int8(cache: dict) -> None:
    """Export each INT8_ROWS search's winner (its stored weights) with model.int8.onnx:
    the float and int8 ONNX test accuracy on the 10,000 test images (onnxruntime), sizes
    and single-image latencies, from the export's manifest."""
    import optuna
    from budgetnas.export.trial import export_trial
    for name in INT8_ROWS:
        found, key = cache.get(f"search/{name}"), f"int8/{name}"
        if not found or cache.get(key, {}).get("trial") == found["best_trial"]:
            continue
        url = f"sqlite:///{OUT / (name + '.db')}"
        study = optuna.load_study(study_name=name, storage=url)
        print(f"[results] int8 export of {name} trial {found['best_trial']} ...", flush=True)
        _, out, manifest = export_trial(study, url, OUT / f"{name}-export", trial=found["best_trial"],
                                        artifacts=str(OUT / f"{name}-weights"))
        cache[key] = {"trial": found["best_trial"], "params": manifest["params"], "int8": manifest.get("int8"),
                      "latency": manifest.get("latency")}
        save(cache)


def int8_lines(cache: dict) -> list[str]:
    lines = ["", "## int8 export of the race winners (issue 16)", "",
             "`budgetnas export` of each winner's stored weights: post-training static int8 quantization",
             "(onnxruntime, QDQ, calibrated on a seeded sample of training images); both ONNX models scored",
             f"with onnxruntime on the 10,000 test images. Target: int8 within {INT8_TARGET_PP} pp of float.",
             "\"first conv float\": all int8 agreed with the float model on fewer than 99.8% of 2,048 other",
             "training images, so the export kept the first conv in float (README, int8).", "",
             "| winner | params | float ONNX test | int8 test | drop | same class | bytes float / int8 | met? |",
             "|---|---|---|---|---|---|---|---|"]
    for name in INT8_ROWS:
        r = cache.get(f"int8/{name}")
        if not r or not r.get("int8"):
            lines.append(f"| {name} | | not run | | | | | |")
            continue
        q = r["int8"]
        drop = 100 * (q["float_onnx_test_acc"] - q["int8_test_acc"])
        sizes = f"{q['bytes']['model.onnx']:,} / {q['bytes']['model.int8.onnx']:,}"
        kept = "; first conv float" if "first conv kept float" in q.get("quantization", "") else ""
        lines.append(f"| {name} (trial {r['trial']}{kept}) | {r['params']:,} | {100 * q['float_onnx_test_acc']:.2f} | "
                     f"{100 * q['int8_test_acc']:.2f} | {drop:.2f} pp | {100 * q['agreement']:.2f}% | {sizes} | "
                     f"{'yes' if round(drop, 2) <= INT8_TARGET_PP else 'no'} |")
    return lines


def part_search(cache: dict, trials: int) -> None:
    for budget in TIER_BUDGETS:
        name = f"tier{budget // 1000}k"
        confirm(cache, name, run_study(cache, name, budget, trials))


def best_at_most(cache: dict, limit: int) -> dict | None:
    """The best trial (by validation accuracy) of all searches run here with params <=
    limit: what budgetnas found at a seed's parameter count."""
    import optuna
    from budgetnas.results import leaderboard as lb
    best = None
    for key in sorted(k for k in cache if k.startswith("search/")):
        name = key.split("/", 1)[1]
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{OUT / (name + '.db')}")
        for e in lb.build(study.get_trials(deepcopy=False)):
            if e.params <= limit and (best is None or e.val_acc > best["val_acc"]):
                best = {"study": name, "trial": e.trial, "val_acc": e.val_acc, "params": e.params,
                        "spec": e.spec, "recipe": e.recipe}
    return best


def part_seeds(cache: dict) -> None:
    """For each seed: the best model found at <= its parameter count, retrained 3 times."""
    for name, limit in SEED_BUDGETS.items():
        key = f"seedbest/{name}"
        found = best_at_most(cache, limit)
        if found is None:
            continue
        if cache.get(key, {}).get("trial") != found["trial"] or cache[key].get("study") != found["study"]:
            cache[key] = found
            for k in [k for k in cache if k.startswith(f"confirm/seed{name}/")]:
                del cache[k]
            save(cache)
        confirm(cache, f"seed{name}", cache[key])


def part_long(cache: dict, trials: int, epochs: int = 15, seeds: int = 3) -> None:
    found = run_study(cache, "long8k", 8_000, trials)
    confirm(cache, "long8k", found, epochs=epochs, seeds=seeds)


def part_subset(cache: dict) -> None:
    """Data-subset fidelity on the 25k winner's recipe (and seed E, its own idea)."""
    from budgetnas.space.presets import PRESETS
    base = cache.get("search/tier25k")
    arms = [("full", DataConfig()), ("random-20%", DataConfig(train_fraction=0.2)),
            ("kmeans-20%", DataConfig(train_fraction=0.2, subset_method="kmeans")),
            ("kmeans-20%-curriculum", DataConfig(train_fraction=0.2, subset_method="kmeans", curriculum=True))]
    if base:
        recipe = Recipe.from_dict({**base["recipe"], "epochs": 1})
        for arm, cfg in arms:
            for seed in SEEDS:
                cached_train(cache, f"subset/tier25k/{arm}/s{seed}", base["spec"], recipe, seed, cfg)
    e = PRESETS["E"]
    for arm, cfg in (("full", DataConfig()), ("kmeans-12k-curriculum",
                                             DataConfig(train_fraction=12_000 / 55_000, subset_method="kmeans",
                                                        curriculum=True))):
        cached_train(cache, f"subset/E/{arm}/s0", e.spec.to_dict(), e.recipe, 0, cfg)


# --- rendering ------------------------------------------------------------------------------
def ms(runs: list[dict], key: str = "test_acc") -> str:
    vals = [100 * r[key] for r in runs]
    if not vals:
        return "not run"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.2f} ± {sd:.2f}" + ("" if len(vals) == 3 else f" (n={len(vals)})")


def mean(runs: list[dict], key: str = "test_acc") -> float | None:
    return statistics.mean(r[key] for r in runs) if runs else None


def met(value: float, target: float) -> bool:
    """Targets are given in percent to 2 decimals: compare at that precision (a mean of
    three accuracies like 0.9911 can land a float rounding below 0.9915)."""
    return round(100 * value, 2) >= round(100 * target, 2)


def runs(cache: dict, prefix: str) -> list[dict]:
    return [v for k, v in sorted(cache.items()) if k.startswith(prefix)]


# What the table does not show: measured outside this script (the numbers are quoted).
RACE_NOTES = [
    "",
    "- The 1-epoch rows ran when `--timeout` only stopped *starting* trials: they overshot T by",
    "  6-42 s (a running trial finished). Since then `--timeout` bounds the whole search, data",
    "  loading included: a candidate whose expected time (from the finished runs nearest in MACs)",
    "  does not fit is not started, and re-runs get at most a third of T. The 8k row ran that way.",
    "- **The 8k, 15-epoch row** (50 min of search): a multi-epoch search now starts from",
    "  `space.MULTI_EPOCH_TRIAL` (the two-conv default with rotation up to 7 degrees, shift up to 5%,",
    "  peak lr 0.01), picked by validation among 11 variants (`scripts/probe.py`, GPU, log in",
    "  `docs/gpu/`). The search trained 6 candidates (Hyperband stopped 4 sampled or default ones at",
    "  epoch 3 or 9), re-ran its best, and named the augmented default (val mean 99.31 over 2 runs",
    "  against 99.25 for the unaugmented one). Same spec, recipe and seeds as the first-trial",
    "  column, so trained once. The run before it, without that default (runs kept in",
    "  `runs.json` under `race8k15-v1`): winner the unaugmented two-conv default, 99.39 ± 0.05.",
    "  In this run a re-run that did not fit ended the re-run phase with 588 s left (fixed",
    "  since: only that re-run is skipped).",
    "- **Is the 5k gap search time?** The same 1-epoch 5k search with 2.3x the trials (on an NVIDIA",
    "  H100, `scripts/gpu-check.sh` step `explore`, log in `docs/gpu/`): 69 trained trials in 380 s",
    "  (the CPU row trained 30). Its winner was again a plain 8-12-18 net of 4,586 params, the",
    "  family of the hand-tuned net and of the built-in SGD default; retrained with 3 seeds it",
    "  scored 98.83 (98.90, 98.81, 98.77), against 98.81 here. More trials did not close the gap:",
    "  at 5k (and 2k, where the hand-tuned net is as short) one epoch looks like the limit, not the",
    "  search.",
]


def race_lines(cache: dict) -> list[str]:
    from budgetnas.arch import ArchSpec, param_count
    lines = ["", "## The race: a search in the time of hand-tuning (issue 14)", "",
             "Each row: `budgetnas search --budget B --epochs E --timeout T` (the search re-runs its 3 best",
             "candidates twice inside T, in at most a third of T, and names the best mean), its winner",
             "retrained with 3 fresh seeds;",
             "a hand-tuned net of about the same size (3x3 conv + BN + ReLU + max pool per stage, flatten,",
             "one linear layer; SGD Nesterov, OneCycle peak lr 0.3, batch 64) and the study's built-in first",
             "trial, each trained the same way with 3 seeds. Test accuracy, mean ± std.", "",
             "| row | target | search winner | params | hand-tuned | params | built-in first trial | search time | trials/hour | met? |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, (budget, epochs, seconds, target, widths) in RACE.items():
        found = cache.get(f"search/{name}")
        conf = runs(cache, f"confirm/{name}/e{epochs}/")
        hand = runs(cache, f"confirm/{name}-hand/e{epochs}/")
        first = runs(cache, f"confirm/{name}-first/e{epochs}/")
        hand_params = param_count(ArchSpec.from_dict(hand_tuned(widths)))
        label = f"{budget // 1000}k, {epochs} ep, {seconds // 60} min"
        if not found or not conf:
            lines.append(f"| {label} | {100 * target:.2f} | not run | | {ms(hand)} | {hand_params:,} | {ms(first)} | | | |")
            continue
        m = mean(conf)
        verdict = "yes" if met(m, target) else f"no ({100 * (target - m):.2f} pp short)"
        per_hour = found.get("trained", found["trials"]) / (found["seconds"] / 3600)
        lines.append(f"| {label} | {100 * target:.2f} | {ms(conf)} | {found['params']:,} | {ms(hand)} | {hand_params:,} | "
                     f"{ms(first)} | {found['seconds'] / 60:.1f} min | {per_hour:.0f} | {verdict} |")
    return lines + RACE_NOTES


def render(cache: dict) -> str:
    from budgetnas.results.formats import arch_summary
    from budgetnas.space.presets import PRESETS
    from budgetnas.arch import param_count
    lines = ["# Results", "",
             "Regenerated by `python scripts/results.py` from the runs cached in `studies/results/runs.json`",
             "(machine: 2-core CPU, no GPU; PyTorch CPU). Test accuracy on the 10,000 MNIST test images,",
             "mean ± std over 3 training seeds. Searches select on the 5,000-image validation split",
             "only; their winners are then retrained with 3 fresh seeds, and those runs give the numbers.",
             "", "## Seed models: claim, our reproduction, and the best budgetnas finds at <= their size", "",
             "| seed | params | claim | ours, 1 epoch (own recipe) | ours, stated epochs | budgetnas at <= params, 1 epoch | beaten? |",
             "|---|---|---|---|---|---|---|"]
    for name, p in PRESETS.items():
        one = runs(cache, f"repro/{name}/e1/")
        full = runs(cache, f"repro/{name}/e{p.recipe.epochs}/") if p.recipe.epochs > 1 else one
        found = cache.get(f"seedbest/{name}")
        conf = runs(cache, f"confirm/seed{name}/e1/")
        ours = "not run"
        verdict = "-"
        if found and conf:
            ours = f"{ms(conf)} ({found['params']:,} params, {found['study']} #{found['trial']})"
            m1 = mean(one)
            verdict = "yes" if m1 is not None and mean(conf) > m1 else "no"
        lines.append(f"| {name} | {param_count(p.spec):,} | {p.claim} | {ms(one)} | "
                     f"{ms(full)} ({p.recipe.epochs} ep) | {ours} | {verdict} |")
    lines += ["", "\"beaten?\" compares budgetnas's 1-epoch mean with the seed's own 1-epoch mean at the",
              "same or smaller parameter count. budgetnas's entry is the best trial by validation accuracy, among all",
              "searches below, with at most the seed's parameter count, retrained with 3 fresh seeds.",
              "", "## Best found per budget after 1 epoch", "",
              "| budget | target | best found (test, 3 seeds) | params | val acc (search) | trials | search time | met? |",
              "|---|---|---|---|---|---|---|---|"]
    for b in TIER_BUDGETS:
        found, conf = cache.get(f"search/tier{b // 1000}k"), runs(cache, f"confirm/tier{b // 1000}k/e1/")
        if not found or not conf:
            lines.append(f"| {b:,} | {100 * TARGETS[b]:.2f} | not run | | | | | |")
            continue
        m = mean(conf)
        gap = "yes" if met(m, TARGETS[b]) else f"no ({100 * (TARGETS[b] - m):.2f} pp short)"
        lines.append(f"| {b:,} | {100 * TARGETS[b]:.2f} | {ms(conf)} | {found['params']:,} | "
                     f"{100 * found['val_acc']:.2f} | {found['trials']} | {found['seconds'] / 60:.0f} min | {gap} |")
    lines += ["", "What was tried for the targets (test means of 3 seeds after 1 epoch):", "",
              "- Round 1 (plain 3x3 convs only; 16-21 trials per tier, a median pruner that cut most",
              "  trials at the noisy middle of OneCycle): 25k 99.28, 10k 99.04, 5k 98.29, 2k 82.87. At 2k",
              "  the only plain nets that fit have 4-8 channels per layer and the default trial did not fit.",
              "- Round 2 (the table above): separable convs (depthwise 3x3 + 1x1) in the space, a second",
              "  default trial for budgets <= 10k (one separable conv per stage, lr 0.02, batch 32), AdamW lr",
              "  up to 0.03, 30 trained trials per tier, the pruner deciding only in the last quarter. 2k",
              "  went from 82.87 to the value above and 10k rose; 25k fell by 0.05 pp against round 1's",
              "  winner, within what selection noise allows (below).",
              "- Round 3 (issue 14; the race table below): a third default candidate for every budget, the",
              "  plain SGD recipe of quick hand-tuned nets (`space.PLAIN_SGD_TRIAL`; full MNIST, 1 epoch, seeds",
              "  0/1, test: 2k 97.89/98.18 at 1,450 params, 5k 98.79/98.77, 10k 99.03/98.89, 25k 99.12/98.97);",
              "  the 3 best candidates re-run twice with new seeds before a winner is named (mean of 3 runs);",
              "  for more than one epoch, Hyperband across epochs (pruner `auto`).",
              "- By hand, 1 epoch, seed 0 (not used to pick anything above): at 5k, 2-3 stage plain nets",
              "  with a GAP head and growth 2 scored 96.7-98.6% test; plain nets with a flatten head",
              "  98.1-98.7%; separable ones 98.3-98.7%. batch 32 and lr 0.01-0.02 helped small nets,",
              "  label smoothing and dropout off did not; at 25k, lr 0.0025-0.01, growth 2, 2 or 3 convs per",
              "  stage and SGD all landed within 99.01-99.30% test.",
              "- Why the last 0.1-0.3 pp are hard to select for: the 5,000-image validation split resolves",
              "  about 0.15 pp (one standard error at 99%), and the top 5 trials of the 25k, 10k and 5k",
              "  searches lie within 0.14-0.16 pp of validation accuracy (0.36 pp at 2k), so a search picks",
              "  among near-ties. The validation split is also harder than the test set (validation",
              "  98.9-99.1% where the same models score 99.1-99.3% on test). The same winner retrained with",
              "  two sets of 3 seeds gave 3-seed means 0.04-0.10 pp apart (25k: 99.23 here, 99.29 in the",
              "  subset table's full-data row; seed B/E rows 99.19)."]
    lines += race_lines(cache)
    lines += int8_lines(cache)
    lines += space_lines(cache)
    found, conf = cache.get("search/long8k"), runs(cache, "confirm/long8k/e15/")
    lines += ["", "## An 8k-parameter winner trained longer", ""]
    if found and conf:
        m = mean(conf)
        lines += [f"The winner of a search at 8,000 parameters ({found['params']:,} params), retrained for 15 epochs",
                  f"with its searched recipe: **{ms(conf)}** test accuracy (target 99.50: "
                  f"{'met' if met(m, 0.995) else f'{100 * (0.995 - m):.2f} pp short'})."]
    else:
        lines.append("not run")
    lines += ["", "## Data-subset fidelity (`--train-fraction`)", "",
              "Same architecture and recipe, 1 epoch, trained on a share of the 55,000 training images",
              "(validation and test sets whole). Seconds are wall time on a 2-core machine that other jobs",
              "shared while some of these ran: read them as rough, the accuracy column as exact.", "",
              "| model | training data | test acc | seconds per trial |", "|---|---|---|---|"]
    for prefix, label in (("subset/tier25k/", "25k winner"), ("subset/E/", "seed E")):
        arms = sorted({k.split("/")[2] for k in cache if k.startswith(prefix)})
        for arm in arms:
            rs = runs(cache, f"{prefix}{arm}/")
            lines.append(f"| {label} | {arm} | {ms(rs)} | {statistics.mean(r['seconds'] for r in rs):.1f} |")
    lines += ["", "## Winning architectures", "",
              "Widths of the 3x3 convs in order, `P` a 2x2 max pool, `sN` a separable conv (depthwise 3x3, then",
              "1x1 to N channels), then the head (`flat` or `gap`, `fcN` a hidden layer).", ""]
    for key in sorted(k for k in cache if k.startswith("search/")):
        f = cache[key]
        lines.append(f"- `{key[7:]}`: {f['params']:,} params, `{arch_summary(f['spec'])}`; recipe {f['recipe']['optimizer']} "
                     f"lr {f['recipe']['lr']:.4g} {f['recipe']['schedule']} batch {f['recipe']['batch_size']}")
    return "\n".join(lines + ["", BY_HAND.rstrip()]) + "\n"


BY_HAND = """## Measured by hand (not regenerated)

These measurements chose defaults or describe behaviour; they are not rerun by this
script. Each says how it was made.

### The built-in first trials (space/defaults.py)

- `DEFAULT_TRIAL` (three stages of two 3x3 convs growing 1.5x, flatten, AdamW + OneCycle,
  batch 64): the ordinary strong start a new study tries first.
- `SMALL_DEFAULT_TRIAL` (budgets <= 10k: one conv per stage, separable after the first,
  peak lr 0.02, batch 32). On full MNIST, 1 epoch, seed 0, it scored val 97.90% at 2k
  (1,666 params; the plain default does not fit there) and val 98.48% at 5k (plain: 98.12%).
- `PLAIN_SGD_TRIAL` (the quick hand-tuned recipe: one plain conv per stage growing 1.5x,
  flatten, SGD Nesterov with OneCycle to lr 0.3, batch 64). Full MNIST, 1 epoch, seeds 0/1
  (test): 2k 97.89/98.18 (1,450 params), 5k 98.79/98.77 (4,586), 10k 99.03/98.89,
  25k 99.12/98.97.
- `MULTI_EPOCH_TRIAL` (more than one epoch: the two-conv default with rotation up to 7°,
  shift up to 5%, peak lr 0.01). Picked by validation among 11 variants of the defaults at
  8k params and 15 epochs (`scripts/probe.py` on a GPU, 3-6 seeds each,
  [gpu/h100-probe8k15-2026-11-26.jsonl](gpu/h100-probe8k15-2026-11-26.jsonl)): validation
  99.38 ± 0.08 against 99.26 ± 0.16 for the unaugmented two-conv default.

### int8: why the first conv may stay float

One activation scale for all of the first conv's channels is what cost the most: on a
4,374-parameter winner, all int8 lost 0.46 points of test accuracy (98.73 -> 98.27%), the
first conv in float none (98.77%); 2,048 calibration images, percentile or entropy ranges
did not help (98.27-98.31%). So `export/int8.py` keeps the first conv float where all-int8
agrees with the float model on fewer than 99.8% of 2,048 held training images and the
variant agrees better.

## A real dataset other than MNIST: a PNG folder against the built-in set

`scripts/write_png_folder.py fashion-mnist DIR` writes Fashion-MNIST (from Debian's
`dataset-fashion-mnist`, or any copy budgetnas finds) as PNG files with `train/` and
`test/` and one folder per class, so a search on `--dataset DIR` can be compared with the
same search on the built-in `--dataset fashion-mnist` (`--val-size 5000` on both). The
images and labels are the same, but in another order (by class folder), so the
validation split differs for the same `--split-seed`, and the folder is normalised with
its own measured mean/std. Run on this 2-core machine (idle; 70,000 PNG files written in
29 s), `budgetnas search --dataset D --budget 10000 --epochs 1 --trials 4 --seed 0
--val-size 5000 --confirm-top 0 --threads 2`, one epoch of full training data per trial:

| trial (same candidate in both) | built-in `fashion-mnist`: val / test | PNG folder: val / test |
|---|---|---|
| 0 | 88.48 / 88.06 | 89.06 / 88.00 |
| 1 | 89.12 / 88.23 | 89.52 / 88.28 |
| **2 (rank 1 in both)** | **89.28 / 89.36** | **89.64 / 89.20** |
| 5 | 82.88 / 82.89 | 83.46 / 83.40 |

The same seed picked the same candidates and the same winner; its test accuracy differs
by 0.16 points (the target: within 0.3), from the other validation split and
normalisation. Each search took 2 min 16 s.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["repro", "search", "long", "seeds", "subset", "race", "int8", "spaces", "all"],
                    default="all")
    ap.add_argument("--row", action="append", choices=sorted(SPACE_ROWS), help="only these rows of the spaces part")
    ap.add_argument("--race", action="append", choices=sorted(RACE), help="only these rows of the race (repeatable)")
    ap.add_argument("--trials", type=int, default=25, help="trained trials per search")
    ap.add_argument("--long-seeds", type=int, default=3, help="seeds for the multi-epoch runs (3 = full)")
    ap.add_argument("--render", action="store_true", help="only rewrite docs/RESULTS.md from the cache")
    args = ap.parse_args()
    from budgetnas.run.runtime import set_threads, tune_malloc
    tune_malloc()
    set_threads(None)
    cache = load_cache()
    if not args.render:
        if args.part in ("repro", "all"):
            part_repro(cache, args.long_seeds)
        if args.part in ("search", "all"):
            part_search(cache, args.trials)
        if args.part in ("long", "all"):
            part_long(cache, args.trials, seeds=args.long_seeds)
        if args.part in ("seeds", "all"):
            part_seeds(cache)
        if args.part in ("subset", "all"):
            part_subset(cache)
        if args.part in ("race", "all"):
            part_race(cache, args.race)
        if args.part in ("race", "int8", "all"):
            part_int8(cache)
        if args.part in ("spaces", "all"):
            part_spaces(cache, args.row)
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "RESULTS.md").write_text(render(cache))
    print(f"wrote {ROOT / 'docs' / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
