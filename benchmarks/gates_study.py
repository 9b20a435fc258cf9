"""The gates study: norms and residuals removed or replaced, measured after fine-tuning.

    python benchmarks/gates_study.py [--seeds 0 1 2] [--quick] [--models vit cnn gpt]

For each model (the digits ViT and CNN tasks shipped in tasks/, and a char-level GPT on the
standard library's source), per seed: train the parent, then for each variant apply its genome
to a copy of the parent and fine-tune it with the same budget; ``ln-free`` instead freezes the
norms one at a time during its fine-tune and folds them away. Prints one markdown table per
model: mean ± std over seeds of the task metric, its tail (digits: worst-class accuracy;
GPT: 99th-percentile per-sequence loss), robustness, latency, parameters and peak memory.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from minsearch.objectives.latency import median_ms
from minsearch.objectives.memory import peak_bytes
from minsearch.surgery import apply_
from minsearch.surgery.ln_free import freezable_norms, remove_norms_

VARIANTS: dict[str, dict | None] = {
    "baseline": {},
    "no norms": {"norm:*": "identity"},
    "dyt": {"norm:*": "dyt"},
    "rezero": {"residual:*": "rezero"},
    "agu": {"pair:*": {"name": "agu", "init": 1.0}},
    "ln-free": None,  # freeze norms one at a time while fine-tuning, then fold
}
ROOT = Path(__file__).resolve().parent.parent


def param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# ---------------------------------------------------------------------------- digits tasks
def digits_runs(task_file: str, seed: int, quick: bool, cache: str) -> dict[str, dict]:
    from minsearch.objectives.measure import measure_all
    from minsearch.tasks.candidate import build_candidate, example_input, load_or_train_parent
    from minsearch.tasks.config import load_task
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import fit, train_steps

    task = load_task(ROOT / "tasks" / task_file)
    recipe = task.recipe.replace(seed=seed)
    if quick:
        recipe = recipe.replace(parent_epochs=5, epochs=1)
    measure = task.measure.replace(objectives=(
        "accuracy", "param_bytes", "latency_ms", "peak_mem_infer_bytes", "robustness"))
    task = task.replace(recipe=recipe, measure=measure)
    data = load_data(task.data)
    parent, _ = load_or_train_parent(task, data, cache)
    steps_per_epoch = max(1, len(data.train) // recipe.batch_size)
    out = {}
    for variant, genome in VARIANTS.items():
        torch.manual_seed(seed)
        model, _ = build_candidate(task, genome or {}, data, parent_state=parent)
        if genome is None:
            norms = len(freezable_norms(model, example_input(data, 2)))
            per_norm = max(1, recipe.epochs * steps_per_epoch // max(norms, 1))
            gen = torch.Generator().manual_seed(seed)
            remove_norms_(model, lambda m, n, gen=gen: train_steps(m, data, recipe, n, gen),
                          per_norm, example_input(data, 2))
        else:
            fit(model, data, recipe, epochs=recipe.epochs)
        values, _ = measure_all(model, data, task, torch.device("cpu"))
        values["worst_class"] = _worst_class_accuracy(model, data)
        out[variant] = values
    return out


@torch.no_grad()
def _worst_class_accuracy(model: nn.Module, data) -> float:
    model.eval()
    hits: dict[int, list[bool]] = {}
    for x, y in data.batches(data.test, 256):
        for label, ok in zip(y.tolist(), (model(x).argmax(-1) == y).tolist(), strict=True):
            hits.setdefault(label, []).append(ok)
    return min(sum(v) / len(v) for v in hits.values())


# ------------------------------------------------------------------------------- char GPT
GPT_CONFIG = dict(block_size=64, n_embd=64, n_head=4, n_layer=4)


def gpt_runs(seed: int, quick: bool, corpus) -> dict[str, dict]:
    from minsearch.text.gpt import char_gpt
    from minsearch.text.metrics import lm_metrics

    block = GPT_CONFIG["block_size"]
    parent_steps, tune_steps = (60, 20) if quick else (1500, 300)
    windows = corpus.windows("val", block, count=64 if quick else 512)
    torch.manual_seed(seed)
    parent = char_gpt(**GPT_CONFIG)
    _train_lm(parent, corpus, parent_steps, seed)
    out = {}
    for variant, genome in VARIANTS.items():
        model = copy.deepcopy(parent)
        example = windows[:2, :-1]
        if genome is None:
            per_norm = max(1, tune_steps // (2 * GPT_CONFIG["n_layer"] + 1))
            remove_norms_(model, lambda m, n: _train_lm(m, corpus, n, seed + 1), per_norm,
                          example)
        else:
            apply_(model, genome, example)
            _train_lm(model, corpus, tune_steps, seed + 1)
        values = lm_metrics(model, windows)
        x = windows[:1, :-1]
        model.eval()
        with torch.no_grad():
            values["latency_ms"] = median_ms(lambda m=model, x=x: m(x), 30, 5, torch.device("cpu"))
            batch = windows[:32, :-1]
            held = param_bytes(model) + batch.numel() * batch.element_size()
            values["peak_mem_infer_bytes"] = peak_bytes(lambda m=model, b=batch: m(b),
                                                        torch.device("cpu"), held)
        values["param_bytes"] = param_bytes(model)
        out[variant] = values
    return out


def _train_lm(model: nn.Module, corpus, steps: int, seed: int) -> None:
    from minsearch.tasks.config import RecipeConfig
    from minsearch.tasks.train import make_optimizer, train_step

    recipe = RecipeConfig(optimizer="adamw", lr=3e-3, weight_decay=0.01, grad_clip=1.0)
    gen = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, recipe)
    model.train()
    for _ in range(steps):
        x, y = corpus.random_batch(GPT_CONFIG["block_size"], 32, gen)  # (B, T) each
        train_step(model, optimizer, x, y, recipe)


# -------------------------------------------------------------------------------- report
COLUMNS = {
    "vit": ["accuracy", "worst_class", "robustness", "latency_ms", "param_bytes",
            "peak_mem_infer_bytes"],
    "gpt": ["loss", "loss_p99", "noisy_loss", "latency_ms", "param_bytes",
            "peak_mem_infer_bytes"],
}
COLUMNS["cnn"] = COLUMNS["vit"]


def table(name: str, runs: list[dict[str, dict]]) -> str:
    cols = COLUMNS[name]
    lines = [f"| {name} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for variant in VARIANTS:
        cells = []
        for col in cols:
            vals = [r[variant][col] for r in runs]
            mean = statistics.fmean(vals)
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            if col.endswith("bytes"):
                cells.append(f"{mean / 1024:.0f} KiB")
            elif col == "latency_ms":
                cells.append(f"{mean:.2f}")
            else:
                cells.append(f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["vit", "cnn", "gpt"],
                        choices=["vit", "cnn", "gpt"])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners: dict[str, Callable[[int], dict]] = {}
    cache = tempfile.mkdtemp(prefix="gates-study-")
    runners["vit"] = lambda s: digits_runs("digits_vit.yaml", s, args.quick, cache)
    runners["cnn"] = lambda s: digits_runs("digits_cnn.yaml", s, args.quick, cache)
    if "gpt" in args.models:
        from minsearch.text.corpus import load_corpus

        corpus = load_corpus(max_chars=300_000 if args.quick else 2_000_000)
        runners["gpt"] = lambda s: gpt_runs(s, args.quick, corpus)
    for name in args.models:
        start = time.perf_counter()
        runs = [runners[name](seed) for seed in args.seeds]
        print(f"\n{table(name, runs)}\n\n({len(args.seeds)} seeds, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
