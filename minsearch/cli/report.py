"""``minsearch report RUN_DIR``: which components can go, and what each option does."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="the prunable-components report of a run",
                              description="Per gene option: effect on every objective (marginal "
                                          "means, Optuna importances) and whether it stays "
                                          "within the task's limit on its first objective "
                                          "(accuracy drop, loss increase). Writes report.md "
                                          "and report.json into the run folder.")
    p.add_argument("run_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markdown import Markdown

    from minsearch.search.integrity import check_run_folder
    from minsearch.search.plan import load_plan
    from minsearch.search.report import report_run
    from minsearch.search.run_dir import RunDir

    run_dir = RunDir.open(args.run_dir)
    check_run_folder(run_dir, "report")  # a damaged file: one line naming it
    path = report_run(load_plan(run_dir))
    Console().print(Markdown(path.read_text()))
    return 0
