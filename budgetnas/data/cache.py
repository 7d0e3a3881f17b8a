"""The decoded cache: a source's arrays saved once under their content fingerprint
($BUDGETNAS_CACHE, default DATA_ROOT/decoded), with an index entry from the source's
listing (sources/__init__.py: cache_key) to it. Best effort both ways: a damaged or
read-only cache only costs a decode."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .arrays import Arrays


def read(folder: Path, key: str) -> Arrays | None:
    try:
        meta = json.loads((folder / "index" / f"{key}.json").read_text())
        with np.load(folder / f"{meta['fingerprint']}.npz", allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None  # no cache or a damaged one: decode again
    return Arrays(arr["x_train"], arr["y_train"], arr.get("x_test"), arr.get("y_test"), tuple(meta["classes"]),
                  meta["fingerprint"], list(meta.get("notes", [])), cached=True, x_val=arr.get("x_val"),
                  y_val=arr.get("y_val"))


def write(folder: Path, key: str, a: Arrays) -> None:
    """The arrays under their content fingerprint (uncompressed: reading is then a copy),
    and an index entry from the source's listing to it."""
    try:
        (folder / "index").mkdir(parents=True, exist_ok=True)
        target = folder / f"{a.fingerprint}.npz"
        if not target.is_file():
            tmp = folder / f".{a.fingerprint}.{os.getpid()}.npz"
            arrays = {"x_train": a.x_train, "y_train": a.y_train}
            if a.x_test is not None:
                arrays.update(x_test=a.x_test, y_test=a.y_test)
            if a.x_val is not None:
                arrays.update(x_val=a.x_val, y_val=a.y_val)
            np.savez(tmp, **arrays)
            os.replace(tmp, target)
        entry = folder / "index" / f"{key}.json"
        tmp_entry = entry.with_name(f".{key}.{os.getpid()}.json")
        tmp_entry.write_text(json.dumps({"fingerprint": a.fingerprint, "classes": list(a.classes), "notes": a.notes}))
        os.replace(tmp_entry, entry)
    except OSError:
        pass
