"""Write a built-in dataset (mnist, fashion-mnist) out as a PNG folder with train/ and
test/, one subfolder per class named after it: a real dataset in the layout of your
own data, for the comparison search and the load-time measurement in the README.

    python scripts/write_png_folder.py fashion-mnist /tmp/fashion-png [--data-dir DIR]

Fashion-MNIST on Debian/Ubuntu: apt-get install dataset-fashion-mnist (budgetnas finds
it in /usr/share/datasets/fashion-mnist).
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from budgetnas.config import DataConfig
from budgetnas.data.sources.idx import FILES, REGISTRY, data_dir_for, ensure_files, parse_idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=sorted(REGISTRY))
    ap.add_argument("out")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    info = REGISTRY[args.dataset]
    directory = data_dir_for(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    raw = ensure_files(info, directory)
    t0 = time.perf_counter()
    out = Path(args.out)
    for split, (xs, ys) in (("train", FILES[:2]), ("test", FILES[2:])):
        x, y = parse_idx(raw[xs], xs), parse_idx(raw[ys], ys)
        for name in info.classes:
            (out / split / name).mkdir(parents=True, exist_ok=True)

        def write(i: int) -> None:
            Image.fromarray(x[i]).save(out / split / info.classes[y[i]] / f"{i:05d}.png")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(len(x))))
        print(f"{split}: {len(x):,} PNG files in {out / split}")
    print(f"written in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
