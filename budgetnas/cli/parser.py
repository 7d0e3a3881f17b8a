"""The command line's parser. Settings flags come from the fields of the settings
dataclasses (config/settings.py, train/recipe.py): each field's Flag says which
commands have it, its help and its parser; a command's own flags are written here.
Every value is checked here or by the settings it builds, and every environment
variable once the line is parsed: before any command's work."""
from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from ..config import (MAX_COUNT, MAX_EPOCHS, MAX_THREADS, ConfigError, DataConfig, SearchConfig, bytes_int, env, flags,
                      macs_int, positive_int, seed_int, text_flag, tier_list, whole_in)
from ..train.recipe import Recipe


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, exit status 2. A flag parser's range error
    ('must be ...', config/settings.py) reads like the settings' checks: '--top must be
    at least 1 (got 0)'."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = re.sub(r"^argument ([\w-]+): must ", r"\1 must ", message)
        raise ConfigError(f"{message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        env.check()  # a malformed variable fails every command before it starts
        return parsed


def add_flags(p: argparse.ArgumentParser, cls: type, command: str, with_defaults: bool = False) -> None:
    """The flags of ``cls``'s fields that ``command`` has. Each defaults to None (not
    given: the dataclass's own default applies, config_kwargs), or with ``with_defaults``
    (commands that build no settings from them) to the field's default."""
    from ..data.sources import dataset_help
    for f, fl in flags(cls):
        if command not in fl.commands:
            continue
        text = dict(fl.helps).get(command, fl.help).replace("{datasets}", dataset_help())
        if fl.show_default and f.default is not None and f.default is not False \
                and f.default is not dataclasses.MISSING and command not in fl.required:
            text += f" (default {f.default})"
        kw: dict[str, Any] = {"dest": f.name, "default": f.default if with_defaults else None,
                              "help": argparse.SUPPRESS if command in fl.hidden else text}
        if command in fl.required:
            kw["required"] = True
        if fl.action:
            kw["action"] = fl.action
        else:  # text without choices: an empty value is refused, not taken as the default
            kw.update(type=fl.type or (None if fl.choices else text_flag), choices=fl.choices)
        p.add_argument(fl.option or "--" + f.name.replace("_", "-"), **kw)


def config_kwargs(cls: type, args: argparse.Namespace, command: str) -> dict[str, Any]:
    """{field: value} of the flags of ``cls`` that were given on ``command``'s line."""
    return {f.name: getattr(args, f.name) for f, fl in flags(cls)
            if command in fl.commands and getattr(args, f.name, None) is not None}


def build_parser(commands: dict[str, Any] | None = None) -> Parser:
    """The parser; ``commands`` maps each command to its function (cli/__init__.py; none:
    parse only)."""
    parser = Parser(prog="budgetnas", description="Find small image classifiers under a hard parameter budget.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=(commands or {}).get(name))
        return p

    s = command("search", "search architectures and training recipes under a budget")
    add_flags(s, SearchConfig, "search")
    add_flags(s, DataConfig, "search")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (one line per trial only)")
    s.add_argument("--create-only", action="store_true",
                   help="only create the study with its settings and --trials target, then exit: "
                        "'budgetnas worker' processes on any host do the training")

    sp = command("space", "how the search space uses a budget (2,000 sampled candidates)")
    add_flags(sp, SearchConfig, "space")
    sp.add_argument("--samples", type=whole_in(1, 1_000_000), default=2000, help="candidates to sample (default 2000)")
    add_flags(sp, DataConfig, "space")

    lb = command("leaderboard", "the study's best models, recomputed from the storage")
    add_flags(lb, SearchConfig, "study", with_defaults=True)
    lb.add_argument("--top", type=whole_in(1, MAX_COUNT), default=10,
                    help="show the K best completed trials (default 10)")
    lb.add_argument("--sort", default="accuracy", choices=["accuracy", "efficiency", "params"],
                    help="rank by val accuracy, by the efficiency score (README) or by size (default accuracy)")
    lb.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"],
                    help="output format (default table)")
    lb.add_argument("--tiers", type=tier_list,
                    help="budget tiers for 'best per tier', e.g. 2k,5k,10k,25k (default: from the study's budget)")
    lb.add_argument("--all", action="store_true", help="also list pruned, rejected and failed trials")

    rp = command("report", "one self-contained HTML report of a study (works offline)")
    add_flags(rp, SearchConfig, "study", with_defaults=True)
    rp.add_argument("--out", type=text_flag, default="report.html", help="HTML file to write (default report.html)")
    rp.add_argument("--cost", default="params", choices=["params", "macs", "ram"],
                    help="the cost on the Pareto plot's x axis: params, MACs or peak int8 RAM (default params)")

    db = command("dashboard", "serve optuna-dashboard on a study's storage (live while a search runs)")
    add_flags(db, SearchConfig, "study", with_defaults=True)
    db.add_argument("--port", type=whole_in(1, 65535), default=8080, help="port (default 8080)")
    db.add_argument("--host", type=text_flag, default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")

    da = command("data", "fetch and verify a dataset; print where it is and each file's md5 status")
    da.add_argument("name", nargs="?", default="mnist", metavar="DATASET", help="the dataset (default mnist)")
    add_flags(da, DataConfig, "data")

    command("presets", "the seed architectures A-E with parameters and MACs")

    ex = command("export", "write a trained trial as spec, standalone model.py, weights, TorchScript, ONNX and "
                           "manifest (never retrains)")
    add_flags(ex, SearchConfig, "study", with_defaults=True)
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--trial", type=whole_in(0, MAX_COUNT), help="trial number to export")
    which.add_argument("--rank", type=whole_in(1, MAX_COUNT), help="leaderboard rank to export (default 1: the best)")
    ex.add_argument("--sort", default="accuracy", choices=["accuracy", "efficiency", "params"],
                    help="the ranking --rank refers to (default accuracy)")
    ex.add_argument("--out", type=text_flag, help="output folder (default exports/STUDY-trialN)")
    ex.add_argument("--artifacts", type=text_flag, help="folder holding the study's trial_N.pt weights, if they moved")
    ex.add_argument("--data-dir", type=text_flag,
                    help="folder with the study's data: training images calibrate model.int8.onnx, "
                         "the test set measures it (default: $BUDGETNAS_DATA or the user cache dir)")

    tr = command("train", "train an exported spec or a preset on the full training set; save an export bundle")
    tr.add_argument("spec", nargs="?", type=text_flag, help="a spec.json, or an export folder (its spec and recipe)")
    tr.add_argument("--preset", type=text_flag,
                    help="a seed architecture A-E instead of a spec (see 'budgetnas presets')")
    tr.add_argument("--epochs", type=whole_in(1, MAX_EPOCHS), required=True, help="training epochs")
    tr.add_argument("--seed", type=seed_int, default=0, help="init, batch-order and augmentation seed (default 0)")
    tr.add_argument("--out", type=text_flag, help="output folder of the bundle (default exports/NAME-Eep)")
    tr.add_argument("--budget", type=positive_int, help="refuse a spec with more trainable parameters than this")
    tr.add_argument("--max-macs", type=macs_int, help="refuse a spec with more multiply-accumulates per image, "
                                                     "e.g. 300k")
    tr.add_argument("--max-ram", type=bytes_int, help="refuse a spec whose int8 inference needs more peak "
                                                    "activation memory (bytes), e.g. 20k")
    add_flags(tr, Recipe, "train")
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")
    tr.add_argument("--threads", type=whole_in(1, MAX_THREADS), help="torch threads (default: all cores)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_flags(tr, DataConfig, "train")

    w = command("worker", "join an existing study from any machine (every setting comes from the study)")
    add_flags(w, SearchConfig, "worker")
    add_flags(w, DataConfig, "worker")
    w.add_argument("--no-progress", action="store_true", help="no progress bars (default when stderr is no terminal)")
    return parser
