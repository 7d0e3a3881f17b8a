"""First (decode) and cached load of an own-data folder or .npz, in one run:

    python scripts/bench_own_data.py /tmp/mnist-png

Each load runs in a fresh process (as a search or worker would start), with a cache
folder that is empty for the first load.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time

CODE = """
import time, sys
t0 = time.perf_counter()
from budgetnas.data.load import load_arrays
from pathlib import Path
a = load_arrays(sys.argv[1], cache=Path(sys.argv[2]))
print(f"{time.perf_counter() - t0:.2f} {a.cached} {len(a.x_train) + (len(a.x_test) if a.x_test is not None else 0)} "
      f"{a.fingerprint}")
"""


def main() -> None:
    source = sys.argv[1]
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CODE, source, cache], capture_output=True, text=True, check=True)
            seconds, cached, n, fp = out.stdout.split()
            runs.append((float(seconds), cached == "True"))
            print(f"{'cached' if cached == 'True' else 'first '} load: {float(seconds):.2f} s for {int(n):,} images "
                  f"(fingerprint {fp}; process {time.perf_counter() - t0:.2f} s)")
        first, cached = runs[0][0], min(s for s, c in runs[1:])
        print(f"ratio first/cached: {first / cached:.0f}x")


if __name__ == "__main__":
    main()
