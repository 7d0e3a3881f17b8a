"""Exporting a study's trial: which trial (by number or leaderboard rank), its stored
weights, and the bundle with every measurement the study holds (``budgetnas export``
and the Python API). No optuna: the study is read duck-typed (trials, user attrs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..arch import ArchSpec
from ..config import ConfigError, artifacts_dir
from ..results import leaderboard as lb
from ..study import record
from ..study.settings import SETTINGS_ATTR, config_from_settings
from ..study.urls import redact
from .bundle import data_record, export_bundle, load_state, prepare_out
from .int8 import calibration_sample


def select_trial(trials: Iterable[Any], study: str, trial: int | None = None, rank: int | None = None,
                 sort: str = "accuracy") -> Any:
    """The trial to export: by number, else by leaderboard rank (1 = best; default 1).
    Raises ConfigError for an unknown number, a rank past the end, or a trial that was
    not completed (pruned, rejected and failed trials have no trained weights)."""
    trials = list(trials)
    if trial is not None:
        by_number = {t.number: t for t in trials}
        if trial not in by_number:
            span = f"trials 0-{max(by_number)}" if by_number else "no trials"
            raise ConfigError(f"study {study!r} has no trial {trial} ({span}): "
                              "pick one from 'budgetnas leaderboard'")
        chosen = by_number[trial]
        state = record.status(chosen)
        if state != "complete":
            raise ConfigError(f"trial {trial} of study {study!r} is {state}, not complete, so it has no trained "
                              "weights: export a complete trial (see 'budgetnas leaderboard')")
        return chosen
    rank = 1 if rank is None else rank
    if rank < 1:
        raise ConfigError(f"--rank must be 1 or more (got {rank})")
    entries = lb.build(trials, sort=sort)
    if rank > len(entries):
        raise ConfigError(f"--rank {rank}: study {study!r} has only {len(entries)} completed trial(s): "
                          "see 'budgetnas leaderboard'")
    number = entries[rank - 1].trial
    return next(t for t in trials if t.number == number)


def resolve_weights(stored: str | None, folders: Iterable[Path], number: int) -> Path:
    """The weights file of a trial: the stored path, else its file name in one of
    ``folders`` (a study moved, or exported from another working directory)."""
    if not stored:
        raise ConfigError(f"trial {number} has no stored weights (user attr 'weights'): it was trained by an older "
                          "version or elsewhere; retrain its spec with 'budgetnas train'")
    candidates = [Path(stored)] + [Path(f) / Path(stored).name for f in folders]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"weights of trial {number} not found at {stored}: pass --artifacts FOLDER "
                      "(the folder of trial_N.pt files) or retrain its spec with 'budgetnas train'")


def runs_record(trials: list, number: int) -> dict | None:
    """The re-runs of a candidate (new seeds) as the manifest records them; None if never re-run."""
    entry = next((e for e in lb.build(trials) if e.trial == number), None)
    if entry is None or entry.n_runs < 2:
        return None
    return {"n": entry.n_runs, "val_mean": entry.val_mean, "val_std": entry.val_std, "test_mean": entry.test_mean,
            "test_std": entry.test_std, "runs": [list(r) for r in entry.runs],
            "rerun_trials": sorted(t.number for t in trials if record.read(t).rerun_of == number)}


def int8_inputs(data) -> tuple:
    """(calibration sample, test images, test labels) for the int8 export, on the CPU."""
    return calibration_sample(data.train_x), data.test_x.cpu(), data.test_y.cpu()


def export_trial(study, url: str, out: str | Path | None, trial: int | None = None, rank: int | None = None,
                 sort: str = "accuracy", artifacts: str | None = None,
                 data_dir: str | None = None) -> tuple[Any, Path, dict]:
    """Export a trained trial of ``study`` (stored at ``url``) into ``out`` (default
    exports/STUDY-trialN): the trial chosen, the folder and the manifest. The study's
    data (``data_dir`` where its files are elsewhere) calibrates and measures the int8
    model; where it cannot be loaded, model.int8.onnx is skipped and the rest written."""
    name = study.study_name
    trials = study.get_trials(deepcopy=False)
    chosen = select_trial(trials, name, trial, rank, sort)
    folders = ([Path(artifacts)] if artifacts else []) + [artifacts_dir(name, url)]
    r = record.read(chosen)
    weights = resolve_weights(r.weights, folders, chosen.number)
    state = load_state(weights)
    out = prepare_out(out if out is not None else Path("exports") / f"{name}-trial{chosen.number}")
    spec = ArchSpec.from_dict(r.spec)
    settings = study.user_attrs.get(SETTINGS_ATTR) or {}
    meta = {
        "source": "search", "study": name, "storage": redact(url), "trial": chosen.number,
        "preset": r.preset, "val_acc": r.val_acc, "test_acc": r.test_acc,
        "budget": r.budget, "max_macs": r.max_macs, "max_ram": r.max_ram,
        "seconds": r.seconds, "history": r.history,
        "seeds": {"trial": r.seed, "sampler": settings.get("seed"), "split": settings.get("split_seed")},
        "space": {"name": settings.get("space_label", "plain"), "ranges": settings.get("space")},
        "recipe": r.recipe, "runs": runs_record(trials, chosen.number),
        "data": data_record(settings.get("dataset", "mnist"), settings, val_size=settings.get("val_size"),
                            split_seed=settings.get("split_seed"), train_limit=settings.get("train_limit"),
                            train_fraction=settings.get("train_fraction")),
        "trained_on": {"device": r.device, "torch": r.torch},
        "weights_from": str(weights),
    }
    title = f"Trial {chosen.number} of budgetnas study {name!r}"
    from ..data.load import load_data
    try:
        int8_data = int8_inputs(load_data(config_from_settings(name, settings or None, data_dir=data_dir).data))
    except Exception as e:  # no data here (or too much for memory): the other files are still worth writing
        why = e if isinstance(e, ConfigError) else f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        int8_data = f"the {settings.get('dataset', 'mnist')} images could not be loaded ({why}): pass --data-dir"
    return chosen, out, export_bundle(out, spec, state, meta, title, int8_data=int8_data)
