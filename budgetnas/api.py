"""The Python API for notebooks: ``budgetnas.search(x_train, y_train, ...)`` runs the
same search as ``budgetnas search --dataset FILE.npz`` (the arrays are saved as an .npz
beside the study, so the CLI commands then work on the same study), and the export of a
study's trial that ``budgetnas export`` also uses."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import JOURNAL_PREFIX, ConfigError, DataConfig, SearchConfig, default_storage_url


def runs_record(trials, number: int) -> dict | None:
    """The re-runs of a candidate (new seeds) as the manifest records them; None if never re-run."""
    from . import leaderboard as lb
    entry = next((e for e in lb.build(trials) if e.trial == number), None)
    if entry is None or entry.n_runs < 2:
        return None
    return {"n": entry.n_runs, "val_mean": entry.val_mean, "val_std": entry.val_std, "test_mean": entry.test_mean,
            "test_std": entry.test_std, "runs": [list(r) for r in entry.runs],
            "rerun_trials": sorted(t.number for t in trials if t.user_attrs.get("rerun_of") == number)}


def int8_inputs(data) -> tuple:
    """(calibration sample, test images, test labels) for the int8 export, on the CPU."""
    from .quantize import calibration_sample
    return calibration_sample(data.train_x), data.test_x.cpu(), data.test_y.cpu()


def export_trial(study, url: str, out: str | Path | None, trial: int | None = None, rank: int | None = None,
                 sort: str = "accuracy", artifacts: str | None = None,
                 data_dir: str | None = None) -> tuple[Any, Path, dict]:
    """Export a trained trial of ``study`` (stored at ``url``) into ``out`` (default
    exports/STUDY-trialN): the trial chosen, the folder and the manifest. The study's
    data (``data_dir`` where its files are elsewhere) calibrates and measures the int8
    model; where it cannot be loaded, model.int8.onnx is skipped and the rest written."""
    from .export import data_record, export_bundle, load_state, prepare_out, resolve_weights, select_trial
    from .space import ArchSpec
    from .storage import artifacts_dir, redact
    name = study.study_name
    chosen = select_trial(study.get_trials(deepcopy=False), name, trial, rank, sort)
    folders = ([Path(artifacts)] if artifacts else []) + [artifacts_dir(SearchConfig(study=name), url)]
    a = chosen.user_attrs
    weights = resolve_weights(a.get("weights"), folders, chosen.number)
    state = load_state(weights)
    out = prepare_out(out if out is not None else Path("exports") / f"{name}-trial{chosen.number}")
    spec = ArchSpec.from_dict(a["spec"])
    settings = study.user_attrs.get("settings") or {}
    meta = {
        "source": "search", "study": name, "storage": redact(url), "trial": chosen.number,
        "preset": a.get("preset"), "val_acc": a.get("val_acc"), "test_acc": a.get("test_acc"),
        "budget": a.get("budget"), "max_macs": a.get("max_macs"), "max_ram": a.get("max_ram"),
        "seconds": a.get("seconds"), "history": a.get("history"),
        "seeds": {"trial": a.get("seed"), "sampler": settings.get("seed"), "split": settings.get("split_seed")},
        "recipe": a.get("recipe"), "runs": runs_record(study.get_trials(deepcopy=False), chosen.number),
        "data": data_record(settings.get("dataset", "mnist"), settings, val_size=settings.get("val_size"),
                            split_seed=settings.get("split_seed"), train_limit=settings.get("train_limit"),
                            train_fraction=settings.get("train_fraction")),
        "trained_on": {"device": a.get("device"), "torch": a.get("torch")},
        "weights_from": str(weights),
    }
    title = f"Trial {chosen.number} of budgetnas study {name!r}"
    from .data import load_data
    from .search import config_from_study
    try:
        int8_data = int8_inputs(load_data(config_from_study(study, data_dir=data_dir).data))
    except ConfigError as e:  # no data here: the other files are still worth writing
        int8_data = f"the {settings.get('dataset', 'mnist')} images could not be loaded ({e}): pass --data-dir"
    return chosen, out, export_bundle(out, spec, state, meta, title, int8_data=int8_data)


@dataclass
class SearchResult:
    """What ``search`` returns: the leaderboard (recomputed from the storage), the winner
    and ``export(path)``. ``study`` and ``storage`` name the study for the CLI."""

    study: str
    storage: str
    dataset: str  # the .npz the arrays were saved to
    leaderboard: list = field(default_factory=list)  # leaderboard.Entry, best first

    @property
    def winner(self):
        """The best completed candidate: spec, recipe, val_acc, test_acc, params..."""
        if not self.leaderboard:
            raise ConfigError(f"study {self.study!r} has no completed trial: run more trials")
        return self.leaderboard[0]

    def export(self, path: str | Path, trial: int | None = None) -> dict:
        """Export the winner (or ``trial``) as a bundle into ``path``; returns its manifest."""
        from .storage import open_storage
        import optuna
        study = optuna.load_study(study_name=self.study, storage=open_storage(self.storage, create=False))
        return export_trial(study, self.storage, path, trial=trial)[2]


def _save_arrays(folder: Path, study: str, arrays: dict[str, np.ndarray]) -> Path:
    """The arrays as an .npz named after their content (a rerun with the same arrays
    finds the same file; other arrays never overwrite a study's data)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    path = folder / f"{study}-data-{h.hexdigest()[:12]}.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".part.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    return path


def search(x_train, y_train, *, budget: int = 25_000, epochs: int = 1, trials: int = 30, x_test=None, y_test=None,
           study: str = "budgetnas", storage: str | None = None, classes: list[str] | None = None, seed: int = 0,
           timeout: float | None = None, device: str = "auto", val_size: int | None = None, verbose: bool = False,
           **settings: Any) -> SearchResult:
    """Search under ``budget`` parameters on arrays (numpy, or CPU tensors): images
    N x H x W, N x H x W x C or N x C x H x W (uint8, or float in [0, 1]), integer labels.
    Without ``x_test`` a seeded, stratified 20% of each class is held out as the test set.
    ``settings``: further SearchConfig fields (pruner, sampler, confirm_top, eval_points...).
    Rerunning with the same arguments resumes the study."""
    from . import leaderboard as lb
    from .runner import run_search
    from .storage import open_storage
    url = storage or default_storage_url(study)
    folder = Path(url[len("sqlite:///"):]).parent if url.startswith("sqlite:///") else \
        Path(url[len(JOURNAL_PREFIX):]).parent if url.startswith(JOURNAL_PREFIX) else Path("studies")
    arrays = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train)}
    if (x_test is None) != (y_test is None):
        raise ConfigError("give x_test and y_test together, or neither (a test split is then held out)")
    if x_test is not None:
        arrays.update(x_test=np.asarray(x_test), y_test=np.asarray(y_test))
    if classes is not None:
        arrays["classes"] = np.array([str(c) for c in classes])
    path = _save_arrays(folder, study, arrays)
    cfg = SearchConfig(budget=budget, epochs=epochs, trials=trials, timeout=timeout, study=study, storage=url,
                       seed=seed, device=device, data=DataConfig(dataset=str(path), val_size=val_size), **settings)
    rc = run_search(cfg, url, progress=False, quiet=not verbose)
    if rc == 130:
        raise KeyboardInterrupt
    import optuna
    loaded = optuna.load_study(study_name=study, storage=open_storage(url, create=False))
    return SearchResult(study, url, str(path), lb.build(loaded.get_trials(deepcopy=False)))
