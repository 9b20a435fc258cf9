"""``minsearch ln-free TASK.yaml``: a norm-free model for inference.

Trains (or reuses) the task's parent, freezes its norms one at a time while fine-tuning
(with the task's recipe: schedule, precision, and ``distill`` from the parent if set),
folds them into the neighbouring linear/conv layers, and exports the result. Reload with
``minsearch.tasks.candidate.load_candidate(FILE)``: no normalization layer is left in it.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ln-free", help="remove every norm of a task's model for inference",
                              description=__doc__.splitlines()[0])
    p.add_argument("task", help="task yaml, e.g. tasks/digits_vit.yaml")
    p.add_argument("--steps-per-norm", type=int, default=20,
                   help="fine-tuning steps after freezing each norm (default 20)")
    p.add_argument("--out", default="ln_free.pt", help="exported model (default ln_free.pt)")
    p.add_argument("--cache", default="runs/parent-cache", help="where the parent is cached")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from minsearch.surgery.ln_free import remove_norms_
    from minsearch.tasks.candidate import (
        build_candidate,
        example_input,
        export_blob,
        load_or_train_parent,
    )
    from minsearch.tasks.config import load_task
    from minsearch.tasks.data import load_task_data
    from minsearch.tasks.distill import build_teacher
    from minsearch.tasks.train import evaluate, train_steps

    task = load_task(args.task)
    data = load_task_data(task)
    parent, _ = load_or_train_parent(task, data, args.cache)
    model, _ = build_candidate(task, {}, data, parent_state=parent)
    before = evaluate(model, data, data.test)
    generator = torch.Generator().manual_seed(task.recipe.seed)
    teacher = build_teacher(task, parent) if task.recipe.distill else None

    def steps(m, n: int) -> None:
        train_steps(m, data, task.recipe, n, generator, teacher=teacher)

    example = example_input(data, batch=2)
    report = remove_norms_(model, steps, args.steps_per_norm, example)
    after = evaluate(model, data, data.test)
    for fold in report.folds:
        where = ", ".join(fold.into) if fold.folded else f"not folded: {fold.reason}"
        print(f"{fold.norm:32s} -> {where}")
    print(f"test accuracy: parent {before:.4f}, norm-free {after:.4f} "
          f"({len(report.frozen)} norms frozen, {len(report.remaining)} left)")
    folded = {f.norm for f in report.folds if f.folded}
    genome = {name: "identity" if {name, f"{name}.norm"} & folded else "frozen"
              for name in report.frozen}  # a fused norm+act folds as `name.norm`
    dtype = str(example.dtype).removeprefix("torch.")  # int64 for char codes
    summary = {"before": before, "after": after, "remaining": report.remaining}
    torch.save(export_blob(task.model, genome, model.state_dict(), tuple(example.shape), dtype,
                           norm_free=summary), args.out)
    print(f"wrote {args.out}; load it with minsearch.tasks.candidate.load_candidate")
    return 0
