"""How long site discovery takes, on timm models built on the meta device (no weights).

    python benchmarks/discovery.py [--models vit_large_patch16_224 resnet50 ...]

Prints, per model: parameters, sites per kind, build time and discovery time (median of 3).
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

from minsearch.sites import find_sites

DEFAULT = ["resnet50", "vit_base_patch16_224", "vit_large_patch16_224", "convnext_large",
           "swin_large_patch4_window7_224", "efficientnet_b7"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    print(f"{'model':32s} {'params':>8s} {'build s':>8s} {'find s':>7s}  sites")
    for name in args.models:
        start = time.perf_counter()
        with torch.device("meta"):
            model = timm.create_model(name)
        build = time.perf_counter() - start
        times = []
        for _ in range(3):
            start = time.perf_counter()
            found = find_sites(model, (1, 3, *timm.get_pretrained_cfg(name).input_size[1:]))
            times.append(time.perf_counter() - start)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        counts = " ".join(f"{k}={v}" for k, v in found.counts().items())
        print(f"{name:32s} {params:7.1f}M {build:8.2f} {statistics.median(times):7.2f}  {counts}")


if __name__ == "__main__":
    main()
