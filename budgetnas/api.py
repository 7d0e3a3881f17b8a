"""The Python API for notebooks: ``budgetnas.search(x_train, y_train, ...)`` runs the
same search as ``budgetnas search --dataset FILE.npz`` (the arrays are saved as an .npz
beside the study, so the CLI commands then work on the same study) through the engine,
and returns the leaderboard, the winner and its export."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, DataConfig, SearchConfig, default_storage_url, storage_file


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
        from .export.trial import export_trial
        from .study.create import load_existing
        study, url = load_existing(self.study, self.storage)
        return export_trial(study, url, path, trial=trial)[2]


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


def search(x_train, y_train, *, budget: int = SearchConfig.budget, epochs: int = SearchConfig.epochs,
           trials: int | None = SearchConfig.trials, x_test=None, y_test=None, study: str = SearchConfig.study,
           storage: str | None = None, classes: list[str] | None = None, seed: int = SearchConfig.seed,
           timeout: float | None = None, device: str = SearchConfig.device, val_size: int | None = None,
           verbose: bool = False, **settings: Any) -> SearchResult:
    """Search under ``budget`` parameters on arrays (numpy, or CPU tensors): images
    N x H x W, N x H x W x C or N x C x H x W (uint8, or float in [0, 1]), integer labels.
    Without ``x_test`` a seeded, stratified 20% of each class is held out as the test set;
    ``val_size`` None holds out 10% of the training images (at most 5,000) for validation.
    ``settings``: further SearchConfig fields (pruner, sampler, confirm_top, eval_points...);
    every default is SearchConfig's. Rerunning with the same arguments resumes the study."""
    from .results import leaderboard as lb
    from .run import engine
    from .run.terminal import TerminalView
    url = storage or default_storage_url(study)
    folder = storage_file(url).parent if storage_file(url) else Path("studies")
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
    outcome = engine.run_search(cfg, url, TerminalView(cfg, bars=False) if verbose else None)
    if verbose:
        for line in engine.end_lines(outcome.study, outcome.seconds, outcome.interrupted):
            print(line)
    if outcome.interrupted:
        raise KeyboardInterrupt
    return SearchResult(study, url, str(path), lb.build(outcome.study.get_trials(deepcopy=False)))
