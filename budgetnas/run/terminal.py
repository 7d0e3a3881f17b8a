"""A search in the terminal: the View that prints the start lines, a line per trial
(event_line), progress bars on stderr and the leaderboard at the end, and the exit
status (0 done, 130 interrupted). The search itself is run/engine.py's."""
from __future__ import annotations

import sys
from typing import Any

from ..config import SearchConfig
from ..study.objective import ReportHook, TrialEvent
from ..study.schedule import trained_count
from . import engine


def event_line(e: TrialEvent) -> str:
    """The line printed for a finished trial (workers' lines are tagged with the worker)."""
    state = "rerun" if e.state == "complete" and e.rerun_of is not None else e.state
    head = f"trial {e.number:>4} {state:<9} {e.params:>8,} params ({100 * e.params / e.budget:5.1f}%)"
    if e.state == "complete":
        of = f"  (trial {e.rerun_of}, new seed)" if e.rerun_of is not None else ""
        return f"{head}  val {100 * e.val_acc:.2f}%  test {100 * e.test_acc:.2f}%  {e.seconds:.1f}s{of}"
    if e.state == "pruned":
        acc = f"  val {100 * e.val_acc:.2f}%" if e.val_acc is not None else ""
        return f"{head}  {e.reason}{acc}  {e.seconds:.1f}s"
    if e.reason and e.reason != "over budget":  # over the MAC or RAM budget: the reason says which
        return f"{head}  {e.reason}: never built"
    return f"{head}  over the {e.budget:,} budget: never built"


def say(line: str, bars: bool) -> None:
    """A line on stdout that does not tear the progress bars on stderr."""
    if bars:
        from tqdm import tqdm
        tqdm.write(line, file=sys.stdout)
    else:
        print(line, flush=True)


class Bars:
    """The search's bar (trained trials of the target) and one bar per worker (steps of
    the trial it trains), on stderr; all disabled without ``show``."""

    def __init__(self, show: bool, total: int, initial: int, names: list[str]):
        from tqdm import tqdm
        self.total = total
        self.search = tqdm(total=total or None, initial=min(total, initial), desc="search", unit="trial", position=0,
                           disable=not show, file=sys.stderr, dynamic_ncols=True)
        self.trials = [tqdm(total=0, desc=name, unit="step", position=1 + i, disable=not show, leave=False,
                            file=sys.stderr, dynamic_ncols=True) for i, name in enumerate(names)]

    def step(self, i: int, step: int, steps: int, acc: float | None) -> None:
        bar = self.trials[i]
        if bar.total != steps or step < bar.n:
            bar.reset(total=steps)
        bar.update(step - bar.n)
        if acc is not None:
            bar.set_postfix_str(f"val {100 * acc:.2f}%")

    def trial_ended(self, i: int) -> None:
        self.trials[i].reset(total=0)

    def trained(self, count: int | None) -> None:
        """``count`` trained trials in the study (None: one more)."""
        self.search.n = min(self.total, count) if self.total and count is not None else self.search.n + 1
        self.search.refresh()

    def close(self) -> None:
        for bar in (*self.trials, self.search):
            bar.close()


class TerminalView(engine.View):
    def __init__(self, cfg: SearchConfig, bars: bool = True, quiet: bool = False):
        self.cfg, self.show, self.quiet = cfg, bars, quiet
        self.bars: Bars | None = None
        self.study: Any = None
        self.progress = self._progress if bars else None

    def started(self, study, lines: list[str]) -> None:
        self.study = study
        for line in lines:
            self.line(line)
        self.bars = Bars(self.show, self.cfg.trials or 0, trained_count(study), ["trial"])

    def line(self, line: str) -> None:
        if not self.quiet:
            say(line, self.show and self.bars is not None)

    def note(self, line: str) -> None:
        self.line(line)

    def event(self, e: TrialEvent) -> None:
        self.line(event_line(e))
        self.bars.trial_ended(0)

    def _progress(self, step: int, steps: int, acc: float | None) -> None:
        self.bars.step(0, step, steps, acc)

    def trial_done(self) -> None:
        self.bars.trained(trained_count(self.study))

    def close(self) -> None:
        if self.bars is not None:
            self.bars.close()


def run_in_terminal(cfg: SearchConfig, url: str, progress: bool = True, worker: int = 0,
                    after_report: ReportHook | None = None) -> int:
    """``budgetnas search`` (one process) and ``budgetnas worker``: exit status 0, or 130
    when interrupted (the running trial is marked failed; the same command resumes)."""
    outcome = engine.run_search(cfg, url, TerminalView(cfg, progress), worker, after_report)
    for line in engine.end_lines(outcome.study, outcome.seconds, outcome.interrupted):
        print(line, flush=True)
    return 130 if outcome.interrupted else 0
