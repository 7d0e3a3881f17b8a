"""The fuzzer's argument kinds (scripts/fuzz.py): spec JSON, an export's manifest, space
TOML files and the environment variables budgetnas reads, each made valid and then
mutated; and the bad values and paths every kind draws from. The data kinds are in
scripts/fuzzcases.py, the flags kind in scripts/fuzzflags.py."""
from __future__ import annotations

import copy
import json
import math
import os
import shutil

from fuzzcases import TINY, Case, Dirs, World
from fuzzdata import Rand

# --- values -------------------------------------------------------------------------------
JUNK = [None, True, False, 0, -1, 1, 2, 3, 2 ** 31, 2 ** 63, 10 ** 30, -10 ** 30, 1e308, -1e308, 5e-324, math.nan,
        math.inf, -math.inf, 0.5, -0.0, 1.0000001, "", "x", "3", "1e3", "conv", "pool", "\u00e9\u202e", "x" * 5000,
        [], [1], [None], [[1, 2]], {}, {"kind": "conv"}, {"kind": "pool", "kind2": 1}, "NaN", 65537, 4097, 31, 32]
NUMBERS = ["", " ", "0", "-1", "-0", "1", "2", "nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1e-999", str(10 ** 30),
           "9" * 400, "0x10", "1_000", "1,000", "25k", "2.5k", "k", "K", "1m", "1M", "+5", "\u0663", "\uff11\uff12",
           "\u00bd", "1.5", "1e3", " 3", "3\n", "-", "1/2", "True", "None", "-5k", "4294967296",
           "9223372036854775808", "-9223372036854775809", "0.0", "1e-3", "100", "5000"]
STRINGS = ["", " ", "x", "\u00e9", "\u202e", "a\nb", "x" * 5000, "../..", "/", ".", "..", "~", "$HOME", "%s%n", "{}",
           "'", '"', "-", "--", "--x", os.fsdecode(b"\xff\xfe"), "s", "nope", "a/b", "CON", "*"]


def bad_number(r: Rand) -> str:
    return r.choice(NUMBERS)


def any_value(r: Rand) -> str:
    return r.choice(NUMBERS) if r.chance(0.5) else r.choice(STRINGS)


def storage_value(r: Rand, d: Dirs, w: World) -> str:
    afile = d.inp / "afile"
    if not afile.exists():
        afile.write_text("a file\n")
    return r.choice([d.storage("new.db"), f"sqlite:///{afile}", f"sqlite:///{d.inp}", "sqlite://", "sqlite:///",
                     "sqlite:////", "nonsense", "postgresql://u:pw@127.0.0.1:1/x", "postgresql://u@[::1:1/x",
                     "mysql://u@127.0.0.1:1/x", f"journal:{d.out / 'j.journal'}", f"journal:{afile}", "journal:",
                     "redis://127.0.0.1:1", "sqlite:///:memory:", "file:///x", "sqlite:///" + "x" * 300,
                     "postgresql://u:pw@db:port/x", f"sqlite:///{d.afile}/s.db", "sqlite:///relative.db",
                     "sqlite:///" + str(d.out / "\u00e9.db"), w.copy_study(d), "", "://", "sqlite:///%zz"])


def path_value(r: Rand, d: Dirs, w: World, output: bool) -> str:
    """A path for a flag: existing files and folders, missing ones, a file used as a
    folder, unwritable places. Never '/' (a folder source would read the whole disk, an
    export would write there) nor an endless file like /dev/zero (read to the end)."""
    afile = d.inp / "afile"
    if not afile.exists():
        afile.write_text("a file\n")
    common = [str(afile / "x"), "/proc/budgetnas-fuzz", "", "x" * 300, "rel/x", str(d.afile), "/dev/null", ".",
              os.fsdecode(b"\xff\xfe"), "-"]
    if output:  # where writing is right (a report may overwrite a file): the case's out/ and working folder
        return r.choice(common + [str(d.out / "new"), str(d.out / "new" / "deeper")])
    return r.choice(common + [str(afile), str(d.inp), str(d.inp / "missing"), w.copy_npz(d), str(w.spec),
                              str(w.export), str(w.folder),
                              "mnist", "fashion-mnist", "torchvision:CIFAR10", "torchvision:", "torchvision:nope",
                              "x.npz", "default", "plain", "mobile", "x.toml"])


# --- JSON ------------------------------------------------------------------------------------
def _places(obj, path=()):
    """(container, key) of every value in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield obj, k, path + (k,)
            yield from _places(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield obj, i, path + (i,)
            yield from _places(v, path + (i,))


def mutate_json(r: Rand, obj, times: int, prefer: tuple[str, ...] = ()):
    """``obj`` changed ``times`` times: a value replaced by junk, a key removed or added,
    a list element repeated, a value wrapped; ``prefer`` weights places under those keys."""
    words = []
    for _ in range(times):
        places = list(_places(obj))
        if not places or r.chance(0.04):
            obj = copy.deepcopy(r.choice(JUNK))
            words.append(f"top={json_short(obj)}")
            continue
        liked = [p for p in places if p[2] and p[2][0] in prefer]
        box, key, path = r.choice(liked if liked and r.chance(0.7) else places)
        op = r.weighted({"junk": 8, "delete": 2, "add": 1, "repeat": 1, "wrap": 1, "nest": 0.3})
        where = ".".join(map(str, path))
        if op == "junk":
            box[key] = copy.deepcopy(r.choice(JUNK))
            words.append(f"{where}={json_short(box[key])}")
        elif op == "delete":
            del box[key]
            words.append(f"-{where}")
        elif op == "add":
            target = box if isinstance(box, dict) else None
            if target is None:
                box.insert(key, copy.deepcopy(r.choice(JUNK)))
            else:
                target[r.choice(["extra", "kind", "layers", "__proto__", "\u00e9", ""])] = copy.deepcopy(r.choice(JUNK))
            words.append(f"+{where}")
        elif op == "repeat" and isinstance(box, list):
            box.extend([copy.deepcopy(box[key])] * r.choice([1, 10, 1000, 20000]))
            words.append(f"repeat {where}")
        elif op == "nest":
            depth = r.choice([50, 1000, 100_000])
            box[key] = "NEST:%d" % depth
            words.append(f"{where} nested {depth}")
        else:
            box[key] = [box[key]] if r.chance(0.5) else {"value": box[key]}
            words.append(f"wrap {where}")
    return obj, words


def json_short(v) -> str:
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else str(v)
    return text if len(text) <= 20 else text[:17] + "..."


def json_text(r: Rand, obj) -> tuple[bytes, str]:
    """The JSON text of ``obj`` (deep nesting markers expanded), sometimes broken as text."""
    text = json.dumps(obj, indent=r.choice([None, 2]))
    while '"NEST:' in text:
        at = text.index('"NEST:')
        end = text.index('"', at + 1)
        depth = int(text[at + 6:end])
        text = text[:at] + "[" * depth + "]" * depth + text[end + 1:]
    how = r.weighted({"as-is": 40, "truncate": 1, "garbage": 1, "bom": 1, "utf16": 1, "trailing": 1, "dup-key": 1,
                      "big-int": 1, "not-utf8": 1, "empty": 1, "null": 1, "comment": 1, "single-quotes": 1,
                      "deep-top": 1})
    data = text.encode()
    if how == "truncate":
        data = data[: r.randrange(max(1, len(data)))]
    elif how == "garbage" and data:
        i = r.randrange(len(data))
        data = data[:i] + r.choice([b"}", b"{", b",", b"\x00", b"'"]) + data[i:]
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "utf16":
        data = text.encode("utf-16")
    elif how == "trailing":
        data += b"\n}}garbage"
    elif how == "dup-key" and text.rstrip().endswith("}"):
        data = (text.rstrip()[:-1] + ', "layers": 5}').encode()
    elif how == "big-int":
        data = (text.rstrip()[:-1] + ', "head_dropout": 1' + "0" * 5000 + "}").encode() if text.rstrip().endswith(
            "}") else b"1" + b"0" * 5000
    elif how == "not-utf8":
        data = data.replace(b'"', b'"\xff', 1)
    elif how == "empty":
        data = r.choice([b"", b"   \n"])
    elif how == "null":
        data = r.choice([b"null", b"[]", b"3", b'"spec"', b"NaN", b"Infinity"])
    elif how == "comment":
        data = b"// a spec\n" + data
    elif how == "single-quotes":
        data = data.replace(b'"', b"'")
    elif how == "deep-top":
        depth = r.choice([1000, 100_000])
        data = b'{"layers": ' + b"[" * depth + b"]" * depth + b"}"
    return data, how


# --- spec ------------------------------------------------------------------------------------
def gen_spec(r: Rand, d: Dirs, w: World, index: int) -> Case:
    which = r.weighted({"budget": 6, "macs": 1, "ram": 1, "data": 4, "full": 0.3})
    spec = copy.deepcopy(r.choice(w.specs))
    if which in ("data", "full"):  # the input of the world's data: the spec gets as far as training
        spec.update(TINY)
    obj, words = mutate_json(r, spec, r.weighted({0: 3, 1: 4, 2: 2, 3: 1, 5: 0.5}))
    data, how = json_text(r, obj)
    if how != "as-is":
        words.append(how)
    path = d.inp / "spec.json"
    path.write_bytes(data)
    given = str(path)
    form = r.weighted({"file": 40, "folder-without-manifest": 1, "missing": 1, "directory-named-json": 1,
                       "symlink": 1, "other-suffix": 1})
    if form == "folder-without-manifest":
        given = str(d.inp)
    elif form == "missing":
        given = str(d.inp / "no-such-spec.json")
    elif form == "directory-named-json":
        (d.inp / "dir.json").mkdir()
        given = str(d.inp / "dir.json")
    elif form == "symlink":
        os.symlink("spec.json", d.inp / "link.json")
        given = str(d.inp / "link.json")
    elif form == "other-suffix":
        path.rename(d.inp / "spec.txt")
        given = str(d.inp / "spec.txt")
    if form != "file":
        words.append(form)
    argv = ["train", given, "--epochs", "1", "--no-progress"]
    argv += {"budget": ["--budget", "1"], "macs": ["--max-macs", "1"], "ram": ["--max-ram", "1"],
             "data": ["--dataset", w.copy_npz(d), "--out", str(d.afile)],
             "full": ["--dataset", w.copy_npz(d), "--out", str(d.out / "exp"), "--budget", "100000"]}[which]
    return Case("spec", index, argv, note="; ".join(words) or "valid")


# --- manifest ------------------------------------------------------------------------------
def gen_manifest(r: Rand, d: Dirs, w: World, index: int) -> Case:
    exp = d.inp / "export"
    shutil.copytree(w.export, exp)
    mf = exp / "manifest.json"
    manifest = json.loads(mf.read_text())
    obj, words = mutate_json(r, manifest, r.choice([0, 1, 1, 2, 3]), prefer=("recipe", "data", "budget", "format",
                                                                             "spec"))
    data, how = json_text(r, obj) if words or r.chance(0.3) else (mf.read_bytes(), "as-is")
    if how != "as-is":
        words.append(how)
    mf.write_bytes(data)
    extra = r.weighted({"none": 20, "no-spec": 1, "spec-junk": 1, "no-manifest": 1, "manifest-dir": 1,
                        "weights-junk": 1})
    if extra == "no-spec":
        (exp / "spec.json").unlink()
    elif extra == "spec-junk":
        (exp / "spec.json").write_text(r.choice(["{}", "[]", "{not json", '{"layers": 5}']))
    elif extra == "no-manifest":
        mf.unlink()
    elif extra == "manifest-dir":
        mf.unlink()
        mf.mkdir()
    elif extra == "weights-junk":
        (exp / "weights.pt").write_bytes(b"not a torch file")
    if extra != "none":
        words.append(extra)
    which = r.weighted({"data": 6, "budget": 3, "recipe-flags": 2, "full": 0.3})
    argv = ["train", str(exp), "--epochs", "1", "--no-progress"]
    argv += {"data": ["--out", str(d.afile)], "budget": ["--budget", "1"],
             "recipe-flags": ["--out", str(d.afile), r.choice(["--lr", "--batch-size", "--weight-decay"]),
                              bad_number(r)],
             "full": ["--out", str(d.out / "exp"), "--budget", "100000"]}[which]
    return Case("manifest", index, argv, note="; ".join(words) or "valid")


# --- space files --------------------------------------------------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '"null"'  # TOML has no null


def gen_space(r: Rand, d: Dirs, w: World, index: int) -> Case:
    keys = list(w.space_examples)
    space = {k: copy.deepcopy(w.space_examples[k]) for k in r.sample(keys, r.randint(0, min(6, len(keys))))}
    if r.chance(0.7):
        space["base"] = r.choice(["plain", "resnet", "mobile", "default"] * 3 + ["nope", "", 3])
    obj, words = mutate_json(r, space, r.choice([0, 1, 1, 2, 3]))
    if isinstance(obj, dict):
        text = "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in obj.items()) + "\n"
    else:
        text = f"value = {toml_value(obj)}\n"
    how = r.weighted({"as-is": 12, "broken": 1, "dup-key": 1, "not-utf8": 1, "empty": 1, "bom": 1, "deep": 1,
                      "huge-array": 1, "table": 1, "data-key": 1})
    data = text.encode()
    if how == "broken":
        data = data[: r.randrange(max(1, len(data)))] + b"[["
    elif how == "dup-key":
        data += b'stages = [1, 2]\nstages = [2, 3]\n'
    elif how == "not-utf8":
        data += b'base = "\xff"\n'
    elif how == "empty":
        data = b""
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "deep":
        depth = r.choice([100, 1000, 100_000])
        data += b"stages = " + b"[" * depth + b"]" * depth + b"\n"
    elif how == "huge-array":
        data += b"batch_sizes = [" + b", ".join(str(i).encode() for i in range(1, 20001)) + b"]\n"
    elif how == "table":
        data += b"[lr]\nadamw = [1e-3, 1e-2]\nnope = [1, 2]\n[lr.inner]\nx = 1\n"
    elif how == "data-key":
        data += r.choice([b"image_size = 32\n", b"in_channels = 3\n", b"num_classes = 5\n"])
    if how != "as-is":
        words.append(how)
    path = d.inp / r.choice(["s.toml", "s.TOML", "space file.toml", "s.txt"])
    path.write_bytes(data)
    value = str(path) if r.chance(0.9) else r.choice([str(d.inp), str(d.inp / "no.toml"), "nope", "mobile",
                                                      w.copy_npz(d), "/dev/null", "", str(w.spec)])
    budget = r.choice(["5k", "5k", "25000", "100", "1", bad_number(r)])
    which = r.weighted({"space": 6, "create": 3, "space-data": 1})
    argv = {"space": ["space", "--space", value, "--samples", r.choice(["20", "50"]), "--budget", budget],
            "create": ["search", "--create-only", "--space", value, "--dataset", w.copy_npz(d), "--storage",
                       d.storage(), "--study", "s", "--budget", budget, "--no-progress"],
            "space-data": ["space", "--space", value, "--dataset", w.copy_npz(d), "--samples", "20", "--budget",
                           budget]}[which]
    return Case("space", index, argv, note="; ".join(words) or "valid")


# --- environment variables ---------------------------------------------------------------------
ENV_VALUES = {
    "BUDGETNAS_MAX_MEMORY": ["1", "0", "-5", "1e999", "nanK", "infG", str(10 ** 30), "K", "", " 8G ", "8GiB",
                             "\u0663", "1.5M", "10K", "abc", "1e3M", "-1G", "9" * 400],
    "BUDGETNAS_HEARTBEAT": ["", "0", "-1", "1", "soon", "1e3", str(10 ** 30), "\u0663", " 5 ", "2.5"],
    "BUDGETNAS_HEARTBEAT_GRACE": ["", "0", "1", "2", "x", str(10 ** 30), "\u0663"],
    "BUDGETNAS_WORKER_START": ["", "spawn", "fork", "thread", "SPAWN", " spawn", "x" * 1000],
    "BUDGETNAS_OFFLINE": ["1", "0", "no", "false", " ", "yes"],  # never empty: nothing may download
}


def env_value(r: Rand, name: str, d: Dirs, w: World) -> str:
    if name in ENV_VALUES:
        return r.choice(ENV_VALUES[name])
    if name == "BUDGETNAS_STORAGE":
        return storage_value(r, d, w)
    afile = d.inp / "afile"
    if not afile.exists():
        afile.write_text("a file\n")
    # folders budgetnas writes (caches, data): never this machine's own, never the case's inputs
    # (writing where it was told is no fault); HOME stays a folder of the case
    paths = [str(d.out / "new"), str(afile), str(afile / "x"), "/proc/budgetnas-fuzz", "rel", str(d.out)]
    if name == "HOME":
        return r.choice([str(d.out / "home"), str(afile), str(d.out / "no" / "home")])
    if name == "BUDGETNAS_OFFLINE_DIRS":
        return r.choice(["", str(d.inp), str(afile), os.pathsep.join([str(afile), "", "/proc/x"]), str(w.export)])
    return r.choice(paths + ([""] if name != "BUDGETNAS_DATA" or r.chance(0.5) else []))


def gen_env(r: Rand, d: Dirs, w: World, index: int) -> Case:
    names = [n for n in w.env_names] + ["HOME"]
    env = {}
    for name in r.sample(names, r.choice([1, 1, 2, 3])):
        env[name] = env_value(r, name, d, w)
    which = r.weighted({"data-npz": 3, "create": 4, "leaderboard": 2, "data-mnist": 1, "worker": 1, "space": 1})
    npz = w.copy_npz(d)
    argv = {"data-npz": ["data", npz],
            "create": ["search", "--create-only", "--dataset", npz, "--study", "s", "--budget", "3000"]
            + (["--storage", d.storage()] if "BUDGETNAS_STORAGE" not in env else []),
            "leaderboard": ["leaderboard", "--study", "s"],
            "data-mnist": ["data", "mnist"],
            "worker": ["worker", "--study", "s", "--timeout", "5", "--no-progress"]
            + (["--storage", w.copy_study(d)] if "BUDGETNAS_STORAGE" not in env else []),
            "space": ["space", "--samples", "20", "--budget", "5k"]}[which]
    words = [f"{k}={v[:40]!r}" for k, v in env.items()]
    return Case("env", index, argv, env=env, note="; ".join(words))
