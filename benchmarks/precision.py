"""Weight/activation precision options (torchao) against the fp32 model, side by side.

For a timm ResNet-18 and a small timm ViT, at batch 1 and 32, per precision option applied to
every linear (and, for int8 weights, every conv) layer: relative L2 error of the logits vs
fp32, stored weight bytes (``param_bytes``: data + scales + zero points) as a ratio to fp32,
and forward latency as a ratio to fp32 (and to bf16 on a GPU), every variant timed in turn in
the same rounds (``side_by_side`` of benchmarks/attention.py). ``--compile`` adds the same
ratios with every model under ``torch.compile``. Options that cannot run on the device are
listed with torchao's reason instead of a number.

    python benchmarks/precision.py --quick              # CPU: 64x64 images, ~2 min on 2 cores
    python benchmarks/precision.py --compile            # + torch.compile (minutes more)
    python benchmarks/precision.py --digits             # QAT vs PTQ accuracy on digits, 3 seeds
    python benchmarks/precision.py --digits --task tasks/digits_vit.yaml --epochs 8
    python benchmarks/precision.py --out bench.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics

import torch
from attention import side_by_side  # benchmarks/attention.py: the interleaved timer

from minsearch.catalog.precision import PRECISIONS
from minsearch.layers.deploy import deploy_problems, deployed
from minsearch.models import build_model
from minsearch.objectives.size import state_bytes
from minsearch.sites import find_sites
from minsearch.surgery import apply_

MODELS = {
    "resnet18": "timm:resnet18?num_classes=1000",
    "vit_small": "timm:vit_small_patch16_224?img_size={size}&num_classes=1000",
}


def genome(sites, option) -> dict:
    """``option`` (a name or a spec) at every linear and conv site where it applies."""
    name = option if isinstance(option, str) else option["name"]
    return {s.name: option for kind in ("linear", "conv") for s in sites.of_kind(kind)
            if name in s.options}


@torch.no_grad()
def bench_model(name: str, size: int, batches: tuple[int, ...], options: tuple[str, ...],
                reps: int, device: torch.device, compile_: bool) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(MODELS[name].format(size=size)).eval()
    x1 = torch.randn(1, 3, size, size)
    sites = find_sites(model, x1)
    model = model.to(device)
    variants, skipped = {"fp32": model}, {}
    if device.type == "cuda":
        variants["bf16"] = copy.deepcopy(model).to(torch.bfloat16)
    for option in options:
        if not genome(sites, option):
            skipped[option] = "offered on no layer of this model (see docs/precision.md)"
            continue
        candidate = copy.deepcopy(model)
        apply_(candidate, genome(sites, option), x1.to(device), discovery=sites)
        problems = deploy_problems(candidate, device)
        if problems:
            skipped[option] = problems[0].split(": ", 1)[1]
            continue
        variants[option] = deployed(candidate.eval())
    rows = [{"model": name, "size": size, "option": o, "skipped": why}
            for o, why in skipped.items()]
    fp32_bytes = state_bytes(model)
    for batch in batches:
        x = torch.randn(batch, 3, size, size, device=device)
        ref = model(x).float()
        inputs = {k: x.to(torch.bfloat16) if k == "bf16" else x for k in variants}
        runners = {k: (lambda m=m, x=inputs[k]: m(x)) for k, m in variants.items()}
        times = side_by_side(runners, reps, device)
        compiled = {}
        if compile_:
            fast = {k: torch.compile(m) for k, m in variants.items()}
            compiled = side_by_side({k: (lambda m=m, x=inputs[k]: m(x))
                                     for k, m in fast.items()}, reps, device)
        for option, m in variants.items():
            out = runners[option]().float()
            row = {"model": name, "size": size, "batch": batch, "option": option,
                   "rel_error": float((out - ref).norm() / ref.norm()),
                   "bytes_vs_fp32": fp32_bytes / state_bytes(m),
                   "ms": times[option] * 1e3,
                   "latency_vs_fp32": times[option] / times["fp32"]}
            if "bf16" in times:
                row["latency_vs_bf16"] = times[option] / times["bf16"]
            if compiled:
                row["compiled_latency_vs_fp32"] = compiled[option] / compiled["fp32"]
                row["compiled_ms"] = compiled[option] * 1e3
            rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    cols = [("model", "{}"), ("size", "{}"), ("batch", "{}"), ("option", "{}"),
            ("rel_error", "{:.2e}"), ("bytes_vs_fp32", "{:.2f}x"), ("ms", "{:.2f}"),
            ("latency_vs_fp32", "{:.2f}"), ("latency_vs_bf16", "{:.2f}"),
            ("compiled_ms", "{:.2f}"), ("compiled_latency_vs_fp32", "{:.2f}")]
    cols = [(k, f) for k, f in cols if any(k in r for r in rows if "skipped" not in r)]
    print("| " + " | ".join(k for k, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        if "skipped" not in r:
            print("| " + " | ".join(f.format(r[k]) if k in r else "" for k, f in cols) + " |")
    for r in rows:
        if "skipped" in r:
            print(f"- {r['model']} {r['option']}: not run here — {r['skipped']}")


def digits_accuracy(task_path: str, options: tuple[str, ...], seeds: tuple[int, ...],
                    epochs: int) -> list[dict]:
    """QAT vs PTQ on a digits task (``--task``): the parent is trained once; each
    (option, training mode, seed) candidate is fine-tuned ``epochs`` from it and its *deployed*
    accuracy measured on the test split; the unchanged parent is fine-tuned alike (keep)."""
    import tempfile

    from minsearch.tasks.candidate import build_candidate, example_input, load_or_train_parent
    from minsearch.tasks.config import load_task
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import evaluate, fit

    task = load_task(task_path)
    data = load_data(task.data)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        parent, _ = load_or_train_parent(task, data, cache)
    sites = find_sites(build_model(task.model), example_input(data, batch=2))
    rows = []
    for option in ("keep", *options):
        for training in (("qat", "ptq") if option != "keep" else ("-",)):
            accs = []
            for seed in seeds:
                run = task.replace(recipe=task.recipe.replace(seed=seed))
                spec = option if option == "keep" else {"name": option, "training": training}
                model, _ = build_candidate(run, {} if option == "keep" else genome(sites, spec),
                                           data, parent_state=parent)
                fit(model, data, run.recipe, epochs=epochs)
                accs.append(evaluate(deployed(model.eval()), data, data.test))
            rows.append({"option": option, "training": training, "seeds": list(seeds),
                         "accuracies": accs, "mean": statistics.mean(accs),
                         "sd": statistics.stdev(accs) if len(accs) > 1 else 0.0})
            print(f"{option:14s} {training:4s} " + " ".join(f"{a:.4f}" for a in accs)
                  + f"  mean {rows[-1]['mean']:.4f} sd {rows[-1]['sd']:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64x64 inputs (CPU)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--options", default=",".join(PRECISIONS))
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--digits", action="store_true", help="QAT vs PTQ accuracy on digits")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--task", default="tasks/digits_cnn.yaml", help="for --digits")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="write the rows as JSON")
    args = parser.parse_args()
    options = tuple(args.options.split(","))
    if args.digits:
        on_cpu = tuple(o for o in options if o in ("int8-weight", "int8-dynamic", "fp8-weight"))
        rows = digits_accuracy(args.task, on_cpu, (0, 1, 2), args.epochs)
    else:
        device = torch.device(args.device)
        gpu = f" {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
        print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"device {device}{gpu}, threads {torch.get_num_threads()}")
        size = 64 if args.quick else 224
        batches = tuple(int(b) for b in args.batches.split(","))
        rows = []
        for name in args.models.split(","):
            rows += bench_model(name, size, batches, options, args.reps, device, args.compile)
        print_table(rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
