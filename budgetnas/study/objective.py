"""The objective: one trial.

Sample a spec -> count its parameters, MACs and peak RAM -> over a budget, or past the
deadline? reject at once, before any model exists -> build -> train, reporting
validation accuracy several times per epoch -> the pruner decides -> store the raw
measurements (the trial record) -> save the weights.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import optuna
import torch

from ..arch import UNITS, ArchSpec, layer_table, macs, over_budgets, param_count, peak_ram
from ..arch.build import build_model
from ..config import ExportIncomplete, SearchConfig
from ..space import Space, sample_recipe, sample_spec
from ..train import Recipe
from ..train.loop import Diverged, report_count, train
from . import record
from .schedule import TIME_MARGIN, expected_seconds, trial_seed
from .settings import SETTINGS_ATTR, pinned_space
from .fast import set_study_system_attrs

if TYPE_CHECKING:
    from ..data.load import Data


@dataclass
class TrialEvent:
    """What a view shows for a finished trial."""

    number: int
    state: str  # complete | pruned | rejected | failed
    params: int
    budget: int
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None
    reason: str = ""
    rerun_of: int | None = None  # a re-run of this trial's candidate (new seed)


def worker_name() -> str:
    """host:pid of this process, stored with each trial (which host holds its weights)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def architecture_note(spec: ArchSpec, params: int, budget: int, max_macs: int | None = None,
                      max_ram: int | None = None) -> str:
    """A markdown note (for optuna-dashboard): the architecture as a small table, with
    its MACs and peak int8 RAM (and their share of the limits given)."""
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


ReportHook = Callable[[int, int, int], None]  # (trial number, report, last report)


class Objective:
    """Callable for study.optimize. ``on_event`` gets a TrialEvent per finished trial;
    ``progress`` gets (step, total, val_acc) during training; ``after_report`` (trial
    number, report, last report) is called after each validation report the pruner let
    pass (a process's hooks: a test holds a trial there)."""

    def __init__(self, cfg: SearchConfig, data: "Data", device: torch.device, weights_dir: Path,
                 on_event: Callable[[TrialEvent], None] | None = None,
                 progress: Callable[[int, int, float | None], None] | None = None,
                 space: Space | None = None, after_report: ReportHook | None = None):
        self.cfg, self.data, self.device, self.weights_dir = cfg, data, device, weights_dir
        self.on_event = on_event or (lambda e: None)
        self.progress = progress
        self.space = space  # None: the study's pinned space, read at the first trial
        self.after_report = after_report
        # optimize() sets it with --timeout: when (time.monotonic()) a trial must have ended
        self.deadline: Callable[[], float | None] = lambda: None

    def __call__(self, trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        cfg = self.cfg
        if self.space is None:
            self.space = pinned_space(trial.study.user_attrs.get(SETTINGS_ATTR), self.data)
        queued = record.read(trial)
        preset = queued.preset_spec
        spec = (ArchSpec.from_dict(preset) if preset else
                sample_spec(trial, self.space, cfg.budget, cfg.max_macs, cfg.max_ram))
        params, n_macs, ram = param_count(spec), macs(spec), peak_ram(spec)
        constraints = {"params_over_budget": float(params - cfg.budget)}
        if cfg.max_macs is not None:
            constraints["macs_over_budget"] = float(n_macs - cfg.max_macs)
        if cfg.max_ram is not None:
            constraints["ram_over_budget"] = float(ram - cfg.max_ram)
        measured = dict(params=params, budget=cfg.budget, macs=n_macs, ram=ram, max_macs=cfg.max_macs,
                        max_ram=cfg.max_ram, worker=worker_name(), spec=spec.to_dict())
        over = over_budgets(spec, cfg.budget, cfg.max_macs, cfg.max_ram)
        late = "" if over else self._too_late(trial, queued, n_macs)
        if over or late:
            # rejected before any model exists (one storage write: ~ms); one expected to end
            # after --timeout is not started, and no later candidate is (the sampler might spin
            # on ones that do not fit); a re-run that does not fit leaves the queued re-runs
            # their chance, as a shorter one may still fit
            what = "; ".join(f"{v} {UNITS[k]} > {k} budget {limit}" for k, (v, limit) in over.items())
            record.write(trial, constraints, **measured, rejected=what or late, rejected_by=list(over) or ["time"])
            self._note(trial, spec, params)
            if late and queued.rerun_of is None:
                trial.study.stop()
            self.on_event(TrialEvent(trial.number, "rejected", params, cfg.budget, seconds=time.perf_counter() - t0,
                                     reason=rejection_reason(over) if over else late))
            raise optuna.TrialPruned(f"over budget: {what}" if over else late)
        if preset:  # an enqueued seed model (--warm-start presets): fixed spec and recipe
            recipe = Recipe.from_dict({**queued.preset_recipe, "epochs": cfg.epochs})
        else:
            recipe = sample_recipe(trial, self.space, cfg.epochs)
        # a retry of a trial whose worker died inherits its user attrs: replay its seed too
        # (a re-run's seed is set when it is queued)
        seed = queued.seed if queued.seed is not None else trial_seed(cfg.seed, trial.number)
        rerun_of = queued.rerun_of
        record.write(trial, constraints, **measured, recipe=recipe.to_dict(), seed=seed, budget_use=params / cfg.budget)
        self._note(trial, spec, params)
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
            if self.after_report is not None:
                self.after_report(trial.number, point, final)

        try:
            result = train(model, self.data, recipe, device=self.device, seed=seed, report=report,
                           eval_points=cfg.eval_points, progress=self.progress)
        except optuna.TrialPruned:
            record.write(trial, pruned_at=last.get("point"), seconds=time.perf_counter() - t0)
            self.on_event(TrialEvent(trial.number, "pruned", params, cfg.budget, last.get("acc"),
                                     seconds=time.perf_counter() - t0, reason=f"at report {last.get('point')}"))
            raise
        except Diverged as e:
            record.write(trial, pruned_reason=f"diverged: {e}", seconds=time.perf_counter() - t0)
            self.on_event(TrialEvent(trial.number, "pruned", params, cfg.budget, seconds=time.perf_counter() - t0,
                                     reason=f"diverged ({e})"))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        # the measurements are stored before the weights are written: a failing write loses neither
        record.write(trial, val_acc=result.val_acc, test_acc=result.test_acc, seconds=result.seconds,
                     history=result.history, device=str(self.device), precision=result.precision, step=result.step,
                     threads=torch.get_num_threads(), torch=torch.__version__)
        record.write(trial, weights=str(self._save_weights(trial, model, result.val_acc)))
        self.on_event(TrialEvent(trial.number, "complete", params, cfg.budget, result.val_acc, result.test_acc,
                                 result.seconds, rerun_of=rerun_of))
        return result.val_acc

    def _too_late(self, trial: optuna.Trial, queued: record.TrialRecord, n_macs: int) -> str:
        """Why this candidate must not start (it would end after the search's deadline,
        by the times of the study's finished trials), or ''."""
        deadline = self.deadline()
        if deadline is None:
            return ""
        trials = trial.study.get_trials(deepcopy=False)
        of = queued.rerun_of  # a re-run takes as long as its candidate's run
        own = next((record.read(t).seconds for t in trials if t.number == of), None) if of is not None else None
        need = TIME_MARGIN * own if own else expected_seconds(trials, n_macs)
        left = deadline - time.monotonic()
        if need is None or need <= left:
            return ""
        return f"over the time budget (about {need:.0f}s to train, {max(0.0, left):.0f}s left)"

    def _note(self, trial: optuna.Trial, spec: ArchSpec, params: int) -> None:
        try:
            new_trial_note(trial, architecture_note(spec, params, self.cfg.budget, self.cfg.max_macs, self.cfg.max_ram))
        except Exception:  # a note is a convenience: never let it fail a trial
            pass

    def _save_weights(self, trial: optuna.Trial, model: torch.nn.Module, val_acc: float) -> Path:
        """trial_N.pt in the weights folder. If it cannot be written (a full disk), into a
        temporary folder, recorded as the trial's weights; then ExportIncomplete says where
        (the trial ends failed, its measurements stored)."""
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        try:
            return save_atomic(state, self.weights_dir / f"trial_{trial.number}.pt")
        except Exception as e:  # OSError; a full disk makes torch.save raise RuntimeError
            why = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
            where = f"cannot write the weights of trial {trial.number} to {self.weights_dir} ({why})"
            measured = f"its measurements (val {100 * val_acc:.2f}%)"
            try:
                rescue = Path(tempfile.mkdtemp(prefix="budgetnas-kept-"))
                kept = save_atomic(state, rescue / f"trial_{trial.number}.pt")
            except Exception:
                raise ExportIncomplete(f"{where} nor to a temporary folder; {measured} are stored in the study: "
                                       "free some disk space") from e
            record.write(trial, weights=str(kept))
            raise ExportIncomplete(f"{where}: they are kept in {kept}, {measured} in the study; free some disk space "
                                   "and run the search again to go on") from e


def new_trial_note(trial: optuna.Trial, body: str) -> None:
    """optuna-dashboard's markdown note of a trial that has none yet (version 1, as its
    save_note would write it), without save_note's two reads of every note in the study
    (study system attrs): those made notes the costliest part of a trial's bookkeeping,
    growing with the study (scripts/bench_overhead.py). Where optuna-dashboard lays its
    notes out otherwise, its own save_note."""
    try:
        from optuna_dashboard._note import note_ver_key, split_body
    except ImportError:
        from optuna_dashboard import save_note
        save_note(trial, body)
        return
    trial_id = trial._trial_id
    set_study_system_attrs(trial.storage, trial.study._study_id,
                           {note_ver_key(trial_id): 1, **split_body(body, trial_id)})


def save_atomic(state: dict[str, torch.Tensor], path: Path) -> Path:
    """torch.save through a .part file: a killed worker leaves no half-written weights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.part")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path
