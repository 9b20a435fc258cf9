"""Streamed image folders: memory and throughput do not depend on the folder's size.

1. Writes two ImageFolders of random 32x32 RGB PNGs in 10 classes (``--small`` and
   ``--large`` images; the large one takes a minute or so, niced).
2. For each, in a fresh process: ``load_data`` (the folder's tree and every file's header
   read, the split drawn, one image decoded), then the first ``--read`` images of a training
   epoch (the same work for both folders: what the folder's size alone costs), then one
   whole training epoch over the train split (60%), through the DataLoader with
   ``--workers`` workers and a random-crop augmentation. A thread samples the memory of the
   process and its workers every 50 ms: the sum of their RSS (shared pages counted in each)
   and of their PSS (shared pages divided among them).
3. Prints both side by side with the large/small ratios, and what the former in-memory
   loader would have held (N x 3 x 32 x 32 uint8).

    python benchmarks/data_pipeline.py [--small 2000] [--large 50000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_folder(root: Path, n: int, side: int = 32, classes: int = 10) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % classes}" / f"{i}.png", compress_level=1)


class Sampler(threading.Thread):
    """Peak RSS and PSS of this process plus its children (the loader workers)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self.me, self.stop = psutil.Process(), threading.Event()
        self.peak_rss = self.peak_pss = 0

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            rss = pss = 0
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                rss, pss = rss + info.rss, pss + info.pss
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            time.sleep(0.05)


def measure(root: str, workers: int, read: int) -> dict:
    """Load the folder, read its first ``read`` training images, then one whole training
    epoch (this process and its workers)."""
    import torch

    from minsearch.tasks.config import DataConfig
    from minsearch.tasks.data import load_data

    torch.set_num_threads(1)
    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    cfg = DataConfig(dataset="imagefolder", data_root=root, num_workers=workers,
                     train_transform=[{"RandomCrop": {"size": 32, "padding": 4}}],
                     eval_transform=[], mean=[0.5], std=[0.25])
    data = load_data(cfg)
    loaded = time.perf_counter() - start
    out = {"images": len(data.train) + len(data.val) + len(data.test), "load_s": loaded}
    for label, limit in (("first", read), ("epoch", None)):  # the same count, then all
        start, images = time.perf_counter(), 0
        sampler.peak_rss = sampler.peak_pss = 0
        for x, _ in data.batches(data.train, 256, generator=torch.Generator().manual_seed(0)):
            images += len(x)
            if limit is not None and images >= limit:
                break
        seconds = time.perf_counter() - start
        time.sleep(0.2)  # a last sample
        out.update({f"{label}_images": images, f"{label}_per_s": images / seconds,
                    f"{label}_rss_mb": sampler.peak_rss / 2**20,
                    f"{label}_pss_mb": sampler.peak_pss / 2**20})
    sampler.stop.set()
    sampler.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--read", type=int, default=1024,
                        help="images read from each folder for the like-for-like row")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one folder, JSON out
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.read)))
        return
    os.nice(10)
    results = {}
    with tempfile.TemporaryDirectory(prefix="minsearch-pipeline-") as tmp:
        for label, n in (("small", args.small), ("large", args.large)):
            folder = Path(tmp) / label
            start = time.perf_counter()
            write_folder(folder, n)
            print(f"wrote {n} PNGs in {time.perf_counter() - start:.1f} s", flush=True)
            out = subprocess.run([sys.executable, __file__, "--measure", str(folder),
                                  "--workers", str(args.workers), "--read", str(args.read)],
                                 check=True, cwd=ROOT,
                                 capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    small, large = results["small"], results["large"]
    print(f"\n{'':40}{'small':>10}{'large':>10}{'large/small':>13}")
    rows = [("images in the folder", "images", "{:.0f}"),
            ("load (tree, headers, split) s", "load_s", "{:.2f}"),
            (f"first {args.read} train images: images/s", "first_per_s", "{:.0f}"),
            ("  peak RSS, main + workers, MB", "first_rss_mb", "{:.0f}"),
            ("  peak PSS, main + workers, MB", "first_pss_mb", "{:.0f}"),
            ("one whole epoch: images read", "epoch_images", "{:.0f}"),
            ("  images/s", "epoch_per_s", "{:.0f}"),
            ("  peak RSS, main + workers, MB", "epoch_rss_mb", "{:.0f}"),
            ("  peak PSS, main + workers, MB", "epoch_pss_mb", "{:.0f}")]
    for name, key, fmt in rows:
        print(f"{name:40}{fmt.format(small[key]):>10}{fmt.format(large[key]):>10}"
              f"{large[key] / small[key]:>12.2f}x")
    held = [r["images"] * 3 * 32 * 32 / 2**20 for r in (small, large)]
    print(f"{'in memory as uint8 tensors, MB':40}{held[0]:>10.0f}{held[1]:>10.0f}"
          f"{held[1] / held[0]:>12.2f}x  (what the former loader held)")
    print(f"({args.workers} workers, batch 256, RandomCrop(32, padding=4); one epoch of the "
          f"train split)")


if __name__ == "__main__":
    main()
