"""``minsearch search TASK --space SPACE``: run a search and print its front."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="search which components of a model can go; prints the Pareto front",
        description="Train and measure candidates proposed by an Optuna sampler, run as Ray "
                    "Tune trials; write a run folder with results, front and report.")
    p.add_argument("task", help="task YAML (model, data, recipe, objectives)")
    p.add_argument("--space", required=True, help="search-space YAML (genes, sampler, trials)")
    p.add_argument("--trials", type=int, help="number of trials (overrides the space file)")
    p.add_argument("--out", help="run folder (default: runs/<task>-<time>)")
    p.add_argument("--address", help="join a Ray cluster (e.g. 'auto'); default: local Ray on "
                                     "127.0.0.1 only")
    p.add_argument("--cpus", type=int, help="CPUs for the local Ray (default: all)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite in the run folder)")
    p.add_argument("--storage", metavar="URI",
                   help="keep Ray Tune's checkpoints and experiment at URI/<run name> (s3://, "
                        "gs://, any pyarrow file system) instead of RUN_DIR/tune: for a "
                        "cluster without a shared disk (docs/distributed.md)")
    p.add_argument("--quiet", action="store_true", help="no live display")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minsearch.cli.front import print_front
    from minsearch.errors import UserError
    from minsearch.search.controller import run_search
    from minsearch.search.plan import check_inputs
    from minsearch.search.run_dir import RunDir
    from minsearch.search.storage import open_uri

    if args.out is not None:
        RunDir.new(args.out)  # a mistaken --out is found before the checks that take seconds
    if args.storage is not None:
        open_uri(args.storage)  # a mistaken URI too
    inputs = check_inputs(args.task, args.space, trials=args.trials,
                          local=args.address is None)
    if args.storage is not None and inputs.space.strategy == "multifidelity":
        raise UserError(f"`strategy: multifidelity` keeps each genome's rung checkpoints in "
                        f"the run folder, which every node must see, so it cannot run with "
                        f"`--storage {args.storage}`; put --out on a shared disk instead (no "
                        f"--storage), or use the default strategy.")
    run_dir = RunDir.new(args.out or RunDir.default_path(inputs.task.name))
    outcome = run_search(inputs, run_dir, address=args.address, num_cpus=args.cpus,
                         live=not args.quiet, tracking_uri=args.tracking_uri,
                         storage=args.storage)
    print_front(outcome.run, outcome.frame, outcome.summary)
    return 0
