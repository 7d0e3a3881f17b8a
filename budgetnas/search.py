"""The search: sampler, pruner, study settings, the objective, optimize, and the
dashboard publisher (storages are opened by storage.py).

Each trial: sample a spec -> count its parameters -> over budget? reject at once,
before any model exists -> build -> train, reporting validation accuracy several times
per epoch -> the pruner decides -> store raw measurements as user attrs -> save weights.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import socket
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import torch

from .config import ConfigError, DataConfig, Recipe, SearchConfig, is_builtin
from .data import Data, identity
from .model import build_model
from .space import (ArchSpec, Space, default_trials, macs, over_budgets, param_count, peak_ram, sample_recipe,
                    sample_spec, space_for)
from .storage import heartbeat_settings
from .train import Diverged, report_count, train

# Study user attrs that pin a study's meaning: a worker or a rerun reads them, and a
# rerun with different values is refused (its trials would not be comparable).
PINNED = ("budget", "max_macs", "max_ram", "epochs", "dataset", "val_size", "split_seed", "eval_points", "train_limit",
          "train_fraction", "image_size", "channels", "hflip")
# the data's identity (data.identity), pinned too; a study made before it was recorded has none
IDENTITY = ("fingerprint", "images", "shape", "classes")
TARGET_ATTR = "target_trials"  # study user attr: trained trials the study should hold
UNITS = {"params": "params", "macs": "MACs", "ram": "bytes"}  # what each budget kind counts
RERUN_ATTR = "rerun_of"  # trial user attr: this trial re-trains trial N's candidate with a new seed


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
    rerun_of: int | None = None  # a re-run of this trial's candidate (new seed)


# --- sampler and pruner ----------------------------------------------------------------
def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar keeps parallel workers from proposing the same point. Optuna's own
    # warnings about these arguments (experimental; deprecated since 4.9) are silenced here:
    # on Python 3.12 Optuna attributes them to this line, where a filter on module="optuna"
    # misses them and they reached the user's terminal (seen in scripts/gpu-check.sh).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True, group=True,
                                          constant_liar=True, warn_independent_sampling=False)


def make_pruner(name: str, epochs: int, eval_points: int) -> optuna.pruners.BasePruner:
    """``auto``: the median pruner for a 1-epoch search; for more epochs, Hyperband across
    epochs (successive halving with rungs at 1, 3, 9... epochs: most candidates are
    stopped after one or three epochs, the best ones train to the end)."""
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
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, (3 * reports) // 4))
    return optuna.pruners.NopPruner()


# --- study -------------------------------------------------------------------------------
def data_space(data: Data) -> Space:
    """The search space for this data: its channels, side and classes; flips where the
    data says they make sense."""
    c, h, w = data.shape
    return space_for(c, h, data.num_classes, data.hflip)


def study_settings(cfg: SearchConfig, data: Data | None = None) -> dict:
    """The settings a study is pinned to. With ``data``: its identity (fingerprint,
    image count, shape, class names), normalisation and the space it implies."""
    d = cfg.data
    settings = {"budget": cfg.budget, "max_macs": cfg.max_macs, "max_ram": cfg.max_ram, "epochs": cfg.epochs,
                "dataset": d.dataset, "val_size": d.val_size,
                "split_seed": d.split_seed, "eval_points": cfg.eval_points, "train_limit": d.train_limit,
                "train_fraction": d.train_fraction, "subset_method": d.subset_method, "curriculum": d.curriculum,
                "seed": cfg.seed, "pruner": cfg.pruner, "sampler": cfg.sampler,
                "confirm_top": cfg.confirm_top, "reruns": cfg.reruns,
                "image_size": d.image_size, "channels": d.channels, "hflip": d.hflip,
                "space": dataclasses.asdict(data_space(data) if data is not None else Space())}
    if data is not None:
        settings.update(identity(data.info), mean=data.info["mean"], std=data.info["std"],
                        test_from=data.info["test_from"], data_dir=data.info["data_dir"])
    return settings


def _describe(s: dict) -> str:
    shape = "x".join(map(str, s.get("shape") or [])) or "?"
    return f"fingerprint {s.get('fingerprint')}, {s.get('images') or 0:,} images of {shape}, {len(s.get('classes') or [])} classes"


def check_pinned(name: str, stored: dict, wanted: dict) -> None:
    """Refuse settings (or data) that would make a rerun's trials incomparable with the
    study's. Two own-data sources are compared by content, not by path; settings a study
    made by an older version does not hold are not compared."""
    for key in PINNED:
        if key not in stored and key in ("image_size", "channels", "hflip"):
            continue
        if key == "dataset" and stored.get("fingerprint") and wanted.get("fingerprint") \
                and not is_builtin(str(stored.get(key))) and not is_builtin(str(wanted.get(key))):
            continue  # the same files may sit elsewhere on another host: the fingerprint decides
        if stored.get(key) != wanted.get(key):
            raise ConfigError(f"study {name!r} was made with {key}={stored.get(key)!r}, not "
                              f"{wanted.get(key)!r}: rerun with the same settings or pick a new --study")
    if stored.get("fingerprint") and wanted.get("fingerprint") and \
            any(stored.get(k) != wanted.get(k) for k in IDENTITY):
        raise ConfigError(f"study {name!r} was made on other data ({_describe(stored)}; this data: "
                          f"{_describe(wanted)}): search the same data or pick a new --study")


def create_or_load_study(cfg: SearchConfig, storage: optuna.storages.BaseStorage, worker: int = 0,
                         data: Data | None = None) -> optuna.Study:
    """Create the study once (or load it) and pin its settings and its data's identity;
    refuse a rerun whose settings or data would make its trials incomparable."""
    study = optuna.create_study(study_name=cfg.study, storage=storage, direction="maximize",
                                sampler=make_sampler(cfg.sampler, cfg.seed + 1000 * worker),
                                pruner=make_pruner(cfg.pruner, cfg.epochs, cfg.eval_points), load_if_exists=True)
    stored = study.user_attrs.get("settings")
    wanted = study_settings(cfg, data)
    if stored is None:
        study.set_user_attr("settings", wanted)
        study.set_metric_names(["val_acc"])
        for params in default_trials(cfg.budget, data_space(data) if data is not None else None, cfg.max_macs,
                                     cfg.max_ram, cfg.epochs):
            study.enqueue_trial(dict(params), user_attrs={"default_trial": True})
    else:
        check_pinned(cfg.study, stored, wanted)
    done = len(study.get_trials(deepcopy=False))
    if done:  # a resumed run must not replay the sampler's sequence of the first run
        study.sampler = make_sampler(cfg.sampler, (cfg.seed + 1000 * worker + 1_000_003 * done) % 2 ** 32)
    # the owning run (worker 0) sets the target that 'budgetnas worker' uses by default
    if worker == 0 and cfg.trials is not None and study.user_attrs.get(TARGET_ATTR) != cfg.trials:
        study.set_user_attr(TARGET_ATTR, cfg.trials)
    return study


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


def config_from_study(study: optuna.Study, **overrides) -> SearchConfig:
    """Rebuild a SearchConfig from a study's stored settings (for workers)."""
    s = study.user_attrs.get("settings")
    if s is None:
        raise ConfigError(f"study {study.study_name!r} has no budgetnas settings: create it with 'budgetnas search'")
    data_dir = overrides.pop("data_dir", None)
    dataset = s["dataset"]
    if not is_builtin(dataset) and not dataset.startswith("torchvision:") and data_dir:
        dataset, data_dir = data_dir, None  # own data: --data-dir is where this host holds it
    if not is_builtin(dataset) and not dataset.startswith("torchvision:") and not Path(dataset).exists():
        raise ConfigError(f"study {study.study_name!r} searches the data at {dataset}, which this host does not have: "
                          "pass --data-dir with the same folder or .npz file here")
    data = DataConfig(dataset=dataset, val_size=s["val_size"], split_seed=s["split_seed"],
                      train_limit=s["train_limit"], train_fraction=s["train_fraction"],
                      subset_method=s.get("subset_method", "random"), curriculum=s.get("curriculum", False),
                      image_size=s.get("image_size"), channels=s.get("channels"), hflip=s.get("hflip", "auto"),
                      data_dir=data_dir)
    return SearchConfig(budget=s["budget"], max_macs=s.get("max_macs"), max_ram=s.get("max_ram"), epochs=s["epochs"],
                        study=study.study_name, seed=s["seed"],
                        pruner=s["pruner"], sampler=s["sampler"], eval_points=s["eval_points"], data=data,
                        confirm_top=s.get("confirm_top", 0), reruns=s.get("reruns", 2), **overrides)


# --- the objective ------------------------------------------------------------------------
def worker_name() -> str:
    """host:pid of this process, stored with each trial (which host holds its weights)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % (2 ** 31)


def rerun_seed(seed: int, run: int) -> int:
    """The training seed of re-run ``run`` (1, 2...) of a trial trained with ``seed``."""
    return (seed + 7_919 * run) % (2 ** 31)


def architecture_note(spec: ArchSpec, params: int, budget: int, max_macs: int | None = None,
                      max_ram: int | None = None) -> str:
    """A markdown note (for optuna-dashboard): the architecture as a small table, with
    its MACs and peak int8 RAM (and their share of the limits given)."""
    from .space import layer_table
    rows = ["| layer | output | params | MACs |", "|---|---|---|---|"]
    rows += [f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['params']:,} | {r['macs']:,} |"
             for r in layer_table(spec)]
    over = over_budgets(spec, budget, max_macs, max_ram)
    verdict = f" **over budget: rejected, never built** (over the {' and '.join(over)} limit)" if over else ""
    share = lambda v, limit: f" ({100 * v / limit:.1f}% of {limit:,})" if limit else ""
    n_macs, ram = macs(spec), peak_ram(spec)
    return (f"**{params:,} params** ({100 * params / budget:.1f}% of the {budget:,} budget){verdict}\n\n"
            f"{n_macs:,} MACs per image{share(n_macs, max_macs)}; peak RAM of an int8 inference "
            f"{ram:,} bytes{share(ram, max_ram)}\n\n" + "\n".join(rows))


def rejection_reason(over: dict[str, tuple[int, int]]) -> str:
    """'over budget' (the parameter budget alone: the line says which), else e.g.
    'over the MAC budget (412,000 > 300,000)' for the budgets a spec exceeds."""
    if set(over) == {"params"}:
        return "over budget"
    names = {"params": "parameter", "macs": "MAC", "ram": "RAM"}
    return "; ".join(f"over the {names[k]} budget ({v:,} > {limit:,} {UNITS[k]})" for k, (v, limit) in over.items())


class TrialHold:
    """Test-only: a trial that waits, mid-training, for a file the test writes.

    With ``$BUDGETNAS_TEST_HOLD=DIR`` (set only by tests), every trained trial stops
    right after validation report ``$BUDGETNAS_TEST_HOLD_AT`` (a number, default 1, or
    ``last``: its last report, however many it makes) is stored and the pruner has let
    it go on: it writes ``DIR/held-<trial number>`` (holding this
    process's pid) and waits until ``DIR/release-<trial number>`` or ``DIR/release``
    exists, or the process is killed or interrupted (Ctrl-C ends the wait like any
    sleep). Kill, Ctrl-C and timeout tests use it for a trial in the middle of training
    for as long as they need, instead of polling for a window of a second. Unset, it
    does nothing."""

    def __init__(self, folder: str | None = None, at: int | None = 1):
        self.folder, self.at = (Path(folder) if folder else None), at  # at None: the last report

    @classmethod
    def from_env(cls) -> "TrialHold":
        at = os.environ.get("BUDGETNAS_TEST_HOLD_AT", "").strip()
        return cls(os.environ.get("BUDGETNAS_TEST_HOLD") or None, None if at == "last" else int(at or 1))

    def __call__(self, number: int, point: int, last: int) -> None:
        if self.folder is None or point != (last if self.at is None else self.at):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".held-{number}.{os.getpid()}"
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, self.folder / f"held-{number}")  # a test never reads it half-written
        while not ((self.folder / f"release-{number}").exists() or (self.folder / "release").exists()):
            time.sleep(0.05)


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
        self.space = space or data_space(data)
        self.hold = TrialHold.from_env()
        # optimize() sets it with --timeout: when (time.monotonic()) a trial must have ended
        self.deadline: Callable[[], float | None] = lambda: None

    def __call__(self, trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        cfg = self.cfg
        preset = trial.user_attrs.get("preset_spec")
        spec = (ArchSpec.from_dict(preset) if preset else
                sample_spec(trial, self.space, cfg.budget, cfg.max_macs, cfg.max_ram))
        params, n_macs, ram = param_count(spec), macs(spec), peak_ram(spec)
        with warnings.catch_warnings():
            # a retried trial (after a kill) inherits this same value; Optuna warns and keeps it
            warnings.filterwarnings("ignore", message="The constraint value is ignored")
            trial.set_constraint("params_over_budget", float(params - cfg.budget))
            if cfg.max_macs is not None:
                trial.set_constraint("macs_over_budget", float(n_macs - cfg.max_macs))
            if cfg.max_ram is not None:
                trial.set_constraint("ram_over_budget", float(ram - cfg.max_ram))
        for key, value in (("params", params), ("budget", cfg.budget), ("macs", n_macs), ("ram", ram),
                           ("max_macs", cfg.max_macs), ("max_ram", cfg.max_ram), ("worker", worker_name())):
            trial.set_user_attr(key, value)
        self._note(trial, spec, params)
        over = over_budgets(spec, cfg.budget, cfg.max_macs, cfg.max_ram)
        if over:  # rejected before any model exists (few storage writes: ~ms)
            what = "; ".join(f"{v} {UNITS[k]} > {k} budget {limit}" for k, (v, limit) in over.items())
            self._reject(trial, spec, params, t0, what, list(over), rejection_reason(over), f"over budget: {what}")
        late = self._too_late(trial, n_macs)
        if late:  # it would end after --timeout: not started, and no later candidate is (the
            # sampler might spin on ones that do not fit); a re-run that does not fit leaves
            # the queued re-runs their chance, as a shorter one may still fit
            if trial.user_attrs.get(RERUN_ATTR) is None:
                trial.study.stop()
            self._reject(trial, spec, params, t0, late, ["time"], late, late)
        if preset:  # an enqueued seed model (--warm-start presets): fixed spec and recipe
            recipe = Recipe.from_dict({**trial.user_attrs["preset_recipe"], "epochs": cfg.epochs})
        else:
            recipe = sample_recipe(trial, self.space, cfg.epochs)
        # a retry of a trial whose worker died inherits its user attrs: replay its seed too
        # (a re-run's seed is set when it is queued)
        seed = trial.user_attrs.get("seed", trial_seed(cfg.seed, trial.number))
        rerun_of = trial.user_attrs.get(RERUN_ATTR)
        for key, value in (("spec", spec.to_dict()), ("recipe", recipe.to_dict()),
                           ("seed", seed), ("budget_use", params / cfg.budget)):
            trial.set_user_attr(key, value)
        torch.manual_seed(seed)
        model = build_model(spec)
        last: dict = {}
        final = report_count(len(self.data.train_x), recipe, cfg.eval_points)

        def report(point: int, acc: float) -> None:
            last.update(point=point, acc=acc)
            trial.report(acc, point)
            # the last report ends training anyway: a finished model is kept, never pruned;
            # a re-run measures a chosen candidate again and is never pruned either
            if rerun_of is None and point < final and trial.should_prune():
                raise optuna.TrialPruned(f"val acc {acc:.4f} at report {point}")
            self.hold(trial.number, point, final)

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
                                 result.seconds, rerun_of=rerun_of))
        return result.val_acc

    def _reject(self, trial: optuna.Trial, spec: ArchSpec, params: int, t0: float, what: str, by: list[str],
                reason: str, message: str) -> None:
        """End a trial as rejected, unbuilt: ``by`` names the budgets it is over (params,
        macs, ram) or ``time``; the stored ``rejected`` says ``what``."""
        for key, value in (("spec", spec.to_dict()), ("rejected", what), ("rejected_by", by)):
            trial.set_user_attr(key, value)
        self.on_event(TrialEvent(trial.number, "rejected", params, self.cfg.budget,
                                 seconds=time.perf_counter() - t0, reason=reason))
        raise optuna.TrialPruned(message)

    def _too_late(self, trial: optuna.Trial, n_macs: int) -> str:
        """Why this candidate must not start (it would end after the search's deadline,
        by the times of the study's finished trials), or ''."""
        deadline = self.deadline()
        if deadline is None:
            return ""
        trials = trial.study.get_trials(deepcopy=False)
        of = trial.user_attrs.get(RERUN_ATTR)  # a re-run takes as long as its candidate's run
        own = next((t.user_attrs.get("seconds") for t in trials if t.number == of), None) if of is not None else None
        need = TIME_MARGIN * own if own else expected_seconds(trials, n_macs)
        left = deadline - time.monotonic()
        if need is None or need <= left:
            return ""
        return f"over the time budget (about {need:.0f}s to train, {max(0.0, left):.0f}s left)"

    def _note(self, trial: optuna.Trial, spec: ArchSpec, params: int) -> None:
        try:
            from optuna_dashboard import save_note
            save_note(trial, architecture_note(spec, params, self.cfg.budget, self.cfg.max_macs, self.cfg.max_ram))
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


def enqueue_presets(study: optuna.Study, budget: int, data: Data | None = None) -> list[str]:
    """Enqueue the seed presets that fit the budget and take the data's images (as fixed
    architectures): A-E take 1x28x28 digits with 10 classes."""
    from .presets import PRESETS, fits
    names = []
    done = {t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)}
    for name, p in PRESETS.items():
        if data is not None and not fits(p, data.shape, data.num_classes):
            continue
        if param_count(p.spec) <= budget and name not in done:
            study.enqueue_trial({}, user_attrs={"preset": name, "preset_spec": p.spec.to_dict(),
                                                "preset_recipe": p.recipe.to_dict()})
            names.append(name)
    return names


# --- running ----------------------------------------------------------------------------------
TIME_MARGIN = 1.15  # a candidate starts only if 1.15x its expected time is left
# With --timeout, the time kept back for re-runs is at most this share of it: long
# (multi-epoch) trials would otherwise spend most of the time re-running the first few
# candidates (an 8k, 15-epoch search: 3 x 2 re-runs of ~6 min each are 41 of its 60
# minutes). Re-runs that do not fit are not started (first re-runs go first).
RERUN_SHARE = 1 / 3


def expected_seconds(trials: list, n_macs: int, neighbours: int = 3) -> float | None:
    """How long a candidate of ``n_macs`` MACs per image will train, from the study's
    finished full-length runs (complete trials and re-runs): trial time follows MACs far
    more than parameters. The median of the ``neighbours`` runs nearest in MACs (log
    scale), each scaled up in proportion where this candidate has more MACs (never down:
    small nets are dominated by per-step costs), times TIME_MARGIN. None before any run
    has finished (the first trials run whatever the clock says)."""
    done = [(t.user_attrs["macs"], t.user_attrs["seconds"]) for t in trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("macs") and t.user_attrs.get("seconds")]
    if not done:
        return None
    near = sorted(done, key=lambda d: abs(math.log(d[0] / max(n_macs, 1))))[:neighbours]
    return TIME_MARGIN * statistics.median(s * max(1.0, n_macs / m) for m, s in near)


def trained_count(study: optuna.Study) -> int:
    """Trials that trained a candidate (complete, or pruned by the pruner). Rejected
    (over-budget) and failed trials, and re-runs of a candidate, do not count towards
    --trials."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
        n += not t.user_attrs.get("rejected") and t.user_attrs.get(RERUN_ATTR) is None
    return n


# --- re-runs of the best candidates: a winner that is not a coin flip ---------------------------
def top_candidates(trials: list, k: int) -> list:
    """The k best completed trials by their own validation accuracy (re-runs excluded)."""
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get(RERUN_ATTR) is None
            and t.user_attrs.get("val_acc") is not None]
    return sorted(done, key=lambda t: (-t.user_attrs["val_acc"], t.user_attrs.get("params", 0), t.number))[:k]


def missing_reruns(trials: list, k: int, reruns: int) -> list[tuple]:
    """(trial, run) pairs still to do so that each of the k best candidates has ``reruns``
    re-runs: done, running or queued ones count; failed ones, and ones not started for
    lack of time, do not (they run again, given time). In the order they run: every
    candidate's first re-run (best candidate first), then every second one..., so a
    search short of time gives each candidate a second measurement before a third."""
    have: dict[int, int] = {}
    for t in trials:
        of = t.user_attrs.get(RERUN_ATTR)
        if of is not None and t.state != optuna.trial.TrialState.FAIL and not t.user_attrs.get("rejected"):
            have[of] = have.get(of, 0) + 1
    todo = [(t, run) for t in top_candidates(trials, k) for run in range(have.get(t.number, 0) + 1, reruns + 1)]
    return sorted(todo, key=lambda pair: pair[1])  # stable: by run, then by rank


def rerun_seconds(trials: list, k: int, reruns: int) -> float:
    """Estimated seconds the re-runs still to do will take (each as long as its original,
    with the margin a re-run needs to be started: TIME_MARGIN)."""
    return TIME_MARGIN * sum(t.user_attrs.get("seconds") or 0.0 for t, _ in missing_reruns(trials, k, reruns))


def rerun_reserve(trials: list, cfg: SearchConfig, k: int) -> float:
    """Seconds a search with --timeout keeps back for re-running its k best candidates:
    their estimated time (rerun_seconds), RERUN_SHARE of the timeout at most."""
    if cfg.timeout is None or not k or not cfg.reruns:
        return 0.0
    return min(rerun_seconds(trials, k, cfg.reruns), RERUN_SHARE * cfg.timeout)


def enqueue_reruns(study: optuna.Study, k: int, reruns: int) -> int:
    """Queue the missing re-runs of the k best candidates (same parameters, a new seed per
    run); return how many re-runs are waiting to run."""
    trials = study.get_trials(deepcopy=False)
    for t, run in missing_reruns(trials, k, reruns):
        attrs = {RERUN_ATTR: t.number, "seed": rerun_seed(t.user_attrs.get("seed", 0), run)}
        attrs.update({key: t.user_attrs[key] for key in ("preset", "preset_spec", "preset_recipe") if key in t.user_attrs})
        study.enqueue_trial(dict(t.params), user_attrs=attrs)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return sum(1 for t in waiting if t.user_attrs.get(RERUN_ATTR) is not None)


def running_count(study: optuna.Study, since: datetime.datetime) -> int:
    """Trials running now that started at or after ``since`` (a trial left running by a
    process killed earlier is not counted)."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return sum(1 for t in running if t.datetime_start is not None and t.datetime_start >= since)


def queued_retries(study: optuna.Study) -> int:
    """Trials failed as stale and queued again, not yet picked up by a worker."""
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return sum(1 for t in waiting if "failed_trial" in t.system_attrs)


def await_stale(study: optuna.Study, note: Callable[[str], None] | None = None) -> bool:
    """Wait while other processes' trials run, until each ends or is found stale: the
    grace period at most, since a trial still running after it has a live worker that
    keeps its heartbeat. Stale trials are failed and queued again; returns True if any
    was. (This process runs no trial now, so every running trial is another's.)"""
    interval, grace = heartbeat_settings()
    poll = min(interval, 2)
    deadline = time.monotonic() + grace + poll
    told = False
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if recover_stale(study):
            return True
        if time.monotonic() > deadline:
            return False
        if note is not None and not told:
            told = True
            note(f"the target is reached; waiting (up to {grace + poll}s) for the trials other workers run: "
                 "one whose worker died is retried here")
        time.sleep(poll)
    return False


def optimize(study: optuna.Study, objective: Objective, cfg: SearchConfig,
             after_trial: Callable[[], None] | None = None, running_since: datetime.datetime | None = None,
             settle: bool = False, note: Callable[[str], None] | None = None, confirm: bool = True,
             started: float | None = None) -> None:
    """Run trials until the study holds cfg.trials trained trials (total, so the same
    command resumes an interrupted search) and no retry of a dead worker's trial is
    queued, or cfg.timeout passes. KeyboardInterrupt propagates after Optuna marks the
    running trial failed.

    ``running_since`` (several workers on one study): trials other workers started since
    then and still run count towards the target too, so N workers stop at the target
    instead of up to N - 1 trials past it (the last worker left always finishes the count).

    ``settle`` (storages with heartbeats, which other processes may share): on reaching
    the target, wait for the trials other workers run (see await_stale) and run the
    retry of any whose worker died. Without it a worker that reached the target first
    would leave a killed worker's trial RUNNING for good.

    ``confirm``: then re-run the ``cfg.confirm`` best candidates ``cfg.reruns`` more times
    with new seeds (queued as trials with the user attr ``rerun_of``), so the leaderboard
    ranks them by a mean over runs.

    ``cfg.timeout`` counts from ``started`` (time.monotonic(); default: now), and the
    whole search fits in it: the re-runs are kept time for (estimated from the
    candidates' own times; RERUN_SHARE of the timeout at most), and a candidate or re-run
    expected to end after the deadline is not started (see expected_seconds) but stored
    as rejected for time: that ends the search for new candidates; in the re-runs it only
    skips that re-run (each is queued, so the others are still tried)."""
    target = cfg.trials
    publish = DashboardPublisher()
    k = cfg.confirm if confirm else 0
    end = None if cfg.timeout is None else (time.monotonic() if started is None else started) + cfg.timeout

    def reserve(study: optuna.Study) -> float:
        return rerun_reserve(study.get_trials(deepcopy=False), cfg, k)

    def finished(study: optuna.Study) -> bool:
        if target is None:
            return False
        done = trained_count(study)
        if running_since is not None and done < target:
            done += running_count(study, running_since)
        return done >= target and not queued_retries(study)

    def after(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        publish(study)
        if after_trial is not None:
            after_trial()

    def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        after(study, trial)
        if finished(study) or (end is not None and time.monotonic() + reserve(study) >= end):
            study.stop()  # the target is reached, or what time is left is for the re-runs

    def left(keep: float = 0.0) -> float | None:
        return None if end is None else max(0.0, end - time.monotonic() - keep)

    # n_trials caps asks as a guard: rejected trials take ~ms, but never loop forever
    cap = None if target is None else 50 * target
    if end is not None:
        objective.deadline = lambda: end - reserve(study)
    try:
        while True:
            if not finished(study) and left(reserve(study)) != 0.0:
                study.optimize(objective, n_trials=cap, timeout=left(reserve(study)), callbacks=[stop_when_done],
                               catch=(), gc_after_trial=False, show_progress_bar=False)
            if not (settle and finished(study) and (end is None or time.monotonic() < end)
                    and await_stale(study, note)):
                break
        if end is not None:
            objective.deadline = lambda: end
        if k and cfg.reruns and left() != 0.0:
            waiting = enqueue_reruns(study, k, cfg.reruns)
            if waiting:
                if note is not None:
                    note(f"re-running the {k} best candidates {cfg.reruns} more time(s) each with new seeds "
                         f"before naming a winner ({waiting} runs)")
                study.optimize(objective, n_trials=waiting, timeout=left(), callbacks=[after],
                               catch=(), gc_after_trial=False, show_progress_bar=False)
    finally:
        objective.deadline = lambda: None
        publish(study, force=True)


class DashboardPublisher:
    """Refreshes the study's Pareto and leaderboard plots for optuna-dashboard after
    trials, at most every ``every`` seconds (rejected trials end in milliseconds). A
    convenience: it never fails a search."""

    def __init__(self, every: float = 5.0):
        self.every, self.last = every, -math.inf

    def __call__(self, study: optuna.Study, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        try:
            from .dashboard import publish_plots
            publish_plots(study)
        except Exception:
            pass
