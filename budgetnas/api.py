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


def _arrays(given: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays given, checked by the data rules (data/arrays.py) before anything is
    saved or started: ConfigError, one line naming 'arrays', for any that break them."""
    from .data.arrays import as_array, from_arrays
    arrays = {k: as_array(v, k, "arrays") for k, v in given.items() if v is not None}
    from_arrays(arrays, "arrays", None, None)
    return arrays


def search(x_train, y_train, *, budget: int = SearchConfig.budget, epochs: int = SearchConfig.epochs,
           trials: int | None = SearchConfig.trials, x_test=None, y_test=None, x_val=None, y_val=None,
           study: str = SearchConfig.study, storage: str | None = None, classes: list[str] | None = None,
           seed: int = SearchConfig.seed, timeout: float | None = None, device: str = SearchConfig.device,
           val_size: int | None = None, verbose: bool = False, **settings: Any) -> SearchResult:
    """Search under ``budget`` parameters on arrays (numpy, or CPU tensors): images
    N x H x W, N x H x W x C or N x C x H x W, integer labels 0..K-1, under the data rules
    (data/arrays.py: uint8 as is, uint16 as 16-bit, floats 0-1 or 0-255...), checked
    before anything starts. Without ``x_test`` a seeded, stratified 20% of each class is
    held out as the test set; ``x_val``/``y_val`` is the validation split, else
    ``val_size`` (None: 10% of the training images, at most 5,000) is drawn from them.
    ``settings``: further SearchConfig fields (pruner, sampler, confirm_top, eval_points...);
    every default is SearchConfig's. Rerunning with the same arguments resumes the study."""
    from .results import leaderboard as lb
    from .run import engine
    from .run.terminal import TerminalView
    url = storage or default_storage_url(study)
    folder = storage_file(url).parent if storage_file(url) else Path("studies")
    arrays = _arrays(dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, x_val=x_val, y_val=y_val,
                          classes=classes))
    if x_val is not None and val_size is not None:  # as data/load.py says it for an .npz
        raise ConfigError(f"arrays: it has its own validation split ({len(arrays['x_val']):,} images): drop val_size, "
                          "or merge the split into the training images to draw one")
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
