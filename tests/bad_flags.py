"""Bad-input cases for flags (merged into tests/test_bad_input.py's table).

CASES: (id, argv after 'budgetnas', extra environment, text the one stderr line must
contain); argv may use {S} (a copy of the study folder), {mnist}, {root}, {afile}, and
{flags}: the folder make() filled. make(folder) writes the inputs the cases read.

Each input kind has one check at the edge, before any work: the recipe flags
(train/recipe.py), the search and data flags (config/settings.py, parsed by
config/values.py: nan, inf and counts past 10^15 never reach a computation), seeds
(0..2^32-1), the environment (config/env.py, read once the line is parsed), storage
URLs (study/storage.py: in memory, a folder, another application's database or file,
which stays byte-identical), the dataset name, and the idx files (data/sources/idx.py:
any damage is one line naming the file, which is never deleted or replaced)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

# the argv shapes of tests/test_bad_input.py: a search that matches study 'b' in {S}/s.db
# gets as far as the storage; NEW_STORAGE is one that the case gives a storage of its own
STUDY = ("--storage", "sqlite:///{S}/s.db", "--study", "b", "--budget", "3000", "--trials", "4",
         "--train-limit", "1000", "--val-size", "500")
DATA = ("--data-dir", "{mnist}")
NEW_STORAGE = (*STUDY[2:], *DATA, "--artifacts", "{S}/weights")
SEARCH = ("search", *STUDY, *DATA)
TRAIN = ("train", "--preset", "A", "--epochs", "1", *DATA)
NO_OFFLINE = {"BUDGETNAS_OFFLINE": "1", "BUDGETNAS_OFFLINE_DIRS": ""}
SEED = "must be a whole number in 0..4294967295"
IMAGES = "train-images-idx3-ubyte"  # the first file read: its damage is what a case meets

CASES: list[tuple] = [
    # recipe flags (train): torch's ranges, nan and inf nowhere
    ("train-label-smoothing-2", (*TRAIN, "--label-smoothing", "2"), {},
     "--label-smoothing must be a finite number in [0, 1) (got 2.0)"),
    ("train-weight-decay-negative", (*TRAIN, "--weight-decay", "-1"), {},
     "--weight-decay must be a finite number >= 0 (got -1.0)"),
    ("train-lr-zero", (*TRAIN, "--lr", "0"), {}, "learning rate must be positive (got 0.0)"),
    ("train-lr-nan", (*TRAIN, "--lr", "nan"), {}, "--lr must be a finite number (got 'nan')"),
    ("train-lr-overflows-to-inf", (*TRAIN, "--lr", "1e999"), {}, "--lr must be a finite number (got '1e999')"),
    ("train-rotate-negative", (*TRAIN, "--rotate", "-5"), {},
     "--rotate must be a finite number in [0, 180] (got -5.0)"),
    ("train-translate-whole-side", (*TRAIN, "--translate", "1"), {},
     "--translate must be a finite number in [0, 1) (got 1.0)"),
    ("train-batch-size-zero", (*TRAIN, "--batch-size", "0"), {}, "--batch-size must be at least 1 (got 0)"),
    ("train-seed-negative", (*TRAIN, "--seed", "-1"), {}, f"--seed {SEED} (got -1)"),
    ("train-seed-past-32-bits", (*TRAIN, "--seed", str(2 ** 32)), {}, f"--seed {SEED} (got 4294967296)"),
    ("train-epochs-huge", ("train", "--preset", "A", "--epochs", str(10 ** 30), *DATA), {},
     "--epochs must be at most 10,000"),
    ("train-threads-zero", (*TRAIN, "--threads", "0"), {}, "--threads must be at least 1 (got 0)"),
    ("train-budget-zero", (*TRAIN, "--budget", "0"), {}, "--budget must be a positive number (got 0)"),
    ("train-max-ram-zero", (*TRAIN, "--max-ram", "0"), {}, "--max-ram must be a positive number of bytes (got 0)"),
    ("train-out-empty", (*TRAIN, "--out", ""), {}, "--out must not be empty"),
    ("train-spec-empty", ("train", "", "--epochs", "1", *DATA), {}, "spec must not be empty"),
    ("report-out-empty", ("report", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--out", ""), {},
     "--out must not be empty"),
    # search and data flags
    ("split-seed-negative", (*SEARCH, "--split-seed", "-1"), {}, f"--split-seed {SEED} (got -1)"),
    ("split-seed-negative-new-study", ("search", *NEW_STORAGE, "--storage", "sqlite:///{S}/new.db",
                                       "--split-seed", "-1"), {}, f"--split-seed {SEED} (got -1)"),
    ("seed-huge", (*SEARCH, "--seed", "99999999999999999999"), {}, f"--seed {SEED} (got 99999999999999999999)"),
    ("space-seed-negative", ("space", "--seed", "-3"), {}, f"--seed {SEED} (got -3)"),
    ("val-size-zero", (*SEARCH, "--val-size", "0"), {}, "--val-size must be a positive number (got 0)"),
    ("train-limit-zero", (*SEARCH, "--train-limit", "0"), {}, "--train-limit must be a positive number (got 0)"),
    ("budget-double-suffix", (*SEARCH, "--budget", "25kk"), {}, "'25kk' is not a whole number"),
    ("budget-overflows-to-inf", (*SEARCH, "--budget", "1e999"), {}, "'1e999' is not a whole number"),
    ("budget-huge", (*SEARCH, "--budget", str(10 ** 30)), {}, "--budget must be at most 1,000,000,000,000,000"),
    ("max-macs-huge", (*SEARCH, "--max-macs", str(10 ** 30)), {},
     "--max-macs must be at most 1,000,000,000,000,000 of multiply-accumulates"),
    ("trials-huge", (*SEARCH, "--trials", str(10 ** 20)), {}, "--trials must be at most 1,000,000"),
    ("epochs-huge", (*SEARCH, "--epochs", str(10 ** 30)), {}, "--epochs must be at most 10,000"),
    ("timeout-nan", (*SEARCH, "--timeout", "nan"), {}, "--timeout must be a finite number (got 'nan')"),
    ("timeout-inf", (*SEARCH, "--timeout", "inf"), {}, "--timeout must be a finite number (got 'inf')"),
    ("timeout-huge", (*SEARCH, "--timeout", "1e12"), {},
     "--timeout must be a finite number of seconds, at most 100,000,000"),
    ("train-fraction-nan", (*SEARCH, "--train-fraction", "nan"), {},
     "--train-fraction must be a finite number (got 'nan')"),
    ("train-fraction-zero", (*SEARCH, "--train-fraction", "0"), {}, "--train-fraction must be in (0, 1] (got 0.0)"),
    ("workers-zero", (*SEARCH, "--workers", "0"), {}, "--workers must be at least 1 (got 0)"),
    ("threads-negative", (*SEARCH, "--threads", "-1"), {}, "--threads must be at least 1 (got -1)"),
    ("eval-points-huge", (*SEARCH, "--eval-points", str(10 ** 20)), {}, "--eval-points must be at most 100"),
    ("reruns-huge", (*SEARCH, "--reruns", str(10 ** 20)), {}, "--reruns must be at most 1,000"),
    ("study-empty", ("search", *STUDY[:2], "--study", "", *STUDY[4:], *DATA), {}, "--study must not be empty"),
    ("study-control-character", ("search", *STUDY[:2], "--study", "a\tb", *STUDY[4:], *DATA), {},
     "--study must be a non-empty name without '/' or control characters"),
    ("dataset-empty", (*SEARCH, "--dataset", ""), {}, "--dataset must not be empty"),
    ("data-dir-empty", ("search", *STUDY, "--data-dir", ""), {}, "--data-dir must not be empty"),
    ("artifacts-empty", (*SEARCH, "--artifacts", ""), {}, "--artifacts must not be empty"),
    ("data-empty-dataset-name", ("data", ""), {}, "an empty dataset name: use mnist, fashion-mnist"),
    ("space-samples-zero", ("space", "--samples", "0"), {}, "--samples must be at least 1 (got 0)"),
    ("worker-timeout-nan", ("worker", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--timeout", "nan", *DATA),
     {}, "--timeout must be a finite number (got 'nan')"),
    ("leaderboard-top-negative", ("leaderboard", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--top", "-1"),
     {}, "--top must be at least 1 (got -1)"),
    ("leaderboard-tiers-zero", ("leaderboard", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--tiers", "0,5k"),
     {}, "'0,5k' is not a list of parameter counts like 2k,5k,10k,25k"),
    ("leaderboard-study-empty", ("leaderboard", "--storage", "sqlite:///{S}/s.db", "--study", ""), {},
     "--study must not be empty"),
    ("export-rank-zero", ("export", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--rank", "0"), {},
     "--rank must be at least 1 (got 0)"),
    ("dashboard-port-zero", ("dashboard", "--storage", "sqlite:///{S}/s.db", "--study", "b", "--port", "0"), {},
     "--port must be at least 1 (got 0)"),
    # environment variables: refused once the line is parsed, naming the variable
    ("env-max-memory-inf", SEARCH, {"BUDGETNAS_MAX_MEMORY": "infG"}, "$BUDGETNAS_MAX_MEMORY='infG' is not a size"),
    ("env-max-memory-nan", SEARCH, {"BUDGETNAS_MAX_MEMORY": "nan"}, "$BUDGETNAS_MAX_MEMORY='nan' is not a size"),
    ("env-max-memory-negative", SEARCH, {"BUDGETNAS_MAX_MEMORY": "-5G"}, "$BUDGETNAS_MAX_MEMORY='-5G' is not a size"),
    ("env-max-memory-zero", SEARCH, {"BUDGETNAS_MAX_MEMORY": "0"},
     "$BUDGETNAS_MAX_MEMORY='0' must be more than 0 bytes"),
    ("env-max-memory-garbage", SEARCH, {"BUDGETNAS_MAX_MEMORY": "lots"}, "$BUDGETNAS_MAX_MEMORY='lots' is not a size"),
    ("env-heartbeat-not-ascii-digits", SEARCH, {"BUDGETNAS_HEARTBEAT": "²"},
     "$BUDGETNAS_HEARTBEAT='²' is not a whole number of seconds"),
    ("env-heartbeat-huge", SEARCH, {"BUDGETNAS_HEARTBEAT": "99999999999999999999"},
     "$BUDGETNAS_HEARTBEAT='99999999999999999999' is more than 3600 seconds"),
    ("env-heartbeat-grace-zero", SEARCH, {"BUDGETNAS_HEARTBEAT_GRACE": "0"},
     "$BUDGETNAS_HEARTBEAT_GRACE='0' is not a whole number of seconds"),
    ("env-offline-garbage", SEARCH, {"BUDGETNAS_OFFLINE": "maybe"}, "$BUDGETNAS_OFFLINE='maybe': set it to 1"),
    ("env-mps-garbage", SEARCH, {"BUDGETNAS_MPS": "sometimes"}, "$BUDGETNAS_MPS='sometimes': set it to 1"),
    ("env-read-by-a-read-only-command", ("presets",), {"BUDGETNAS_MAX_MEMORY": "infG"},
     "$BUDGETNAS_MAX_MEMORY='infG' is not a size"),
    # storage URLs
    ("storage-in-memory", ("search", *NEW_STORAGE, "--storage", "sqlite://"), {},
     "storage sqlite:// is in memory; a study in memory vanishes when the process ends: pass sqlite:///FILE.db"),
    ("storage-in-memory-named", ("search", *NEW_STORAGE, "--storage", "sqlite:///:memory:"), {},
     "a study in memory vanishes when the process ends: pass sqlite:///FILE.db"),
    ("storage-in-memory-from-env", ("search", *NEW_STORAGE), {"BUDGETNAS_STORAGE": "sqlite://"},
     "a study in memory vanishes when the process ends"),
    ("leaderboard-storage-in-memory", ("leaderboard", "--storage", "sqlite://", "--study", "b"), {},
     "a study in memory vanishes when the process ends"),
    ("storage-empty", ("search", *NEW_STORAGE, "--storage", ""), {}, "--storage must not be empty"),
    ("leaderboard-storage-empty", ("leaderboard", "--storage", "", "--study", "b"), {}, "--storage must not be empty"),
    # another application's SQLite database: refused before Optuna opens it (it would add
    # its tables and switch the file to WAL); the harness proves the file byte-identical
    ("storage-other-apps-database", ("search", *NEW_STORAGE, "--storage", "sqlite:///{S}/other.db"), {},
     "sqlite:///{S}/other.db is another application's SQLite database (tables: notes), not a study storage: "
     "budgetnas left it as it is"),
    ("create-only-other-apps-database", ("search", "--create-only", *NEW_STORAGE, "--storage",
                                         "sqlite:///{S}/other.db"), {},
     "is another application's SQLite database (tables: notes)"),
    ("storage-other-apps-wal-database", ("search", *NEW_STORAGE, "--storage", "sqlite:///{flags}/wal.db"), {},
     "is another application's SQLite database (tables: notes)"),
    ("storage-not-a-database", ("search", *NEW_STORAGE, "--storage", "sqlite:///{afile}"), {},
     "cannot open storage sqlite:///{afile} (file is not a database)"),
    ("storage-sqlite-folder", ("search", *NEW_STORAGE, "--storage", "sqlite:///{S}"), {},
     "storage sqlite:///{S} is a folder: pass a file in it, e.g. sqlite:///{S}/budgetnas.db"),
    ("storage-journal-folder", ("search", *NEW_STORAGE, "--storage", "journal:{S}"), {},
     "storage journal:{S} is a folder"),
    ("storage-journal-no-file", ("search", *NEW_STORAGE, "--storage", "journal:"), {},
     "storage journal: names no file"),
    ("storage-journal-not-a-journal", ("search", *NEW_STORAGE, "--storage", "journal:{afile}"), {},
     "journal:{afile} is not an Optuna journal (its first line is no journal entry): budgetnas left it as it is"),
    # idx files: any damage is one line naming the file, which stays as it was
    ("idx-gz-flipped-in-the-middle", ("search", *STUDY, "--data-dir", "{flags}/flipped"), NO_OFFLINE,
     f"flipped/{IMAGES}.gz: truncated or corrupt gzip"),
    ("idx-gz-garbage-header", ("search", *STUDY, "--data-dir", "{flags}/garbage"), NO_OFFLINE,
     f"garbage/{IMAGES}.gz: truncated or corrupt gzip (Not a gzipped file"),
    ("idx-raw-wrong-dims", ("search", *STUDY, "--data-dir", "{flags}/dims"), NO_OFFLINE,
     f"dims/{IMAGES}: checksum mismatch"),
    ("idx-raw-truncated", ("train", "--preset", "A", "--epochs", "1", "--data-dir", "{flags}/short"), NO_OFFLINE,
     f"short/{IMAGES}: checksum mismatch"),
    ("idx-folder-in-place-of-a-file", ("search", *STUDY, "--data-dir", "{flags}/folder"), NO_OFFLINE,
     f"folder/{IMAGES}.gz: corrupt: not a file"),
    ("idx-folder-in-place-data-command", ("data", "--data-dir", "{flags}/folder"), NO_OFFLINE,
     f"folder/{IMAGES}.gz: corrupt: not a file"),
    ("idx-gz-flipped-data-command", ("data", "--data-dir", "{flags}/flipped"), NO_OFFLINE,
     f"flipped/{IMAGES}.gz: truncated or corrupt gzip"),
]


def idx(dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def make(folder: Path) -> None:
    """Damaged data folders (each with its damaged file first in reading order; the other
    three are stand-ins never reached) and another application's WAL-mode database."""
    import sqlite3
    folder.mkdir(parents=True, exist_ok=True)
    images = idx((60, 28, 28), bytes(range(256)) * (60 * 28 * 28 // 256) + bytes(60 * 28 * 28 % 256))
    damaged = {
        "flipped": (f"{IMAGES}.gz", bytearray(gzip.compress(images, mtime=0))),
        "garbage": (f"{IMAGES}.gz", b"<html>404 not found</html>\n" * 4),
        "dims": (IMAGES, idx((60, 28, 29), images[16:])),  # the header's dims do not match the payload
        "short": (IMAGES, images[: len(images) // 2]),
    }
    flipped = damaged["flipped"][1]
    flipped[len(flipped) // 2] ^= 0xFF  # one byte in the middle of the deflate stream
    for name, (file, data) in {**damaged, "folder": (None, None)}.items():
        d = folder / name
        d.mkdir()
        for stem in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (d / f"{stem}.gz").write_bytes(b"stand-in, never read")
        if file is None:
            (d / f"{IMAGES}.gz").mkdir()  # a folder where the file should be
        else:
            (d / file).write_bytes(bytes(data))
    with sqlite3.connect(folder / "wal.db") as db:
        db.execute("pragma journal_mode=wal")
        db.execute("create table notes (id integer primary key, body text)")
        db.execute("insert into notes (body) values ('not an optuna storage')")
    db.close()
