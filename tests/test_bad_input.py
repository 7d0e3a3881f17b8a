"""Bad input, one table: each case runs the real CLI in a process (forked from a server
that has imported it, procs.ForkedCLI; two cases also as `python -m budgetnas`) and must end with exit
status 2, exactly one line on stderr that says what to do, no traceback, no password,
and nothing stored changed (every file of the study folder, the data folders and the
working folder hashed before and after)."""
from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import bad_arrays
import bad_flags
import bad_folders
import bad_specs
from owndata import write_bad_data
from procs import ForkedCLI, budgetnas, cli_env, fingerprint, run

from budgetnas.space import Space, smallest_macs, smallest_params, smallest_ram

SECRET = "s3cr3t-pw"
FLOOR = smallest_params(Space())
# the settings the study 'b' in {S}/s.db was made with: a search that matches them gets
# as far as the storage, so the case under test is what fails
STUDY = ("--storage", "sqlite:///{S}/s.db", "--study", "b", "--budget", "3000", "--trials", "4",
         "--train-limit", "1000", "--val-size", "500")
DATA = ("--data-dir", "{mnist}")
# a search with a storage of its own (the case adds --storage): weights to a writable folder
NEW_STORAGE = (*STUDY[2:], *DATA, "--artifacts", "{S}/weights")
NO_OFFLINE = {"BUDGETNAS_OFFLINE": "1", "BUDGETNAS_OFFLINE_DIRS": ""}

# (id, argv after 'budgetnas', extra environment, text the one stderr line must contain)
CASES = [
    # budget
    ("budget-below-smallest", ("search", *STUDY, *DATA, "--budget", "100"), {},
     f"smallest network the space can build ({FLOOR} params): use --budget {FLOOR}"),
    ("budget-zero", ("search", *STUDY, *DATA, "--budget", "0"), {}, "--budget must be a positive number"),
    ("budget-negative", ("search", *STUDY, *DATA, "--budget", "-5"), {}, "--budget must be a positive number"),
    ("budget-not-a-number", ("search", *STUDY, *DATA, "--budget", "lots"), {}, "'lots' is not a whole number"),
    ("budget-fraction", ("search", *STUDY, *DATA, "--budget", "2.5k"), {}, "'2.5k' is not a whole number"),
    # epochs, trials
    ("epochs-zero", ("search", *STUDY, *DATA, "--epochs", "0"), {}, "--epochs must be at least 1"),
    ("trials-zero", ("search", *STUDY, *DATA, "--trials", "0"), {}, "--trials must be at least 1"),
    ("trials-not-a-number", ("search", *STUDY, *DATA, "--trials", "many"), {}, "invalid int value: 'many'"),
    ("worker-trials-negative", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--trials", "-1", *DATA),
     {}, "--trials must be at least 1"),
    ("worker-threads-zero", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--threads", "0", *DATA),
     {}, "--threads must be at least 1 (got 0)"),
    ("worker-timeout-negative", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--timeout", "-3", *DATA),
     {}, "--timeout must be positive seconds (got -3.0)"),
    # dataset and data files (no download, no offline copy can stand in)
    ("unknown-dataset", ("search", *STUDY, *DATA, "--dataset", "cifar10"), {}, "unknown dataset 'cifar10'"),
    ("data-file-missing", ("search", *STUDY, "--data-dir", "{D}/missing"), NO_OFFLINE,
     "train-labels-idx1-ubyte: missing and could not be downloaded or found offline"),
    ("data-file-truncated", ("search", *STUDY, "--data-dir", "{D}/truncated"), NO_OFFLINE,
     "train-images-idx3-ubyte.gz: truncated or corrupt gzip"),
    ("data-file-corrupt", ("search", *STUDY, "--data-dir", "{D}/corrupt"), NO_OFFLINE,
     "t10k-labels-idx1-ubyte: checksum mismatch"),
    ("data-dir-is-a-file", ("search", *STUDY, "--data-dir", "{afile}/mnist"), NO_OFFLINE, "cannot create data dir"),
    ("train-on-another-dataset-s-files", ("train", "--preset", "A", "--epochs", "1", "--dataset", "fashion-mnist",
                                          *DATA), NO_OFFLINE,
     "train-images-idx3-ubyte.gz: this is mnist's train-images-idx3-ubyte, not fashion-mnist's: pass --dataset mnist"),
    # your own data (folders, .npz): each names the file or folder and what to do
    ("own-empty-folder", ("search", *STUDY, "--dataset", "{own}/empty"), {}, "empty: no images found"),
    ("own-one-class", ("search", *STUDY, "--dataset", "{own}/oneclass"), {}, "only one class ('cat')"),
    ("own-corrupt-image", ("search", *STUDY, "--dataset", "{own}/corrupt"), {},
     "corrupt/class1/broken.png: not a readable image"),
    ("own-images-too-small", ("search", *STUDY, "--dataset", "{own}/tiny"), {},
     "images of 4x4 pixels are too small for any network of the space: use --image-size 8 or more"),
    ("own-too-large-for-memory", ("search", *STUDY, "--dataset", "{own}/big"), {"BUDGETNAS_MAX_MEMORY": "10K"},
     "40 images of 1x16x16 need about"),
    ("npz-without-keys", ("search", *STUDY, "--dataset", "{own}/nokeys.npz"), {}, "no x_train or y_train in it"),
    ("npz-mismatched-lengths", ("search", *STUDY, "--dataset", "{own}/mismatch.npz"), {}, "40 images but 37 labels"),
    ("npz-labels-out-of-range", ("search", *STUDY, "--dataset", "{own}/outofrange.npz"), {},
     "test label 7 is out of range for 2 classes"),
    ("npz-labels-not-integers", ("search", *STUDY, "--dataset", "{own}/floatlabels.npz"), {},
     "labels must be integers 0..K-1"),
    ("dataset-neither-folder-nor-npz", ("search", *STUDY, "--dataset", "{own}/an-image.png"), {},
     "an-image.png': use mnist, fashion-mnist, a folder with one subfolder per class"),
    ("image-size-too-small", ("search", *STUDY, *DATA, "--image-size", "4"), {}, "--image-size must be in 8..1024"),
    ("channels-two", ("search", *STUDY, *DATA, "--channels", "2"), {}, "--channels must be 1 or 3 (got 2)"),
    ("train-preset-on-own-data", ("train", "--preset", "A", "--epochs", "1", "--dataset", "{own}/big"), {},
     "preset A takes 1x28x28 digits with 10 classes"),
    # the data command
    ("data-unknown-dataset", ("data", "cifar10"), {}, "unknown dataset 'cifar10'"),
    ("data-cannot-be-fetched", ("data", "fashion-mnist", "--data-dir", "{D}/fashion"), NO_OFFLINE,
     "fashion/train-images-idx3-ubyte: missing and could not be downloaded or found offline"),
    ("data-file-corrupt-stays", ("data", "--data-dir", "{D}/corrupt"), NO_OFFLINE,
     "t10k-labels-idx1-ubyte: checksum mismatch"),
    ("data-of-another-dataset", ("data", "fashion-mnist", "--data-dir", "{mnist}"), NO_OFFLINE,
     "this is mnist's train-images-idx3-ubyte, not fashion-mnist's: pass --dataset mnist"),
    # storage URLs
    ("storage-unreachable", ("search", *NEW_STORAGE, "--storage", f"postgresql://u:{SECRET}@127.0.0.1:1/x"), {},
     "cannot open storage postgresql://u:***@127.0.0.1:1/x"),
    ("storage-malformed", ("search", *NEW_STORAGE, "--storage", "nonsense"), {}, "malformed storage URL 'nonsense'"),
    ("storage-malformed-port", ("search", *NEW_STORAGE, "--storage", f"postgresql://u:{SECRET}@db:port/x"), {},
     "cannot open storage postgresql://u:***@db:port/x"),
    ("storage-sqlite-two-slashes", ("search", *NEW_STORAGE, "--storage", "sqlite://relative.db"), {},
     "Invalid SQLite URL"),
    ("storage-password-in-query", ("leaderboard", "--study", "b", "--storage",
                                   f"postgresql://u@127.0.0.1:1/x?password={SECRET}"), {},
     "cannot open storage postgresql://u@127.0.0.1:1/x?password=***"),
    ("worker-storage-unreachable", ("worker", "--storage", f"postgresql://u:{SECRET}@127.0.0.1:1/x", "--study", "b"),
     {}, "cannot open storage postgresql://u:***@127.0.0.1:1/x (connection to server at"),
    ("bad-heartbeat-setting", ("search", *STUDY, *DATA), {"BUDGETNAS_HEARTBEAT": "soon"},
     "$BUDGETNAS_HEARTBEAT='soon' is not a whole number of seconds"),
    ("bad-worker-start", ("search", *NEW_STORAGE, "--storage", "journal:{S}/w.journal", "--workers", "2"),
     {"BUDGETNAS_WORKER_START": "thread"},
     "$BUDGETNAS_WORKER_START='thread': set it to 'spawn'"),
    # outputs that cannot be written
    ("storage-in-proc", ("search", *NEW_STORAGE, "--storage", "sqlite:////proc/budgetnas.db"), {},
     "cannot open storage sqlite:////proc/budgetnas.db"),
    ("storage-folder-in-proc", ("search", *NEW_STORAGE, "--storage", "sqlite:////proc/budgetnas/s.db"), {},
     "cannot create the folder for storage"),
    ("storage-under-a-file", ("search", *NEW_STORAGE, "--storage", "sqlite:///{afile}/s.db"), {},
     "cannot create the folder for storage"),
    ("artifacts-under-a-file", ("search", *STUDY, *DATA, "--artifacts", "{afile}/weights"), {},
     "cannot write the --artifacts folder"),
    ("artifacts-in-proc", ("search", *STUDY, *DATA, "--artifacts", "/proc/budgetnas-weights"), {},
     "cannot write the --artifacts folder"),
    # a rerun that would make the study's trials incomparable
    ("study-settings-differ", ("search", *STUDY, *DATA, "--epochs", "2"), {}, "was made with epochs=1, not 2"),
    # unknown study (leaderboard, worker)
    ("leaderboard-unknown-study", ("leaderboard", "--storage", "sqlite:///{S}/s.db", "--study", "nope"), {},
     "no study 'nope' in sqlite:///{S}/s.db (studies there: b, plain)"),
    ("leaderboard-no-storage-file", ("leaderboard", "--storage", "sqlite:///{S}/none.db", "--study", "b"), {},
     "no study storage at sqlite:///{S}/none.db"),
    ("leaderboard-default-storage-absent", ("leaderboard",), {}, "no study storage at sqlite:///studies/budgetnas.db"),
    ("leaderboard-no-journal-file", ("leaderboard", "--storage", "journal:{S}/none.journal", "--study", "b"), {},
     "no study storage at journal:{S}/none.journal"),
    ("leaderboard-not-a-journal", ("leaderboard", "--storage", "journal:{afile}", "--study", "b"), {},
     "no study 'b' in journal:{afile} (studies there: none)"),
    ("leaderboard-not-a-database", ("leaderboard", "--storage", "sqlite:///{afile}", "--study", "b"), {},
     "cannot open storage sqlite:///{afile} (file is not a database)"),
    ("leaderboard-other-apps-database", ("leaderboard", "--storage", "sqlite:///{S}/other.db", "--study", "b"), {},
     "sqlite:///{S}/other.db holds no study storage (no such table: version_info)"),
    ("leaderboard-top-zero", ("leaderboard", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--top", "0"), {},
     "--top must be at least 1"),
    ("worker-unknown-study", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "nope", *DATA), {},
     "no study 'nope'"),
    ("worker-study-not-made-by-budgetnas", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "plain", *DATA),
     {}, "has no budgetnas settings"),
    ("worker-without-study", ("worker", "--storage", "sqlite:///{S}/s.db"), {},
     "the following arguments are required: --study"),
    # export
    ("export-unknown-study", ("export", "--storage", "sqlite:///{S}/s.db", "--study", "nope", "--out", "{root}/x"),
     {}, "no study 'nope'"),
    ("export-unknown-trial", ("export", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--trial", "7",
                              "--out", "{root}/x"), {}, "has no trial 7"),
    # train
    ("train-malformed-spec", ("train", "{root}/bad.json", "--epochs", "1", *DATA), {}, "spec is not valid JSON"),
    ("train-unknown-layer", ("train", "{root}/odd.json", "--epochs", "1", *DATA), {}, "kind must be one of 'avgpool', 'conv', 'mbconv', 'pool', 'res'"),
    ("train-spec-over-budget", ("train", "--preset", "E", "--budget", "25000", "--epochs", "1", *DATA), {},
     "the spec has 421,642 parameters, over --budget 25,000"),
    ("train-epochs-zero", ("train", "--preset", "A", "--epochs", "0", *DATA), {}, "--epochs must be at least 1"),
    ("train-unknown-preset", ("train", "--preset", "Z", "--epochs", "1", *DATA), {}, "unknown preset 'Z'"),
    ("unknown-command", ("fly",), {}, "invalid choice: 'fly'"),
    # MAC and peak-RAM budgets (issue 16)
    ("max-macs-below-smallest", ("search", *STUDY, *DATA, "--max-macs", "1k"), {},
     f"--max-macs 1000 is below the smallest network the space can build ({smallest_macs(Space())} MACs): "
     f"use --max-macs {smallest_macs(Space())} or more"),
    ("max-ram-below-smallest", ("search", *STUDY, *DATA, "--max-ram", "100"), {},
     f"--max-ram 100 is below the smallest network the space can build ({smallest_ram(Space())} bytes of peak "
     f"RAM): use --max-ram {smallest_ram(Space())} or more"),
    ("max-macs-malformed", ("search", *STUDY, *DATA, "--max-macs", "12q"), {},
     "'12q' is not a size: use a whole number with an optional k (1,000) or M (1,000,000) suffix"),
    ("max-ram-fraction", ("search", *STUDY, *DATA, "--max-ram", "2.5k"), {}, "'2.5k' is not a size"),
    ("max-ram-zero", ("search", *STUDY, *DATA, "--max-ram", "0"), {}, "--max-ram must be a positive number of bytes"),
    ("train-over-max-macs", ("train", "--preset", "B", "--epochs", "1", "--max-macs", "1M", *DATA), {},
     "the spec needs 1,919,872 multiply-accumulates per image, over --max-macs 1,000,000: pick a smaller spec"),
    ("train-over-max-ram", ("train", "--preset", "B", "--epochs", "1", "--max-ram", "10k", *DATA), {},
     "the spec needs 15,680 bytes of peak activation memory, over --max-ram 10,000: pick a smaller spec"),
    ("space-max-macs-below-smallest", ("space", "--max-macs", "300"), {}, "use --max-macs"),
    ("study-max-macs-differ", ("search", *STUDY, *DATA, "--max-macs", "2M"), {}, "was made with max_macs=None, not 2000000"),
]
AREAS = {"arrays": bad_arrays, "folders": bad_folders, "specs": bad_specs, "flags": bad_flags}
for _area in AREAS.values():
    CASES += _area.CASES
try:
    import torchvision  # noqa: F401
except Exception:  # not installed, or (on these CPU machines) a wheel that does not import
    CASES.append(("torchvision-not-importable", ("search", *STUDY, "--dataset", "torchvision:CIFAR10"), {},
                  "torchvision:CIFAR10 needs torchvision, which does not import here"))
if not torch.cuda.is_available():  # the CPU machines this runs on (CI has no GPU)
    CASES += [
        ("search-device-cuda-without-gpu", ("search", *STUDY, *DATA, "--device", "cuda"), {},
         "--device cuda: no CUDA GPU is visible to PyTorch: use --device cpu or auto"),
        ("train-device-cuda-without-gpu", ("train", "--preset", "A", "--epochs", "1", "--device", "cuda", *DATA), {},
         "--device cuda: no CUDA GPU is visible to PyTorch: use --device cpu or auto"),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_dir):
    """A study folder (study 'b' made by the CLI, a plain Optuna study, another app's
    database), broken copies of the data and a plain file to write 'under'."""
    import optuna
    root = tmp_path_factory.mktemp("bad")
    S, D = root / "study", root / "data"
    made = run(budgetnas("search", "--create-only", *[a.format(S=S) for a in STUDY]))
    assert made.returncode == 0, made.stderr
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    plain = optuna.storages.RDBStorage(f"sqlite:///{S}/s.db")
    optuna.create_study(study_name="plain", storage=plain)
    plain.engine.dispose()  # close it: SQLite folds its WAL into the file before the copies
    with sqlite3.connect(S / "other.db") as db:
        db.execute("create table notes (id integer primary key, body text)")
        db.execute("insert into notes (body) values ('not an optuna storage')")

    for name in ("missing", "truncated", "corrupt"):
        shutil.copytree(mnist_dir, D / name)
    (D / "missing" / "train-labels-idx1-ubyte.gz").unlink()
    gz = D / "truncated" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    src = D / "corrupt" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(src.read_bytes()))
    raw[5000] ^= 0xFF  # one flipped byte: same size, wrong checksum
    (D / "corrupt" / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    src.unlink()
    afile = root / "afile"
    afile.write_text("a file, not a folder\n")
    (root / "bad.json").write_text("{not json")
    (root / "odd.json").write_text('{"layers": [{"kind": "attention", "out": 4}]}')
    write_bad_data(root / "own")
    for name, area in AREAS.items():
        area.make(root / name)
    return {"S": S, "D": D, "mnist": mnist_dir, "afile": afile, "root": root, "own": root / "own",
            **{name: root / name for name in AREAS}}


def run_case(world: dict, case: tuple, scratch: Path, forked: ForkedCLI | None = None) -> dict:
    """Run one case in its own copy of the study folder and an empty working folder, in a
    process forked by ``forked`` or else started as `python -m budgetnas`."""
    case_id, argv, env, expected = case
    here = dict(world, S=scratch / "study")
    shutil.copytree(world["S"], here["S"])
    cwd = scratch / "cwd"
    cwd.mkdir()
    roots = (here["S"], world["D"], world["mnist"], world["afile"], world["own"], *(world[a] for a in AREAS), cwd)
    before = fingerprint(*roots)
    args = [a.format(**here) for a in argv]
    got = forked.run(args, cwd, cli_env(**env)) if forked else run(budgetnas(*args), cwd=cwd, env=cli_env(**env))
    after = fingerprint(*roots)
    return {"got": got, "expected": expected.format(**here), "scratch": str(scratch),
            "changed": sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))}


@pytest.fixture(scope="module")
def results(world, request, tmp_path_factory) -> dict:
    """The selected cases, two at a time, each in a process forked from a server that has
    imported the CLI (each case has its own study copy and working folder)."""
    wanted = {item.callspec.params["case_id"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input"}
    cases = [c for c in CASES if c[0] in wanted]
    forked = ForkedCLI(servers=2)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {c[0]: pool.submit(run_case, world, c, tmp_path_factory.mktemp(c[0]), forked) for c in cases}
            done = {case_id: f.result() for case_id, f in futures.items()}
    finally:
        forked.close()
    table = os.environ.get("BUDGETNAS_BAD_INPUT_TABLE")  # scripts/bad_input_table.sh writes docs/BAD_INPUT.md
    if table:
        Path(table).write_text(markdown_table(world, cases, done))
    return done


def markdown_table(world: dict, cases: list[tuple], done: dict) -> str:
    """docs/BAD_INPUT.md: each case's command and the one line it got, with the test's
    temporary paths written as the placeholders of CASES."""
    def plain(text: str, scratch: str) -> str:
        text = text.replace(scratch + "/study", "{S}").replace(scratch + "/cwd", ".")
        for key in sorted((k for k, v in world.items() if isinstance(v, Path)), key=lambda k: -len(str(world[k]))):
            text = text.replace(str(world[key]), "{" + key + "}")
        return text.replace("|", "\\|")

    rows = ["# Bad input: every case and the line it gets", "",
            "Generated by `bash scripts/bad_input_table.sh` from `tests/test_bad_input.py` (and its",
            "`tests/bad_*.py` parts): each runs the real CLI and ends with exit status 2, this one line",
            "on stderr, and nothing stored changed. `{S}` is a study folder, `{mnist}` the MNIST",
            "files, `{D}` broken copies of them, the others folders of broken inputs.", "",
            "| case | command | the line it gets |", "|---|---|---|"]
    for case_id, argv, env, _ in cases:
        got = done[case_id]["got"]
        scratch = done[case_id]["scratch"]
        command = " ".join(["budgetnas", *argv])
        envs = " ".join(f"{k}={v}" for k, v in env.items())
        line = got.stderr.strip().splitlines()[0] if got.stderr.strip() else f"(exit {got.returncode}, no message)"
        rows.append(f"| {case_id} | `{plain((envs + ' ' if envs else '') + command, scratch)}` | "
                    f"{plain(line.removeprefix('budgetnas: error: '), scratch)} |")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_bad_input(results, case_id):
    check(results[case_id])


@pytest.mark.parametrize("case_id", ["data-file-corrupt", "budget-below-smallest"])
def test_bad_input_as_python_m_budgetnas(world, case_id, tmp_path):
    """The same promise from the real entry point, `python -m budgetnas`, for two cases."""
    check(run_case(world, next(c for c in CASES if c[0] == case_id), tmp_path))


def check(r: dict) -> None:
    got, expected = r["got"], r["expected"]
    lines = got.stderr.strip().splitlines()
    print(f"{' '.join(got.args[-6:])}: exit {got.returncode}: {got.stderr.strip()}")  # shown with pytest -rP
    assert got.returncode == 2, f"exit {got.returncode}\nstdout: {got.stdout}\nstderr: {got.stderr}"
    assert len(lines) == 1, f"stderr is not one line:\n{got.stderr}"
    assert lines[0].startswith("budgetnas: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in got.stdout + got.stderr
    assert SECRET not in got.stdout + got.stderr
    assert not r["changed"], f"something stored changed: {r['changed']}"


def test_every_case_is_listed_once():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
