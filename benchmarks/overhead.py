"""Per-trial orchestration overhead: Ray Tune + Optuna + MLflow against a plain loop.

1. Runs two real searches (``--small`` and ``--trials`` trials, one at a time so both sides
   use one core the same way) and times each end to end: start-up, parent training, trials,
   result files.
2. Trains and measures the very same genomes as the larger search in a plain Python loop in
   this process: build the candidate from the cached parent, fine-tune, measure.
3. Prints the end-to-end ratio (parent training excluded from both sides) and the marginal
   cost of one more trial (the difference of the two searches, which cancels the fixed
   start-up: Ray, MLflow tables, validation, plots, report) against the loop's cost per trial.

    python benchmarks/overhead.py [--task tasks/digits_vit.yaml] [--trials 12] [--small 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(run_dir: Path) -> tuple[float, int]:
    """Train and measure every trial's genome of ``run_dir`` sequentially; seconds, count."""
    import torch

    from minsearch.objectives import measure_all
    from minsearch.search.plan import load_plan
    from minsearch.search.run_dir import RunDir
    from minsearch.search.space import genome_rules
    from minsearch.tasks.candidate import build_candidate, load_or_train_parent
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import fit

    torch.set_num_threads(1)
    plan = load_plan(RunDir.open(run_dir))
    data = load_data(plan.task.data)
    parent, _ = load_or_train_parent(plan.task, data, plan.run.parent_dir)  # cached: no training
    frame = plan.run.read_results()
    genomes = [genome_rules(plan.genes, {g: row[f"gene:{g}"] for g in plan.gene_names})
               for _, row in frame.iterrows()]
    device = torch.device("cpu")
    start = time.perf_counter()
    for genome in genomes:
        model, _ = build_candidate(plan.task, genome, data, parent_state=parent, device=device)
        fit(model, data, plan.task.recipe, epochs=plan.task.recipe.epochs, device=device)
        measure_all(model, data, plan.task, device)
    return time.perf_counter() - start, len(genomes)


def timed_search(task_path: Path, space: str, trials: int, run_dir: Path) -> tuple[float, float]:
    """Wall seconds of a whole search, and the part spent training its parent."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minsearch.cli.main", "search", str(task_path),
                    "--space", space, "--trials", str(trials), "--out", str(run_dir),
                    "--quiet", "--cpus", "2"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    from minsearch.search.run_dir import RunDir

    return wall, RunDir.open(run_dir).read_settings().parent["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=str(ROOT / "tasks" / "digits_vit.yaml"))
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "digits_vit.yaml"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--small", type=int, default=4)
    args = parser.parse_args()

    import yaml

    from minsearch.search.multifidelity import without_strategy

    with tempfile.TemporaryDirectory(prefix="minsearch-overhead-") as tmp:
        task = yaml.safe_load(Path(args.task).read_text())
        # sequential and one seed per trial, like the plain loop
        task.update(max_concurrent=1, cpus_per_trial=1, seeds=1)
        task_path = Path(tmp, "task.yaml")
        task_path.write_text(yaml.safe_dump(task))
        space = yaml.safe_load(Path(args.space).read_text())
        space_path = Path(tmp, "space.yaml")  # one Ray trial per genome, like the plain loop
        space_path.write_text(yaml.safe_dump(without_strategy(space)))
        small_wall, small_parent = timed_search(task_path, str(space_path), args.small,
                                                Path(tmp, "small"))
        wall, parent_s = timed_search(task_path, str(space_path), args.trials,
                                      Path(tmp, "run"))
        loop_s, n = plain_loop(Path(tmp, "run"))

    search_s = wall - parent_s
    marginal = ((wall - parent_s) - (small_wall - small_parent)) / (args.trials - args.small)
    print(f"trials: {n} (one at a time, 1 thread each); task {Path(args.task).name}")
    print(f"search, end to end:       {wall:7.1f} s  (parent training {parent_s:.1f} s, "
          f"excluded below)")
    print(f"search without parent:    {search_s:7.1f} s  = {search_s / n:.2f} s per trial")
    print(f"plain loop, same genomes: {loop_s:7.1f} s  = {loop_s / n:.2f} s per trial")
    print(f"ratio search / plain:     {search_s / loop_s:7.2f}x  (end to end, start-up "
          f"included)")
    print(f"one more trial costs:     {marginal:7.2f} s in the search vs {loop_s / n:.2f} s "
          f"in the loop: {marginal - loop_s / n:+.2f} s orchestration per trial "
          f"(ratio {marginal / (loop_s / n):.2f}x)")
    print(f"fixed start-up + finish:  {search_s - marginal * n:7.1f} s (Ray, MLflow tables, "
          f"validation, plots, report)")


if __name__ == "__main__":
    main()
