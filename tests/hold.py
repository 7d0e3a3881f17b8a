"""A trial held mid-training, for as long as a test needs: kill, Ctrl-C and timeout tests
use it instead of polling for a window of a second.

TrialHold is the ``after_report`` hook of budgetnas.cli.main (called after each
validation report the pruner let pass): every trained trial of the process stops right
after report ``at`` (a number, or None: its last report, however many it makes), writes
``FOLDER/held-<trial number>`` (holding the process's pid) and waits until
``FOLDER/release-<trial number>`` or ``FOLDER/release`` exists, or the process is killed
or interrupted (Ctrl-C ends the wait like any sleep).

    python tests/hold.py FOLDER AT budgetnas-arguments...   # the CLI with the hook wired
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


class TrialHold:
    def __init__(self, folder: str | Path, at: int | None = 1):
        self.folder, self.at = Path(folder), at

    def __call__(self, number: int, point: int, last: int) -> None:
        if point != (last if self.at is None else self.at):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".held-{number}.{os.getpid()}"
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, self.folder / f"held-{number}")  # a test never reads it half-written
        while not ((self.folder / f"release-{number}").exists() or (self.folder / "release").exists()):
            time.sleep(0.05)


def at_value(text: str) -> int | None:
    return None if text == "last" else int(text)


if __name__ == "__main__":
    from budgetnas.cli import main
    folder, at, *argv = sys.argv[1:]
    sys.exit(main(argv, after_report=TrialHold(folder, at_value(at))))
