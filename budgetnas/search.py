"""The only Optuna glue: storage, sampler, pruner, the objective, study settings.

Each trial: sample a spec -> count its parameters -> over budget? reject at once,
before any model exists -> build -> train, reporting validation accuracy several times
per epoch -> the pruner decides -> store raw measurements as user attrs -> save weights.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import torch

from .config import ConfigError, DataConfig, Recipe, SearchConfig
from .data import Data
from .model import build_model
from .space import ArchSpec, Space, macs, param_count, sample_recipe, sample_spec
from .train import Diverged, train

# Study user attrs that pin a study's meaning: a worker or a rerun reads them, and a
# rerun with different values is refused (its trials would not be comparable).
PINNED = ("budget", "epochs", "dataset", "val_size", "split_seed", "eval_points", "train_limit", "train_fraction")
JOURNAL_PREFIX = "journal:"


@dataclass
class TrialEvent:
    """What the CLI prints for a finished trial."""

    number: int
    state: str  # complete | pruned | rejected | failed
    params: int
    budget: int
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None
    reason: str = ""


# --- storage -------------------------------------------------------------------------
def default_storage_url(study: str, workers: int = 1, root: str | Path = "studies") -> str:
    """SQLite for one process; a journal file (safe for several processes on one host)
    when there are several workers."""
    root = Path(root)
    if workers > 1:
        return f"{JOURNAL_PREFIX}{root / (study + '.journal')}"
    return f"sqlite:///{root / (study + '.db')}"


def redact(url: str) -> str:
    """The storage URL with any password replaced (safe to print)."""
    if "://" not in url or "@" not in url.split("://", 1)[1]:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


def open_storage(url: str, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """Open a storage URL: sqlite:///FILE, postgresql://..., or journal:FILE."""
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        _parent_writable(path, url)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if url.startswith("sqlite:///"):
        _parent_writable(Path(url[len("sqlite:///"):]), url)
    elif "://" not in url:
        raise ConfigError(f"malformed storage URL {redact(url)!r}: use sqlite:///FILE.db, "
                          "postgresql://USER@HOST/DB or journal:FILE")
    kwargs = {"heartbeat_interval": 10, "grace_period": 30,
              "failed_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)} if heartbeat else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
    except Exception as e:  # sqlalchemy raises many types; all mean the same to a user
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigError(f"cannot open storage {redact(url)} ({msg.replace(url, redact(url))}): "
                          "check the URL and that the database server is running") from None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {}


def _parent_writable(path: Path, url: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the folder for storage {url} ({e.strerror}): pass a writable --storage") from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"storage folder {path.parent} is not writable: pass a writable --storage")


def artifacts_dir(cfg: SearchConfig, storage_url: str) -> Path:
    """Where a study's trained weights go: --artifacts, else beside a file storage, else
    studies/<study>-weights."""
    if cfg.artifacts:
        return Path(cfg.artifacts)
    for prefix in ("sqlite:///", JOURNAL_PREFIX):
        if storage_url.startswith(prefix):
            return Path(storage_url[len(prefix):]).with_suffix("").parent / f"{cfg.study}-weights"
    return Path("studies") / f"{cfg.study}-weights"


# --- sampler and pruner ----------------------------------------------------------------
def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar keeps parallel workers from proposing the same point
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True, group=True,
                                      constant_liar=True, warn_independent_sampling=False)


def make_pruner(name: str, epochs: int, eval_points: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs * eval_points, reduction_factor=3)
    if name == "median":
        # no decision on the first report: early accuracy is noisy with OneCycle warm-up
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


# --- study -------------------------------------------------------------------------------
def study_settings(cfg: SearchConfig) -> dict:
    d = cfg.data
    return {"budget": cfg.budget, "epochs": cfg.epochs, "dataset": d.dataset, "val_size": d.val_size,
            "split_seed": d.split_seed, "eval_points": cfg.eval_points, "train_limit": d.train_limit,
            "train_fraction": d.train_fraction, "subset_method": d.subset_method, "curriculum": d.curriculum,
            "seed": cfg.seed, "pruner": cfg.pruner, "sampler": cfg.sampler,
            "space": dataclasses.asdict(Space())}


def create_or_load_study(cfg: SearchConfig, storage: optuna.storages.BaseStorage, worker: int = 0) -> optuna.Study:
    """Create the study once (or load it) and pin its settings; refuse a rerun whose
    settings would make its trials incomparable."""
    study = optuna.create_study(study_name=cfg.study, storage=storage, direction="maximize",
                                sampler=make_sampler(cfg.sampler, cfg.seed + 1000 * worker),
                                pruner=make_pruner(cfg.pruner, cfg.epochs, cfg.eval_points), load_if_exists=True)
    stored = study.user_attrs.get("settings")
    wanted = study_settings(cfg)
    if stored is None:
        study.set_user_attr("settings", wanted)
        study.set_metric_names(["val_acc"])
        return study
    for key in PINNED:
        if stored.get(key) != wanted.get(key):
            raise ConfigError(f"study {cfg.study!r} was made with {key}={stored.get(key)!r}, not {wanted.get(key)!r}: "
                              f"rerun with the same settings or pick a new --study")
    return study


def config_from_study(study: optuna.Study, **overrides) -> SearchConfig:
    """Rebuild a SearchConfig from a study's stored settings (for workers)."""
    s = study.user_attrs.get("settings")
    if s is None:
        raise ConfigError(f"study {study.study_name!r} has no budgetnas settings: create it with 'budgetnas search'")
    data = DataConfig(dataset=s["dataset"], val_size=s["val_size"], split_seed=s["split_seed"],
                      train_limit=s["train_limit"], train_fraction=s["train_fraction"],
                      subset_method=s.get("subset_method", "random"), curriculum=s.get("curriculum", False),
                      data_dir=overrides.pop("data_dir", None))
    return SearchConfig(budget=s["budget"], epochs=s["epochs"], study=study.study_name, seed=s["seed"],
                        pruner=s["pruner"], sampler=s["sampler"], eval_points=s["eval_points"], data=data, **overrides)


# --- the objective ------------------------------------------------------------------------
def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % (2 ** 31)


def architecture_note(spec: ArchSpec, params: int, budget: int) -> str:
    """A markdown note (for optuna-dashboard): the architecture as a small table."""
    from .space import layer_table
    rows = ["| layer | output | params |", "|---|---|---|"]
    rows += [f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['params']:,} |" for r in layer_table(spec)]
    return f"**{params:,} params** ({100 * params / budget:.1f}% of the {budget:,} budget)\n\n" + "\n".join(rows)


class Objective:
    """Callable for study.optimize. ``on_event`` gets a TrialEvent per finished trial;
    ``progress`` gets (step, total, val_acc) during training."""

    def __init__(self, cfg: SearchConfig, data: Data, device: torch.device, weights_dir: Path,
                 on_event: Callable[[TrialEvent], None] | None = None,
                 progress: Callable[[int, int, float | None], None] | None = None,
                 space: Space | None = None):
        self.cfg, self.data, self.device, self.weights_dir = cfg, data, device, weights_dir
        self.on_event = on_event or (lambda e: None)
        self.progress = progress
        self.space = space or Space()

    def __call__(self, trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        cfg = self.cfg
        preset = trial.user_attrs.get("preset_spec")
        if preset:  # an enqueued seed model (--warm-start presets): fixed spec and recipe
            spec = ArchSpec.from_dict(preset)
            recipe = Recipe.from_dict({**trial.user_attrs["preset_recipe"], "epochs": cfg.epochs})
        else:
            spec = sample_spec(trial, self.space, cfg.budget)
            recipe = sample_recipe(trial, self.space, cfg.epochs)
        params = param_count(spec)
        seed = trial_seed(cfg.seed, trial.number)
        for key, value in (("params", params), ("budget", cfg.budget), ("spec", spec.to_dict()),
                           ("recipe", recipe.to_dict()), ("macs", macs(spec)), ("seed", seed),
                           ("budget_use", params / cfg.budget)):
            trial.set_user_attr(key, value)
        trial.set_constraint("params_over_budget", float(params - cfg.budget))
        if params > cfg.budget:  # rejected before any model exists
            trial.set_user_attr("rejected", f"{params} params > budget {cfg.budget}")
            self.on_event(TrialEvent(trial.number, "rejected", params, cfg.budget, seconds=time.perf_counter() - t0,
                                     reason="over budget"))
            raise optuna.TrialPruned(f"over budget: {params} > {cfg.budget}")
        self._note(trial, spec, params)
        torch.manual_seed(seed)
        model = build_model(spec)
        last: dict = {}

        def report(point: int, acc: float) -> None:
            last.update(point=point, acc=acc)
            trial.report(acc, point)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val acc {acc:.4f} at report {point}")

        try:
            result = train(model, self.data, recipe, device=self.device, seed=seed, report=report,
                           eval_points=cfg.eval_points, progress=self.progress)
        except optuna.TrialPruned:
            trial.set_user_attr("pruned_at", last.get("point"))
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            self.on_event(TrialEvent(trial.number, "pruned", params, cfg.budget, last.get("acc"),
                                     seconds=time.perf_counter() - t0, reason=f"at report {last.get('point')}"))
            raise
        except Diverged as e:
            trial.set_user_attr("pruned_reason", f"diverged: {e}")
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            self.on_event(TrialEvent(trial.number, "pruned", params, cfg.budget, seconds=time.perf_counter() - t0,
                                     reason=f"diverged ({e})"))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        weights = self._save_weights(trial.number, model)
        for key, value in (("val_acc", result.val_acc), ("test_acc", result.test_acc), ("seconds", result.seconds),
                           ("history", result.history), ("weights", str(weights)), ("device", str(self.device)),
                           ("precision", result.precision), ("threads", torch.get_num_threads()),
                           ("torch", torch.__version__)):
            trial.set_user_attr(key, value)
        self.on_event(TrialEvent(trial.number, "complete", params, cfg.budget, result.val_acc, result.test_acc,
                                 result.seconds))
        return result.val_acc

    def _note(self, trial: optuna.Trial, spec: ArchSpec, params: int) -> None:
        try:
            from optuna_dashboard import save_note
            save_note(trial, architecture_note(spec, params, self.cfg.budget))
        except Exception:  # a note is a convenience: never let it fail a trial
            pass

    def _save_weights(self, number: int, model: torch.nn.Module) -> Path:
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        path = self.weights_dir / f"trial_{number}.pt"
        tmp = path.with_suffix(".pt.part")
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a killed worker leaves no half-written weights
        return path


def enqueue_presets(study: optuna.Study, budget: int) -> list[str]:
    """Enqueue the seed presets that fit the budget (as fixed architectures)."""
    from .presets import PRESETS
    names = []
    done = {t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)}
    for name, p in PRESETS.items():
        if param_count(p.spec) <= budget and name not in done:
            study.enqueue_trial({}, user_attrs={"preset": name, "preset_spec": p.spec.to_dict(),
                                                "preset_recipe": p.recipe.to_dict()})
            names.append(name)
    return names


# --- running ----------------------------------------------------------------------------------
def trained_count(study: optuna.Study) -> int:
    """Trials that trained a model (complete, or pruned by the pruner). Rejected
    (over-budget) and failed trials do not count towards --trials."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
        n += not t.user_attrs.get("rejected")
    return n


def running_count(study: optuna.Study, since: datetime.datetime) -> int:
    """Trials running now that started at or after ``since`` (a trial left running by a
    process killed earlier is not counted)."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return sum(1 for t in running if t.datetime_start is not None and t.datetime_start >= since)


def optimize(study: optuna.Study, objective: Objective, cfg: SearchConfig,
             after_trial: Callable[[], None] | None = None, running_since: datetime.datetime | None = None) -> None:
    """Run trials until the study holds cfg.trials trained trials (total, so the same
    command resumes an interrupted search) or cfg.timeout passes. KeyboardInterrupt
    propagates after Optuna marks the running trial failed.

    ``running_since`` (several workers on one study): trials other workers started since
    then and still run count towards the target too, so N workers stop at the target
    instead of up to N - 1 trials past it (the last worker left always finishes the count)."""
    target = cfg.trials

    def stop_when_done(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if after_trial is not None:
            after_trial()
        if target is None:
            return
        done = trained_count(study)
        if running_since is not None and done < target:
            done += running_count(study, running_since)
        if done >= target:
            study.stop()

    if target is not None and trained_count(study) >= target:
        return
    # n_trials caps asks as a guard: rejected trials take ~ms, but never loop forever
    cap = None if target is None else 50 * target
    study.optimize(objective, n_trials=cap, timeout=cfg.timeout, callbacks=[stop_when_done], catch=(),
                   gc_after_trial=False, show_progress_bar=False)
