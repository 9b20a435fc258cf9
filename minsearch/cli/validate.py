"""``minsearch validate TASK --space SPACE``: everything ``search`` checks, without training.

Loads the task and the space (with its plugins), builds the model and runs it on a batch of
the data, resolves every gene against the model's sites and every option at every site, builds
the sampler, and checks the devices: in seconds, without starting Ray, writing nothing. Exit 0
with a short summary when the search would start; exit 2 with the one-line error otherwise.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "validate", help="check a task and a space as `search` would, without training",
        description="Run every check `minsearch search` makes before it trains (task, space, "
                    "plugins, model, data, sites, options, sampler, devices) in seconds, "
                    "without starting Ray and without writing anything.")
    p.add_argument("task", help="task YAML (model, data, recipe, objectives)")
    p.add_argument("--space", required=True, help="search-space YAML (genes, sampler, trials)")
    p.add_argument("--trials", type=int, help="number of trials (overrides the space file)")
    p.add_argument("--out", help="check that a search could use this run folder")
    p.add_argument("--address", help="check for a search joining this Ray cluster (the GPUs "
                                     "per trial are then the cluster's to find)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from minsearch.search.plan import check_inputs
    from minsearch.search.run_dir import RunDir

    start = time.perf_counter()
    if args.out is not None:
        RunDir.new(args.out)
    inputs = check_inputs(args.task, args.space, trials=args.trials,
                          local=args.address is None)
    task, space = inputs.task, inputs.space
    sites = sum(len(g.sites) for g in inputs.genes)
    sampler = space.sampler + (f" {space.sampler_params}" if space.sampler_params else "")
    arrows = ", ".join(f"{k} {'↑' if d == 'max' else '↓'}" for k, d in inputs.directions.items())
    print(f"task {task.name}: {task.model}"
          + (f" with weights {task.weights.describe()} (they fit)" if task.weights else ""))
    print(f"genes: {len(inputs.genes)} over {sites} sites ("
          + ", ".join(f"{g.name}: {len(g.labels)} options" for g in inputs.genes) + ")")
    print(f"space: {inputs.space_size:,} genomes; {space.trials} trials with {sampler}, "
          f"seed {space.seed}" + (f"; plugins: {', '.join(space.plugins)}"
                                  if space.plugins else ""))
    print(f"objectives: {arrows}; constraint: {inputs.constraint.describe()}")
    print(f"ok: the search would start (checked in {time.perf_counter() - start:.1f} s)")
    return 0
