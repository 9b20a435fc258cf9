"""``minsearch resume RUN_DIR``: continue a search whose driver stopped."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "resume", help="continue a killed or interrupted search",
        description="Restore the Ray Tune experiment in RUN_DIR and finish its remaining trials; "
                    "finished trials are not run again.")
    p.add_argument("run_dir")
    p.add_argument("--address", help="join a Ray cluster instead of the run's original choice")
    p.add_argument("--cpus", type=int, help="CPUs for the local Ray")
    p.add_argument("--quiet", action="store_true", help="no live display")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minsearch.cli.front import print_front
    from minsearch.search.controller import resume_search
    from minsearch.search.run_dir import RunDir

    outcome = resume_search(RunDir.open(args.run_dir), address=args.address,
                            num_cpus=args.cpus, live=not args.quiet)
    print_front(outcome.run, outcome.frame, outcome.summary)
    return 0
