"""Accuracy of each attention precision option after fine-tuning a small digits ViT.

Protocol (per seed): train a 2-block ViT on scikit-learn's 8x8 digits in fp32; then, for each
option, put it on every attention site with ``apply_(model, {"attention:*": option})``, measure
test accuracy right away (post-training quantization, "ptq") and after fine-tuning with the
option on (fake-quant forward, straight-through gradients, learned P scales), evaluated in eval
mode (which takes the real int8 path on CPU for int8 Q·K^T). ``fp32`` gets the same fine-tuning,
so every option is compared with an equally trained fp32 model.

    python benchmarks/attention_finetune.py                 # 5 seeds, ~2-3 min on 2 CPU cores
    python benchmarks/attention_finetune.py --seeds 1 --out results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import timm
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from minsearch.surgery import apply_

OPTIONS = ("fp32", "bf16", "fp8", "int8", "sage", "qaas", "ternary")


def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """1797 images (1, 8, 8) scaled to [0, 1]; a fixed 80/20 split per seed."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(y))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def make_vit() -> torch.nn.Module:
    return timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=2, in_chans=1,
                             num_classes=10, embed_dim=32, depth=2, num_heads=2)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
          seed: int, batch: int = 64) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()


def run_seed(seed: int, options: tuple[str, ...], epochs: int, ft_epochs: int) -> dict:
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits(seed)
    base = make_vit()
    train(base, xtr, ytr, epochs, lr=3e-3, seed=seed)
    result = {"pretrained_fp32": accuracy(base, xte, yte)}
    for name in options:
        model = copy.deepcopy(base)
        report = apply_(model, {"attention:*": name}, xtr[:2])
        ptq = accuracy(model, xte, yte)
        train(model, xtr, ytr, ft_epochs, lr=1e-3, seed=seed + 1)
        result[name] = {"ptq": ptq, "finetuned": accuracy(model, xte, yte),
                        "sites": len(report)}
    return result


def summarise(runs: list[dict], options: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in options:
        ptq = [r[name]["ptq"] * 100 for r in runs]
        ft = [r[name]["finetuned"] * 100 for r in runs]
        fp32 = [r["fp32"]["finetuned"] * 100 for r in runs]
        rows.append({
            "option": name,
            "ptq_mean": statistics.mean(ptq),
            "finetuned_mean": statistics.mean(ft),
            "finetuned_std": statistics.stdev(ft) if len(ft) > 1 else 0.0,
            "delta_vs_fp32": statistics.mean(f - b for f, b in zip(ft, fp32, strict=True)),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40, help="fp32 pre-training epochs")
    parser.add_argument("--ft-epochs", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--out", help="write the per-seed results and the summary as JSON")
    args = parser.parse_args()
    options = tuple(args.options.split(","))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(seed, options, args.epochs, args.ft_epochs))
        print(f"seed {seed}: " + ", ".join(f"{k} {v['finetuned']:.3f}" for k, v in
                                          runs[-1].items() if isinstance(v, dict)), flush=True)
    rows = summarise(runs, options)
    pre = [r["pretrained_fp32"] * 100 for r in runs]
    print(f"digits ViT (2 blocks, dim 32, 2 heads, 17 tokens); {args.seeds} seeds; fp32 "
          f"pre-training {args.epochs} epochs -> {statistics.mean(pre):.2f}% test; "
          f"fine-tuning {args.ft_epochs} epochs per option")
    print(f"{'option':8s} {'PTQ %':>7s} {'fine-tuned %':>14s} {'vs fp32 (pp)':>13s}")
    for r in rows:
        print(f"{r['option']:8s} {r['ptq_mean']:7.2f} {r['finetuned_mean']:8.2f} ± "
              f"{r['finetuned_std']:4.2f} {r['delta_vs_fp32']:+13.2f}")
    print(f"took {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "runs": runs, "summary": rows}, f, indent=2)


if __name__ == "__main__":
    main()
