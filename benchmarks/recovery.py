"""How fast surgery damage is recovered: plain cross-entropy vs distillation from the parent.

Protocol, per model (the shipped ``tasks/digits_cnn.yaml`` and ``tasks/digits_vit.yaml``) and
per seed s: train the parent with the task's recipe and ``seed: s`` (cached under ``--cache``;
``minsearch.tasks.candidate.load_or_train_parent``); build each candidate from it with
``build_candidate`` (the search's own path: fresh model, parent weights, ``apply_``); measure
its test accuracy right after surgery (N = 0) and after N fine-tuning steps, with the task's
recipe (AdamW, constant lr, batch 64) and ``seed: s``, once with plain cross-entropy and once
per ``distill`` setting (the teacher: the same parent). A constant lr makes one run to the
largest N the same as separate runs to each N, so each (candidate, seed, recipe) trains once
and is evaluated along the way.

Candidates: ``drop-branch`` on the first residual add (one block's branch gone: depth
pruning; the first, since dropping the ResNet's last block costs nothing on digits), every
norm ``identity``, every activation swapped (ViT: GELU -> ``relu``; the ResNet has ReLUs
already: -> ``gelu-tanh``).

    nice -n 10 python benchmarks/recovery.py    # 3 seeds: 8.5 min (parents cached), 14 from scratch
    python benchmarks/recovery.py --seeds 1 --steps 0,10 --models vit --out recovery.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from minsearch.sites import find_sites
from minsearch.tasks.candidate import build_candidate, example_input, load_or_train_parent
from minsearch.tasks.config import TaskConfig, load_task
from minsearch.tasks.data import load_data
from minsearch.tasks.distill import build_teacher
from minsearch.tasks.train import evaluate
from minsearch.tasks.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"cnn": ROOT / "tasks/digits_cnn.yaml", "vit": ROOT / "tasks/digits_vit.yaml"}
# The activation swap: to ReLU, or for a model that has ReLUs already (the ResNet), to GELU.
SWAP = {"cnn": "gelu-tanh", "vit": "relu"}
RECIPES = {"CE": None, "KD w0.5 T2": {"weight": 0.5, "temperature": 2.0},
           "KD w0.9 T4": {"weight": 0.9, "temperature": 4.0}}


def candidates(task: TaskConfig, data, swap: str) -> dict[str, dict[str, str]]:
    """Candidate name -> genome: the first residual's branch dropped, norms removed, every
    activation swapped to ``swap``."""
    from minsearch.models import build_model

    sites = find_sites(build_model(task.model), example_input(data, batch=2))
    first = sites.of_kind("residual")[0].name
    return {f"drop-branch {first}": {first: "drop-branch"}, "norms identity": {"norm:.*":
            "identity"}, f"activations {swap}": {"activation:.*": swap}}


def recover(task: TaskConfig, data, genome: dict, parent: dict, distill: dict | None,
            steps: list[int]) -> tuple[list[float], float]:
    """Test accuracy after each number of ``steps``; seconds per optimiser step."""
    recipe = task.recipe.replace(distill=distill, epochs=None, steps=max(max(steps), 1))
    task = task.model_copy(update={"recipe": recipe})
    model, _ = build_candidate(task, genome, data, parent_state=parent)
    teacher = build_teacher(task, parent) if distill else None
    trainer = Trainer(model, data, recipe, teacher=teacher)
    stream = trainer.passes(0)  # endless shuffled passes over the training split
    accuracies, seconds = [], 0.0
    for n in steps:
        start = time.perf_counter()
        trainer.run(stream, steps=n - trainer.step)
        seconds += time.perf_counter() - start
        accuracies.append(evaluate(model, data, data.test))
    return accuracies, seconds / max(trainer.step, 1)


def run(models: list[str], seeds: int, steps: list[int], cache: Path) -> list[dict]:
    rows = []
    for name in models:
        base = load_task(MODELS[name])
        data = load_data(base.data)
        for seed in range(seeds):
            task = base.model_copy(update={"recipe": base.recipe.replace(seed=seed)})
            parent, info = load_or_train_parent(task, data, cache)
            teacher = build_teacher(task, parent)
            parent_acc = evaluate(teacher, data, data.test)
            for cand, genome in candidates(task, data, SWAP[name]).items():
                for recipe, distill in RECIPES.items():
                    acc, per_step = recover(task, data, genome, parent, distill, steps)
                    rows.append({"model": name, "seed": seed, "candidate": cand,
                                 "recipe": recipe, "parent": parent_acc, "steps": steps,
                                 "accuracy": acc, "seconds_per_step": per_step})
                    print(f"{name} seed {seed} {cand:28s} {recipe:11s} parent "
                          f"{parent_acc:.3f} -> " + " ".join(f"{a:.3f}" for a in acc),
                          flush=True)
    return rows


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):5.1f} ± {100 * sd:3.1f}"


def table(rows: list[dict], steps: list[int]) -> list[str]:
    """One markdown row per (model, candidate, recipe): test accuracy % (mean ± sd over
    seeds) at each N."""
    head = "| model | candidate | recipe | parent | " + " | ".join(f"N={n}" for n in steps) + \
        " | s/step |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = dict.fromkeys((r["model"], r["candidate"], r["recipe"]) for r in rows)
    for model, cand, recipe in keys:
        group = [r for r in rows if (r["model"], r["candidate"], r["recipe"]) ==
                 (model, cand, recipe)]
        cells = [mean_sd([r["accuracy"][i] for r in group]) for i in range(len(steps))]
        per_step = statistics.mean(r["seconds_per_step"] for r in group) * 1000
        lines.append(f"| {model} | {cand} | {recipe} | {mean_sd([r['parent'] for r in group])}"
                     f" | " + " | ".join(cells) + f" | {per_step:.0f} ms |")
    return lines


def gains(rows: list[dict], steps: list[int]) -> list[str]:
    """Each distillation recipe minus CE at each N: mean ± sd of the paired differences
    (same model, candidate and seed; percentage points), per model and over both."""
    ce = {(r["model"], r["candidate"], r["seed"]): r["accuracy"] for r in rows
          if r["recipe"] == "CE"}
    lines = []
    for model in [*dict.fromkeys(r["model"] for r in rows), "all"]:
        for recipe in [r for r in RECIPES if r != "CE"]:
            paired = [r for r in rows if r["recipe"] == recipe and model in ("all", r["model"])]
            cells = []
            for i, n in enumerate(steps):
                diffs = [r["accuracy"][i] - ce[(r["model"], r["candidate"], r["seed"])][i]
                         for r in paired]
                cells.append(f"N={n}: {mean_sd(diffs).strip()}")
            lines.append(f"{model} {recipe} - CE, points ({len(paired)} pairs): "
                         + ", ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,vit")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", default="0,10,30,100,200", help="fine-tuning steps to report")
    parser.add_argument("--cache", default="runs/recovery-parents", help="trained parents")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write every row as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted(int(n) for n in args.steps.split(","))
    start = time.perf_counter()
    rows = run(args.models.split(","), args.seeds, steps, Path(args.cache))
    print(f"\ntest accuracy % (359 digits), mean ± sd over {args.seeds} seed(s) (parent and "
          f"fine-tuning seed), after N fine-tuning steps (batch 64, AdamW, constant lr):")
    print("\n".join(table(rows, steps)))
    print("\n".join(gains(rows, steps)))
    print(f"took {time.perf_counter() - start:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
