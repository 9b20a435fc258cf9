"""The live search, default strategy against ``strategy: multifidelity`` at the same compute.

Runs two real searches of one task, one after the other: the space's genes and sampler with
``strategy: default`` (``--trials`` genomes, each trained on every seed of the task for its
full ``epochs``), then the same space
with ``strategy: multifidelity``, ``--rungs``, ``--reduction`` and ``budget_epochs`` set to
the first search's epoch-trainings (``--genomes`` caps the genomes it may screen). Prints, side
by side: wall seconds, Ray trials, genomes screened and at the full budget, epoch-trainings
spent, front size and hypervolume (objectives divided by each run's own baseline, the run
folder's figure; one search seed per strategy: no spread).

    python benchmarks/multifidelity_live.py [--task tasks/digits_vit.yaml]
        [--space search_spaces/digits_vit.yaml] [--trials 8] [--genomes 40]
        [--rungs 1x1+0.2,2x1+0.1,8x3] [--reduction 3]

``--rungs``: EPOCHSxSEEDS[+SLACK], the replay's tuned default (``benchmarks/quality_replay.py``
``default_halving``) unless given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from minsearch.search.multifidelity import without_strategy

ROOT = Path(__file__).resolve().parents[1]


def run(task: Path, space: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minsearch.cli.main", "search", str(task), "--space",
                    str(space), "--out", str(out), "--quiet"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(out: Path, seconds: float) -> dict[str, float]:
    import pandas as pd

    frame = pd.read_csv(out / "results.csv")
    front = json.loads((out / "front.json").read_text())
    trials = len(list((out / "tune").glob("run_trial_*")))
    full = frame["state"] == "COMPLETE"
    return {"wall seconds": seconds, "Ray trials": trials, "genomes screened": len(frame),
            "genomes at full budget": int(full.sum()),
            "epoch-trainings": int(frame["epochs"].fillna(0).sum()),
            "front size": len(front["front"]), "hypervolume": front.get("hypervolume") or 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tasks/digits_vit.yaml")
    parser.add_argument("--space", default="search_spaces/digits_vit.yaml")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--genomes", type=int, default=40)
    parser.add_argument("--rungs", default="1x1+0.2,2x1+0.1,8x3",
                        help="EPOCHSxSEEDS[+SLACK],...")
    parser.add_argument("--reduction", type=float, default=3.0)
    args = parser.parse_args()
    task = yaml.safe_load((ROOT / args.task).read_text())
    seeds = task.get("seeds", 1)
    seeds = seeds if isinstance(seeds, int) else len(seeds)
    budget = args.trials * seeds * task["epochs"]
    space = yaml.safe_load((ROOT / args.space).read_text())
    rungs = []
    for text in args.rungs.split(","):
        size, _, slack = text.partition("+")
        epochs, seeds = map(int, size.split("x"))
        rungs.append({"epochs": epochs, "seeds": seeds, "slack": float(slack or 0)})
    with tempfile.TemporaryDirectory(prefix="minsearch-mf-") as tmp:
        tmp = Path(tmp)
        default = tmp / "default.yaml"
        default.write_text(yaml.safe_dump(dict(without_strategy(space), trials=args.trials)))
        halving = tmp / "multifidelity.yaml"
        halving.write_text(yaml.safe_dump(dict(
            space, trials=args.genomes, strategy="multifidelity", rungs=rungs,
            reduction=args.reduction, budget_epochs=budget)))
        rows = {"default": summary(tmp / "d", run(ROOT / args.task, default, tmp / "d")),
                "multifidelity": summary(tmp / "m", run(ROOT / args.task, halving, tmp / "m"))}
    print(f"{args.task}, {args.space}: default {args.trials} trials x {seeds} seeds x "
          f"{task['epochs']} epochs; multifidelity rungs {args.rungs}, reduction "
          f"{args.reduction:g}, budget_epochs {budget}, at most {args.genomes} genomes")
    print(f"{'':26}{'default':>12}{'multifidelity':>15}{'ratio':>8}")
    for key in rows["default"]:
        a, b = rows["default"][key], rows["multifidelity"][key]
        ratio = f"{b / a:8.2f}" if a else f"{'-':>8}"
        print(f"{key:26}{a:12.4g}{b:15.4g}{ratio}")


if __name__ == "__main__":
    main()
