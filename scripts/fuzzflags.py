"""The fuzzer's flags kind (scripts/fuzz.py): every option of every command, read from
the real argparse parser, given bad values (empty, zero, negative, NaN, inf, 1e999,
10**30, huge and odd strings, paths that are files, missing or unwritable) and sometimes
good ones, in command lines that are cheap to run (a search only creates its study,
train stops at '--out afile' once its data is checked); rarely a real one-trial search
or training with one flag changed. Flags whose big valid values buy real work (threads,
samples, worker trials and seconds, a dashboard's port) take bad or small values only."""
from __future__ import annotations

from dataclasses import dataclass

from fuzzargs import any_value, bad_number, path_value, storage_value
from fuzzcases import Case, Dirs, World
from fuzzdata import Rand


@dataclass(frozen=True)
class Opt:
    option: str  # '--budget', or the dest of a positional
    dest: str
    kind: str  # flag, int, float, choice, str, path, out, storage, positional
    choices: tuple = ()


OUTPUT_DESTS = ("out", "artifacts")
PATH_DESTS = ("dataset", "data_dir", "space", "spec", "name")
# flags whose big valid values buy real work (threads, samples, trials, seconds): big ones are refused or small
COSTLY = {"threads": ["0", "-1", "1", "2", "64", str(10 ** 30), "x", "1.5"], "workers": ["0", "-1", "1", "2", "x"],
          "samples": ["0", "-1", "1", "50", "3000", "x", "", str(10 ** 30)],
          "port": ["-1", "65536", "x", "", "99999999", "1e3"],  # a valid port would serve for good
          "trials": ["0", "-1", "1", "2", "3", "x", "", "1e3", str(10 ** 30)],  # worker: bounded by --timeout 5
          "timeout": ["0", "-1", "5", "0.5", "nan", "inf", "-inf", "1e999", "x", "", "1e-300"]}
VALID_TEXT = {"preset": ["A", "b", "E", "F", ""], "optimizer": ["adamw", "sgd", "adam", "ADAMW", "lbfgs"],
              "schedule": ["cosine", "onecycle", "constant", "step"], "study": ["s", "budgetnas", "nope"],
              "host": ["127.0.0.1", "::1", "999.0.0.1", "0.0.0.0"]}


def parser_options(parser) -> dict[str, list[Opt]]:
    """command -> its options, read from the real argparse parser."""
    import argparse
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        opts = []
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            option = max(a.option_strings, key=len) if a.option_strings else a.dest
            if a.nargs == 0:
                kind = "flag"
            elif not a.option_strings:
                kind = "positional"
            elif a.choices:
                kind = "choice"
            elif a.dest == "storage":
                kind = "storage"
            elif a.dest in OUTPUT_DESTS:
                kind = "out"
            elif a.dest in PATH_DESTS:
                kind = "path"
            else:  # by the parsing function's name (the parser wraps int, float and str in checks of its own)
                parse = getattr(a.type, "__qualname__", "") or ""
                kind = "float" if "float" in parse else "str" if a.type in (None, str) or "text" in parse else "int"
            opts.append(Opt(option, a.dest, kind, tuple(a.choices or ())))
        out[name] = opts
    return out


def option_value(r: Rand, o: Opt, d: Dirs, w: World) -> list[str]:
    """``o`` with a value: mostly a bad one, sometimes a good one."""
    if o.dest in COSTLY:
        return [o.option, r.choice(COSTLY[o.dest])]
    if o.kind == "flag":
        return [o.option] + ([any_value(r)] if r.chance(0.1) else [])
    if o.kind == "choice":
        return [o.option, r.choice(list(map(str, o.choices))) if r.chance(0.5) else any_value(r)]
    if o.kind == "storage":
        return [o.option, storage_value(r, d, w)]
    if o.kind in ("out", "path", "positional"):
        value = path_value(r, d, w, o.kind == "out")
        return [value] if o.kind == "positional" else [o.option, value]
    if o.kind in ("int", "float"):
        return [o.option, bad_number(r) if r.chance(0.8) else str(r.choice([1, 2, 10, 100, 1000, 25000]))]
    return [o.option, any_value(r) if r.chance(0.6) else r.choice(VALID_TEXT.get(o.dest, ["s", "x"]))]


def base_argv(r: Rand, command: str, d: Dirs, w: World) -> list[str]:
    """A cheap command line that would run: search only creates its study; train is
    stopped by --out afile after its data is checked; a worker's time is bounded."""
    npz = w.copy_npz(d)
    study = w.copy_study(d) if command in ("leaderboard", "report", "export", "worker", "dashboard") else ""
    return {"search": ["search", "--create-only", "--dataset", npz, "--storage", d.storage(), "--study", "s",
                       "--budget", "3000", "--no-progress"],
            "space": ["space", "--samples", "20", "--budget", "5k"],
            "train": ["train", str(w.spec), "--epochs", "1", "--dataset", npz, "--out", str(d.afile), "--no-progress"],
            "data": ["data", npz],
            "leaderboard": ["leaderboard", "--storage", study, "--study", "s"],
            "report": ["report", "--storage", study, "--study", "s", "--out", str(d.out / "r.html")],
            "export": ["export", "--storage", study, "--study", "s", "--out", str(d.afile)],
            "worker": ["worker", "--storage", study, "--study", "s", "--timeout", "5", "--trials", "2",
                       "--no-progress"],
            "dashboard": ["dashboard", "--storage", study, "--study", "s", "--port", r.choice(COSTLY["port"])],
            "presets": ["presets"]}[command]


def replace_option(argv: list[str], new: list[str]) -> list[str]:
    """argv with ``new``'s option (and its value) in place of the same option."""
    if new and new[0].startswith("--") and new[0] in argv:
        i = argv.index(new[0])
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        return argv[:i] + new + argv[i + 1 + has_value:]
    return argv + new


# a real run (rare): one search trial or one training, with one flag changed; never these
RUN_FIXED = ("trials", "timeout", "epochs", "workers", "threads", "reruns", "confirm_top", "out", "create_only",
             "storage", "study", "artifacts", "spec", "dataset", "data_dir", "eval_points")


def full_run(r: Rand, d: Dirs, w: World) -> tuple[list[str], list[Opt]]:
    npz = w.copy_npz(d)
    if r.chance(0.5):
        argv = ["search", "--dataset", npz, "--trials", "1", "--epochs", "1", "--timeout", "30", "--budget", "3000",
                "--storage", d.storage(), "--study", "s", "--confirm-top", "0", "--no-progress", "--space", "plain"]
    else:
        argv = ["train", str(w.spec), "--dataset", npz, "--epochs", "1", "--out", str(d.out / "exp"), "--no-progress",
                "--budget", "100000"]
    return argv, [o for o in w.options[argv[0]] if o.dest not in RUN_FIXED]


def gen_flags(r: Rand, d: Dirs, w: World, index: int) -> Case:
    command = r.weighted({"search": 7, "train": 4, "space": 2, "data": 2, "leaderboard": 2, "report": 1,
                          "export": 1, "worker": 1, "dashboard": 0.5, "presets": 0.5, "run": 0.6})
    if command == "run":
        argv, opts = full_run(r, d, w)
        o = r.choice(opts)
        new = option_value(r, o, d, w)
        argv = replace_option(argv, new)
        return Case("flags", index, argv, note=f"{argv[0]} (a real run); {' '.join(new)[:60]}")
    argv = base_argv(r, command, d, w)
    opts = [o for o in w.options[command] if o.dest not in ("create_only",)]
    words = [command]
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        o = r.choice(opts) if opts else None
        if o is None:
            break
        if command == "dashboard" and o.dest in ("storage", "study"):
            continue  # a valid storage and port would serve for good
        if command == "train" and o.dest == "out":
            continue  # a valid --out trains for real: the full runs are the other kinds' business
        new = option_value(r, o, d, w)
        if o.kind != "positional":
            argv = replace_option(argv, new)
        else:  # in place of the command's positional (train's spec, data's dataset), or before the flags
            has = len(argv) > 1 and not argv[1].startswith("--")
            argv = argv[:1] + new + argv[1 + has:]
        words.append(" ".join(new)[:60])
    shape = r.weighted({"as-is": 20, "equals": 2, "abbrev": 1, "extra-positional": 1, "dangling-flag": 1,
                        "unknown": 1, "no-command": 0.3, "help": 0.3, "dash-dash": 0.5})
    if shape == "equals" and len(argv) > 2 and argv[-2].startswith("--"):
        argv = argv[:-2] + [f"{argv[-2]}={argv[-1]}"]
    elif shape == "abbrev":
        argv = [a[:5] if a.startswith("--") and len(a) > 6 and r.chance(0.5) else a for a in argv]
    elif shape == "extra-positional":
        argv = argv + [any_value(r)]
    elif shape == "dangling-flag":
        argv = argv + [r.choice([o.option for o in opts if o.kind not in ("flag", "positional")] or ["--x"])]
    elif shape == "unknown":
        argv = argv + ["--no-such-flag", "1"]
    elif shape == "no-command":
        argv = argv[1:]
    elif shape == "help":
        argv = argv + ["--help"]
    elif shape == "dash-dash":
        argv = argv[:1] + ["--"] + argv[1:]
    if shape != "as-is":
        words.append(shape)
    return Case("flags", index, argv, note="; ".join(words))
