"""The fuzzer's cases (scripts/fuzz.py): a case, its folders, the shared world (a tiny
valid dataset, spec, export, study and a copy of MNIST: scripts/fuzzworld.py makes it)
and the generators of the data kinds: npz, folder, idx. Each generator writes a case's
inputs under its own in/ folder and returns the command line to run (outputs go to out/
or the working folder). The argument kinds are in scripts/fuzzargs.py (spec, manifest,
space, env) and scripts/fuzzflags.py (flags)."""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fuzzdata import FORMATS, MODES, Rand, bomb_bytes, image_bytes, npz_arrays, odd_name, pattern_images, write_npz

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TINY = {"in_channels": 1, "image_size": 12, "num_classes": 3}  # the world's dataset: 60 gray 12x12 images, 3 classes


@dataclass
class Case:
    kind: str
    index: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the case's base environment
    note: str = ""  # what was made, in a few words


@dataclass
class Dirs:
    """A case's folders: in/ (its inputs: hashed before and after), out/ (where its
    outputs may go; holds 'afile', a plain file that stops 'train --out' before any
    training), cwd/ (the working folder), home/, cache/ and tmp/."""

    root: Path

    def __post_init__(self) -> None:
        for sub in ("in", "out", "cwd", "home", "cache", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.afile.write_text("a file, not a folder\n")

    inp = property(lambda self: self.root / "in")
    out = property(lambda self: self.root / "out")
    cwd = property(lambda self: self.root / "cwd")
    afile = property(lambda self: self.root / "out" / "afile")

    def storage(self, name: str = "s.db") -> str:
        return f"sqlite:///{self.out / name}"


@dataclass
class World:
    """What many cases start from, made once per run (fuzz.make_world)."""

    root: Path
    npz: Path  # 60 gray 12x12 images, 3 classes (TINY)
    folder: Path  # the same as class folders of PNG files
    spec: Path  # a spec.json for TINY
    export: Path  # that spec trained for 1 epoch on the npz: a real export folder
    study: Path  # s.db with study 's' (2 trained trials on the npz) and s-weights/
    mnist: Path | None  # the four MNIST .gz files (None: idx cases are skipped)
    mnist_raw: Path | None  # the three small ones decompressed
    options: dict = field(default_factory=dict)  # command -> [Opt], from the parser
    env_names: list = field(default_factory=list)  # every variable budgetnas/config/env.py reads
    specs: list = field(default_factory=list)  # valid spec dicts (presets, TINY, every layer kind)
    space_examples: dict = field(default_factory=dict)  # space-file key -> a valid value
    modules: list = field(default_factory=list)  # what the commands import: the fork servers import it first

    def copy_npz(self, d: Dirs) -> str:
        dest = d.inp / "tiny.npz"
        if not dest.exists():
            shutil.copyfile(self.npz, dest)
        return str(dest)

    def copy_study(self, d: Dirs) -> str:
        """A copy of the study folder in the case's inputs; returns its storage URL."""
        dest = d.inp / "study"
        if not dest.exists():
            shutil.copytree(self.study, dest, symlinks=True)
        return f"sqlite:///{dest / 's.db'}"


# --- commands that read a dataset --------------------------------------------------------
def data_command(r: Rand, d: Dirs, w: World, dataset: str) -> list[str]:
    """A command line that loads ``dataset``: mostly 'data' (decode and describe) or
    'search --create-only' (load, then pin it in a new study), sometimes 'train' (stopped
    by --out afile after the data is loaded and checked) or 'space'; rarely a real
    training of the tiny spec (export included) or a one-trial search."""
    which = r.weighted({"data": 10, "create": 5, "train": 3, "space": 2, "full-train": 0.15, "full-search": 0.1})
    argv = {"data": ["data", dataset],
            "create": ["search", "--create-only", "--dataset", dataset, "--storage", d.storage(), "--study", "s",
                       "--budget", "3000"],
            "train": ["train", str(w.spec), "--epochs", "1", "--dataset", dataset, "--out", str(d.afile),
                      "--no-progress"],
            "space": ["space", "--dataset", dataset, "--samples", "20", "--budget", "5k"],
            "full-train": ["train", str(w.spec), "--epochs", "1", "--dataset", dataset, "--out", str(d.out / "exp"),
                           "--budget", "100000", "--no-progress"],
            "full-search": ["search", "--dataset", dataset, "--trials", "1", "--epochs", "1", "--budget", "3000",
                            "--storage", d.storage(), "--study", "s", "--confirm-top", "0", "--no-progress",
                            "--space", "plain"]}[which]
    if r.chance(0.2):
        argv += r.choice([["--image-size", r.choice(["8", "12", "16", "32", "7", "1025"])],
                          ["--channels", r.choice(["1", "3"])], ["--image-size", "12", "--channels", "3"]]
                         + [["--hflip", "yes"]] * (argv[0] != "data"))
    if r.chance(0.1) and argv[0] in ("search", "train"):
        argv += r.choice([["--val-size", r.choice(["100", "5000"])], ["--split-seed", "3"],
                          ["--train-limit", "100"]])
    return argv


def relative_or_absolute(r: Rand, path: Path, cwd: Path) -> str:
    """The path as given on a command line: absolute, relative to the working folder, with
    './' and '..' in it, or (a folder) with a trailing slash."""
    how = r.weighted({"abs": 8, "rel": 1, "slash": 1 if os.path.isdir(path) else 0, "dots": 1})
    if how == "rel":
        return os.path.relpath(path, cwd)
    if how == "slash":
        return str(path) + "/"
    if how == "dots":
        return str(path.parent / "." / ".." / path.parent.name / path.name)
    return str(path)


# --- npz ----------------------------------------------------------------------------------------
def gen_npz(r: Rand, d: Dirs, w: World, index: int) -> Case:
    arrays, words, breaks = npz_arrays(r)
    name = r.weighted({"data.npz": 10, "DATA.NPZ": 1, "odd name.npz": 1, ".hidden.npz": 1, "x.tar.npz": 1})
    path = d.inp / name
    how = write_npz(r, path, arrays, "file" in breaks)
    words.append(f"file {how}")
    link = r.weighted({"none": 30, "symlink": 1, "dangling": 1, "loop": 1})
    if link != "none":
        target = {"symlink": name, "dangling": "no-such.npz", "loop": "loop.npz"}[link]
        path = d.inp / "link.npz" if link != "loop" else d.inp / "loop.npz"
        os.symlink(target, path)
        words.append(link)
    dataset = relative_or_absolute(r, path, d.cwd)
    return Case("npz", index, data_command(r, d, w, dataset), note="; ".join(words))


# --- folders --------------------------------------------------------------------------------------
FOLDER_BREAKS = ("files", "modes", "names", "class-names", "layout", "odd-entry", "sizes", "count", "target")
DAMAGES = ("corrupt", "truncated", "empty", "bomb", "png-as-other", "header-only")


def write_image(r: Rand, folder: Path, name: str, value: int, size: tuple[int, int], mode: str,
                damage: str | None, words: list[str]) -> Path:
    ext = os.path.splitext(name)[1] or ".png"
    path = folder / name
    if damage in (None, "truncated", "png-as-other"):
        data, got = image_bytes(r, ".png" if damage == "png-as-other" else ext, mode, size, value)
        if damage == "truncated":
            data = data[: r.randrange(1, max(2, len(data)))]
        if damage:
            words.append(f"{damage} {got}{ext}")
    elif damage == "bomb":
        data, what = bomb_bytes(r, ext)
        words.append(f"bomb {what}")
    elif damage == "empty":
        data = b""
        words.append("empty image")
    elif damage == "header-only":
        data = {".png": b"\x89PNG\r\n\x1a\n", ".gif": b"GIF89a", ".bmp": b"BM"}.get(ext, b"\xff\xd8\xff")
        words.append("header-only")
    else:
        data = bytes(r.np().integers(0, 256, r.choice([1, 100, 3000]), dtype="uint8"))
        words.append("corrupt")
    with open(os.fsencode(path), "wb") as f:
        f.write(data)
    return path


def write_classes(r: Rand, root: Path, classes: list[str], per_class: int, words: list[str],
                  breaks: set[str], damaged: list[int]) -> list[Path]:
    """Class folders of images: one format and gray or RGB unless 'modes' is broken (then
    every mode Pillow writes, formats mixed), one size unless 'sizes' is; the images
    numbered in ``damaged`` are broken files."""
    side = r.choice([1, 4, 7] if "sizes" in breaks and r.chance(0.4) else [8, 12, 16, 32])
    mixed = "sizes" in breaks and side >= 8
    ext = r.choice([".png", ".png", ".jpg", ".bmp", ".gif", ".webp", ".jpeg"])
    mode = r.choice(["L", "RGB"])
    words.append(f"{ext} {mode} {side}px" + (" mixed sizes" if mixed else ""))
    files, count = [], 0
    for c, name in enumerate(classes):
        folder = root / name
        os.makedirs(os.fsencode(folder), exist_ok=True)
        for i in range(per_class):
            size = (side, side) if not mixed else (r.choice([8, 12, 16, 32]), r.choice([8, 12, 31]))
            sub = folder / "nested" / "deeper" if "layout" in breaks and r.chance(0.1) else folder
            os.makedirs(os.fsencode(sub), exist_ok=True)
            e, m = (r.choice(list(FORMATS)), r.choice(MODES)) if "modes" in breaks else (ext, mode)
            fname = odd_name(r, i, e) if "names" in breaks and r.chance(0.5) else f"{i:03d}{e}"
            damage = r.choice(DAMAGES) if count in damaged else None
            files.append(write_image(r, sub, fname, c, size, m, damage, words))
            count += 1
    if "modes" in breaks:
        words.append("modes mixed")
    return files


def gen_folder(r: Rand, d: Dirs, w: World, index: int) -> Case:
    breaks = set(r.sample(FOLDER_BREAKS, r.weighted({0: 3, 1: 5, 2: 2, 3: 1})))
    root = d.inp / "images"
    root.mkdir()
    words: list[str] = []
    k = r.choice([1, 40]) if "count" in breaks else r.choice([2, 3])
    per = r.choice([1, 2]) if "count" in breaks or k > 10 else r.choice([4, 6, 10])
    names = [f"class{i}" for i in range(k)]
    if "class-names" in breaks:
        names = [odd_name(r, i, "") or f"c{i}" for i in range(k)]
        words.append("odd class names")
    layout = r.choice(["train-val-test", "mismatch", "test-only", "files-at-root", "empty-classes", "hidden-only",
                       "empty", "nested"]) if "layout" in breaks else r.choice(["flat", "flat", "train-test",
                                                                               "train-only"])
    total = k * per
    damaged = r.sample(range(total), min(total, r.choice([1, 1, 2]))) if "files" in breaks else []
    words.insert(0, f"{layout} k={k} per={per}")
    files: list[Path] = []
    if layout in ("flat", "files-at-root", "empty-classes", "nested"):
        files = write_classes(r, root, names, per, words, breaks, damaged)
        if layout == "files-at-root":
            write_image(r, root, "loose.png", 0, (12, 12), "L", None, words)
        if layout == "empty-classes":
            (root / "empty-class").mkdir()
    elif layout in ("train-test", "train-val-test", "mismatch", "test-only", "train-only"):
        splits = {"train-test": ("train", "test"), "train-val-test": ("train", "val", "test"),
                  "mismatch": ("train", "test"), "test-only": ("test",), "train-only": ("train",)}[layout]
        for s in splits:
            these = names + ["extra"] if layout == "mismatch" and s == "test" else names
            files += write_classes(r, root / s, these, max(1, per // (2 if s != "train" else 1)), words, breaks,
                                   damaged if s == "train" else [])
    elif layout == "hidden-only":
        files = write_classes(r, root, [f".{n}" for n in names], per, words, breaks, damaged)
    if "odd-entry" in breaks:
        for _ in range(r.choice([1, 1, 2])):
            files.append(odd_entry(r, root, files, words))
    target = root
    how = r.weighted({"symlink": 1, "file": 1, "missing": 1, "image-file": 1}) if "target" in breaks else "folder"
    if how == "symlink":
        target = d.inp / "link"
        os.symlink("images", target)
    elif how == "file":
        target = d.inp / "afile"
        target.write_text("not a folder\n")
    elif how == "missing":
        target = d.inp / "no-such-folder"
    elif how == "image-file" and files:
        target = files[0]
    if how != "folder":
        words.append(f"dataset {how}")
    return Case("folder", index, data_command(r, d, w, relative_or_absolute(r, target, d.cwd)), note="; ".join(words))


def odd_entry(r: Rand, root: Path, files: list[Path], words: list[str]) -> Path:
    """One odd thing in a class folder: links (to a file, dangling, looping, to a folder
    above), a folder or file nobody may read, a FIFO, a non-image file."""
    classes = [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()] or [root]
    folder = r.choice(classes)
    how = r.weighted({"link-file": 3, "dangling": 2, "loop": 2, "dir-loop": 2, "link-dir": 1, "unreadable-file": 1,
                      "unreadable-dir": 1, "fifo": 0.3, "text": 2, "link-dev": 1, "link-outside": 1})
    words.append(how)
    path = folder / f"zz{r.randrange(10 ** 6)}-{how}.png"
    files = [f for f in files if os.path.isfile(os.fsencode(f)) and not os.path.islink(os.fsencode(f))]
    if how == "link-file" and files:
        os.symlink(os.path.relpath(files[0], folder), path)
    elif how == "dangling":
        os.symlink("no-such-image.png", path)
    elif how == "loop":
        os.symlink(path.name, path)
    elif how == "dir-loop":
        path = folder / "loop"
        os.symlink("..", path)
    elif how == "link-dir":
        path = folder / "linked-class"
        os.symlink(os.path.relpath(r.choice(classes), folder), path)
    elif how == "unreadable-file" and files:
        path = r.choice(files)
        os.chmod(os.fsencode(path), 0)
    elif how == "unreadable-dir":
        path = folder
        os.chmod(os.fsencode(folder), 0)
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "link-dev":
        os.symlink(r.choice(["/dev/zero", "/dev/null", "/proc/self/mem"]), path)
    elif how == "link-outside":
        os.symlink("/etc/hostname", path)
    else:
        path.write_text("not an image\n")
    return path


# --- idx (the built-in MNIST files) ----------------------------------------------------------------
def gen_idx(r: Rand, d: Dirs, w: World, index: int) -> Case:
    assert w.mnist is not None
    data = d.inp / "mnist"
    data.mkdir()
    for stem in IDX_FILES:
        shutil.copyfile(w.mnist / f"{stem}.gz", data / f"{stem}.gz")
    words = []
    damaged: set[str] = set()
    for _ in range(r.choice([0, 1, 1, 1, 2])):
        stem = r.weighted({IDX_FILES[0]: 1, IDX_FILES[1]: 2, IDX_FILES[2]: 2, IDX_FILES[3]: 3})
        if stem not in damaged:  # one damage per file
            damaged.add(stem)
            words.append(f"{stem[:-10]} {damage_idx(r, w, data, stem)}")
    where = r.weighted({"data-dir": 10, "missing-dir": 1, "nested-missing": 1, "a-file": 1, "under-a-file": 1,
                        "env": 2})
    data_dir, env = str(data), {}
    if where == "missing-dir":
        data_dir = str(d.inp / "no-such-dir")
    elif where == "nested-missing":
        data_dir = str(d.inp / "no" / "such" / "dir")
    elif where in ("a-file", "under-a-file"):
        (d.inp / "afile").write_text("a file\n")
        data_dir = str(d.inp / "afile") + ("/mnist" if where == "under-a-file" else "")
    words.append(where)
    dataset = r.weighted({"mnist": 10, "fashion-mnist": 1})
    flag = [] if where == "env" else ["--data-dir", data_dir]
    if where == "env":
        env["BUDGETNAS_DATA"] = str(d.inp)
    which = r.weighted({"data": 10, "create": 2, "train": 2})
    argv = {"data": ["data", dataset, *flag],
            "create": ["search", "--create-only", "--dataset", dataset, *flag, "--train-limit", "1000",
                       "--val-size", "500", "--storage", d.storage(), "--study", "s", "--budget", "3000"],
            "train": ["train", "--preset", "A", "--epochs", "1", "--dataset", dataset, *flag, "--train-limit", "100",
                      "--val-size", "100", "--out", str(d.afile), "--no-progress"]}[which]
    return Case("idx", index, argv, env=env, note="; ".join(words) or "intact")


def damage_idx(r: Rand, w: World, data: Path, stem: str) -> str:
    """Break one of the copied files in one way; returns how."""
    gz = data / f"{stem}.gz"
    raw_path = data / stem
    how = r.weighted({"flip-gz": 2, "truncate-gz": 2, "extend-gz": 1, "raw": 1, "raw-flip": 2, "raw-header": 2,
                      "raw-truncate": 1, "raw-extend": 1, "empty": 1, "missing": 1, "dir": 1, "dir-gz": 1,
                      "both": 1, "double-gz": 1, "raw-as-gz": 1, "link": 1, "dangling": 1, "loop": 1,
                      "unreadable": 1, "multi-member": 1, "swapped": 1})
    small = stem != IDX_FILES[0] and w.mnist_raw is not None

    def raw() -> bytes:
        return (w.mnist_raw / stem).read_bytes() if small else gzip.decompress(gz.read_bytes())

    def flipped(b: bytes, where: int | None = None) -> bytes:
        b = bytearray(b)
        for _ in range(r.choice([1, 1, 3])):
            i = where if where is not None else r.randrange(len(b))
            b[i] ^= 1 << r.randrange(8)
        return bytes(b)

    if how == "flip-gz":
        gz.write_bytes(flipped(gz.read_bytes()))
    elif how == "truncate-gz":
        b = gz.read_bytes()
        gz.write_bytes(b[: r.randrange(len(b))])
    elif how == "extend-gz":
        gz.write_bytes(gz.read_bytes() + r.choice([b"\x00" * 8, b"junk", b"\x1f\x8b\x08\x00garbage"]))
    elif how in ("raw", "raw-flip", "raw-header", "raw-truncate", "raw-extend", "both"):
        b = raw()
        if how in ("raw-flip", "both"):
            b = flipped(b)
        elif how == "raw-header":
            b = flipped(b, r.randrange(12)) if r.chance(0.7) else b"\x00\x00\x09\x03" + b[4:]
        elif how == "raw-truncate":
            b = b[: r.randrange(len(b))]
        elif how == "raw-extend":
            b += b"\x00" * r.choice([1, 784])
        raw_path.write_bytes(b)
        if how != "both":
            gz.unlink()
    elif how == "empty":
        (raw_path if r.chance(0.5) else gz).write_bytes(b"")
    elif how == "missing":
        gz.unlink()
    elif how in ("dir", "dir-gz"):
        if how == "dir-gz":
            gz.unlink()
            gz.mkdir()
        else:
            raw_path.mkdir()
    elif how == "double-gz":
        gz.write_bytes(gzip.compress(gz.read_bytes(), compresslevel=1))
    elif how == "raw-as-gz":
        gz.write_bytes(raw())
    elif how == "link":
        gz.unlink()
        os.symlink(w.mnist / f"{stem}.gz", gz)
    elif how == "dangling":
        gz.unlink()
        os.symlink("no-such-file.gz", gz)
    elif how == "loop":
        gz.unlink()
        os.symlink(gz.name, gz)
    elif how == "unreadable":
        os.chmod(gz, 0)
    elif how == "multi-member":
        gz.write_bytes(gz.read_bytes() * 2)
    elif how == "swapped":
        other = r.choice([s for s in IDX_FILES if s != stem and s != IDX_FILES[0]])
        gz.write_bytes((w.mnist / f"{other}.gz").read_bytes())
    return how


__all__ = ["Case", "Dirs", "World", "Rand", "data_command", "gen_npz", "gen_folder", "gen_idx", "pattern_images",
           "FORMATS", "TINY", "IDX_FILES"]
