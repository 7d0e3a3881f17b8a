"""Making and opening studies: the sampler and pruner, a study created once (its settings
pinned, its first trials queued) or loaded (its settings checked), an existing study for
the read-only commands, Optuna's logging, and the trials of dead processes."""
from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING

import optuna

from ..arch import param_count
from ..config import ConfigError, SearchConfig, storage_url
from ..space import default_trials
from ..space.presets import PRESETS, fits
from . import record
from .fast import batched, incremental_groups
from .settings import SETTINGS_ATTR, TARGET_ATTR, check_pinned, data_space, study_settings
from .storage import open_storage, redact

if TYPE_CHECKING:
    from ..data.load import Data


def quiet_optuna() -> None:
    """Optuna's own lines off (a trial ended by Ctrl-C is budgetnas's line, not Optuna's
    warning with a traceback), and its experimental/deprecation warnings: once per process."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def make_sampler(name: str, seed: int, parallel: bool = True) -> optuna.samplers.BaseSampler:
    """The sampler by name. ``parallel`` (other processes may run trials of the study at
    the same time): TPE's constant_liar, which keeps them from proposing the same point
    but reads the storage at each of its draws; one process alone samples the same points
    without it, reading the trials once per trial (scripts/bench_overhead.py). TPE's
    groups are worked out incrementally (study/fast.py: the same groups)."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Optuna's own warnings about these arguments (experimental; deprecated since 4.9) are
    # silenced here: on Python 3.12 Optuna attributes them to this line, where a filter on
    # module="optuna" misses them and they would reach the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return incremental_groups(optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=6, multivariate=True, group=True, constant_liar=parallel,
            warn_independent_sampling=False))


MARGINS = (0.05, 0.03)  # behind the best at 1/4 and 1/2 of a run: docs/RESULTS.md ("Pruning")


class MarginPruner(optuna.pruners.BasePruner):
    """Stop a trial whose validation accuracy at an early report is more than a margin
    behind the best any other trial had at the same report (``margins``: up to a quarter,
    up to half of the reports), and later, from three quarters of the run, one behind
    the median of the others there (the median pruner as before). Far behind early, a
    candidate does not catch up within the run; close behind, it may: mid-run accuracy
    under OneCycle's high lr is noisy, so the early margins are wide. It acts once
    ``startup`` trials have completed."""

    def __init__(self, total_reports: int, margins: tuple[float, ...] = MARGINS, startup: int = 5):
        self.total, self.margins, self.startup = max(1, total_reports), margins, startup
        self.median = optuna.pruners.MedianPruner(n_startup_trials=startup,
                                                  n_warmup_steps=max(1, (3 * self.total) // 4))

    def margin(self, step: int) -> float | None:
        quarter = (4 * step - 1) // self.total  # 0: up to a quarter of the reports, 1: up to half...
        return self.margins[quarter] if quarter < len(self.margins) else None

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        others = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED))
        if sum(t.state == optuna.trial.TrialState.COMPLETE for t in others) < self.startup:
            return False
        margin = self.margin(step)
        if margin is None:
            return self.median.prune(study, trial)
        best = max((t.intermediate_values[step] for t in others if step in t.intermediate_values), default=None)
        return best is not None and trial.intermediate_values[step] < best - margin


class _StudyView:
    """A study as a pruner sees it: its trials as read once for the trial being judged."""

    def __init__(self, study: optuna.Study, trials: list):
        self._study, self._trials = study, trials

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def __getattr__(self, name: str):
        return getattr(self._study, name)


class SnapshotPruner(optuna.pruners.BasePruner):
    """``inner``, reading the study's trials once per trial it judges (at the trial's
    first report) instead of at every report: each read is a storage query, and a median
    pruner asked at 3 reports a trial read 3 times (~5 ms a trial at 1,000 trials,
    scripts/bench_overhead.py). The same decisions in one process; with several, trials
    that other processes end while one trial runs are seen from its next trial on."""

    def __init__(self, inner: optuna.pruners.BasePruner):
        self.inner, self.judged, self.trials = inner, None, []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self.judged != trial.number:
            # Optuna's per-trial snapshot where it has one (the sampler read the trials for
            # this trial already); else a read of our own
            read = getattr(study, "_get_trials", None)
            self.judged = trial.number
            self.trials = read(deepcopy=False, use_cache=True) if read else study.get_trials(deepcopy=False)
        return self.inner.prune(_StudyView(study, self.trials), trial)


def make_pruner(name: str, epochs: int, eval_points: int) -> optuna.pruners.BasePruner:
    """``auto``: the median pruner for a 1-epoch search (``margin``, MarginPruner, stops far
    worse candidates earlier, but on data learned steeply early in the epoch it stopped
    nearly every sampled one at its first report: docs/RESULTS.md); for more epochs,
    Hyperband across epochs (successive halving with rungs at 1, 3, 9... epochs: most
    candidates are stopped after one or three epochs, the best ones train to the end)."""
    if name == "margin":
        return SnapshotPruner(MarginPruner(epochs * eval_points))
    if name == "auto":
        if epochs == 1:
            return make_pruner("median", epochs, eval_points)
        return optuna.pruners.HyperbandPruner(min_resource=eval_points, max_resource=epochs * eval_points,
                                              reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs * eval_points, reduction_factor=3)
    if name == "median":
        # decide only in the last quarter of the run: mid-run accuracy under OneCycle's high
        # learning rate is noisy, and a 30-trial study pruned its best region at report 2
        reports = epochs * eval_points
        return SnapshotPruner(optuna.pruners.MedianPruner(n_startup_trials=5,
                                                          n_warmup_steps=max(1, (3 * reports) // 4)))
    return optuna.pruners.NopPruner()


def create_or_load_study(cfg: SearchConfig, storage: optuna.storages.BaseStorage, worker: int = 0,
                         data: "Data | None" = None, parallel: bool = True) -> optuna.Study:
    """Create the study once (or load it) and pin its settings and its data's identity;
    refuse a rerun whose settings or data would make its trials incomparable.
    ``parallel``: other processes may run its trials meanwhile (make_sampler). A trial's
    sampled parameters are written together (study/fast.py)."""
    study = optuna.create_study(study_name=cfg.study, storage=batched(storage), direction="maximize",
                                sampler=make_sampler(cfg.sampler, (cfg.seed + 1000 * worker) % 2 ** 32, parallel),
                                pruner=make_pruner(cfg.pruner, cfg.epochs, cfg.eval_points), load_if_exists=True)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    wanted = study_settings(cfg, data)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, wanted)
        study.set_metric_names(["val_acc"])
        for params in default_trials(cfg.budget, data_space(data, cfg.space) if data is not None else None, cfg.max_macs,
                                     cfg.max_ram, cfg.epochs):
            study.enqueue_trial(dict(params), user_attrs=record.queued(default_trial=True))
    else:
        check_pinned(cfg.study, stored, wanted, space_given=cfg.space is not None)
    done = len(study.get_trials(deepcopy=False))
    if done:  # a resumed run must not replay the sampler's sequence of the first run
        study.sampler = make_sampler(cfg.sampler, (cfg.seed + 1000 * worker + 1_000_003 * done) % 2 ** 32, parallel)
    # the owning run (worker 0) sets the target that 'budgetnas worker' uses by default
    if worker == 0 and cfg.trials is not None and study.user_attrs.get(TARGET_ATTR) != cfg.trials:
        study.set_user_attr(TARGET_ATTR, cfg.trials)
    return study


def load_existing(study: str, storage: str | None) -> tuple[optuna.Study, str]:
    """(a study that must already exist, its storage URL) for the read-only commands,
    export and workers: creates no file, table or study."""
    quiet_optuna()
    url = storage_url(storage, study)
    opened = open_storage(url, create=False)
    names = optuna.get_all_study_names(opened)
    if study not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(f"no study {study!r} in {redact(url)} (studies there: {known}): pass --study NAME")
    return optuna.load_study(study_name=study, storage=opened), url


def enqueue_presets(study: optuna.Study, budget: int, data: "Data | None" = None) -> list[str]:
    """Enqueue the seed presets that fit the budget and take the data's images (as fixed
    architectures): A-E take 1x28x28 digits with 10 classes."""
    names = []
    done = {record.read(t).preset for t in study.get_trials(deepcopy=False)}
    for name, p in PRESETS.items():
        if data is not None and not fits(p, data.shape, data.num_classes):
            continue
        if param_count(p.spec) <= budget and name not in done:
            study.enqueue_trial({}, user_attrs=record.queued(preset=name, preset_spec=p.spec.to_dict(),
                                                             preset_recipe=p.recipe.to_dict()))
            names.append(name)
    return names


def recover_stale(study: optuna.Study) -> list[int]:
    """Fail the trials whose worker died (no heartbeat for the grace period) and queue
    each again with its parameters and seed (RetryHeartbeatStaleTrialCallback). Optuna
    does this before every trial; calling it at start also covers a run with nothing
    left to do. A no-op on storages without heartbeats (journal). Returns the numbers of
    the trials found stale."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    still = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    return sorted(running - still)


def retried(study: optuna.Study, number: int) -> bool:
    """Whether stale trial ``number`` was queued again (it is not once its parameters
    have been tried 1 + storage.STALE_RETRIES times)."""
    return any(t.system_attrs.get("retry_history", [None])[-1] == number for t in study.get_trials(deepcopy=False))
