"""How long site discovery takes, on models built on the meta device (no weights).

    python benchmarks/discovery.py [--models vit_large_patch16_224 resnet50 ...]
                                   [--hf hf:llama hf:mistral ...]

Prints, per model: parameters, sites per kind, build time and discovery time (median of 3).
timm models are named as in timm; ``--hf`` takes ``hf:`` specs (transformers models from
their config classes: ``hf:llama`` is LLaMA-2 7B's config). The first transformers build in a
process also imports the modeling code (seconds): it is timed apart, as ``first build``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import timm
import torch

from minsearch.models import build_model, default_input_shape
from minsearch.sites import find_sites

DEFAULT = ["resnet50", "vit_base_patch16_224", "vit_large_patch16_224", "convnext_large",
           "swin_large_patch4_window7_224", "efficientnet_b7"]
HF_DEFAULT = [
    "hf:llama",  # LLaMA-2 7B
    "hf:mistral",  # Mistral 7B (GQA, sliding window)
    "hf:qwen2?hidden_size=3584&intermediate_size=18944&num_hidden_layers=28"
    "&num_attention_heads=28&num_key_value_heads=4&vocab_size=152064",  # Qwen2 7B
    "hf:gemma?hidden_size=3072&intermediate_size=24576&num_hidden_layers=28"
    "&num_attention_heads=16&num_key_value_heads=16&head_dim=256",  # Gemma 7B
    "hf:bert?hidden_size=1024&num_hidden_layers=24&num_attention_heads=16"
    "&intermediate_size=4096",  # BERT-large
    "hf:t5?d_model=1024&d_ff=4096&num_layers=24&num_heads=16&d_kv=64",  # T5-large
]


def _row(name: str, model: torch.nn.Module, build: float, shape) -> None:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        found = find_sites(model, shape)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    counts = " ".join(f"{k}={v}" for k, v in found.counts().items() if v)
    print(f"{name[:40]:40s} {params:8.1f}M {build:8.2f} {statistics.median(times):7.2f}  {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--hf", nargs="*", default=HF_DEFAULT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    print(f"{'model':40s} {'params':>9s} {'build s':>8s} {'find s':>7s}  sites")
    for name in args.models:
        start = time.perf_counter()
        with torch.device("meta"):
            model = timm.create_model(name)
        build = time.perf_counter() - start
        _row(name, model, build, (1, 3, *timm.get_pretrained_cfg(name).input_size[1:]))
    first = None
    for spec in args.hf:
        shape = default_input_shape(spec)  # reads the config (imports its module)
        start = time.perf_counter()
        model = build_model(spec, device="meta")
        build = time.perf_counter() - start
        if first is None:  # the first build imports transformers' modeling code
            first = build
            start = time.perf_counter()
            model = build_model(spec, device="meta")
            build = time.perf_counter() - start
        _row(spec, model, build, shape)
    if first is not None:
        print(f"first transformers build (imports the modeling code): {first:.2f} s")


if __name__ == "__main__":
    main()
