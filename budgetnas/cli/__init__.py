"""The command line: parse (parser.py: settings flags from the settings fields), call
the package, print one line per problem. Commands: search.py (search, worker, space),
results.py (leaderboard, report, dashboard), files.py (data, presets, export, train).
Imported by nothing but __main__.py. Exit codes: 0 ok, 1 a step after training failed
(one line saying what was kept and where), 2 bad input (one line on stderr, nothing
stored changed), 130 interrupted. Heavy imports happen inside commands: --help is instant.
"""
from __future__ import annotations

import errno
import os
import sys

from ..config import ConfigError, ExportIncomplete
from .files import cmd_data, cmd_export, cmd_presets, cmd_train
from .parser import build_parser
from .results import cmd_dashboard, cmd_leaderboard, cmd_report
from .search import cmd_search, cmd_space, cmd_worker

EXIT_FAILED = 1  # a step after training failed; what was kept is said in one line
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
COMMANDS = {"search": cmd_search, "space": cmd_space, "leaderboard": cmd_leaderboard, "report": cmd_report,
            "dashboard": cmd_dashboard, "data": cmd_data, "presets": cmd_presets, "export": cmd_export,
            "train": cmd_train, "worker": cmd_worker}


def main(argv: list[str] | None = None, after_report=None) -> int:
    """Run a command line. ``after_report`` (trial number, report, last report), wired
    by whoever starts the process, is called in searches after each validation report
    the pruner let pass (tests hold a trial there: tests/hold.py)."""
    parser = build_parser(COMMANDS)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            raise ConfigError(f"no command: give one of {', '.join(COMMANDS)} (see 'budgetnas --help')")
        args.after_report = after_report
        return args.func(args)
    except ExportIncomplete as e:
        print(f"budgetnas: error: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as e:
        print(f"budgetnas: error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("budgetnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head & co: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        print(f"budgetnas: error: {one_line(e.filename or '')}: a file name too long for this system "
              f"({e.strerror}): pass a shorter path", file=sys.stderr)
        return EXIT_BAD_INPUT


def one_line(message: object) -> str:
    """A message as one printable line (a value the user gave may hold line breaks)."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")
