"""``minsearch front RUN_DIR [--json]``: the Pareto front of a (running or finished) search."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("front", help="print the Pareto front of a run",
                              description="Print the non-dominated feasible trials of a run "
                                          "folder, with the hypervolume and its reference point.")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def front_json(frame, summary: dict) -> dict:
    """The front summary with each member's genes and objectives (``--json``)."""
    genes = [c for c in frame.columns if c.startswith("gene:")]
    members = []
    for _, row in frame[frame["pareto"]].iterrows():
        members.append({"trial_id": str(row["trial_id"]), "baseline": bool(row["baseline"]),
                        "genes": {g[5:]: str(row[g]) for g in genes},
                        "objectives": {k: float(row[k]) for k in summary["directions"]}})
    return {**summary, "front": members}


def print_front(run_dir, frame, summary: dict) -> None:
    """The front table of a run (``frame``: its results, ``summary``: its front summary)."""
    from rich.console import Console

    from minsearch.search.display import front_table, summary_line
    from minsearch.search.run_dir import describe_delivered

    console = Console()
    if not console.is_terminal:
        console.width = 160  # piped or logged: do not squeeze the table into 80 columns
    counts = frame["state"].value_counts().to_dict()
    console.print(f"run folder: {run_dir.path}  ·  trials: "
                  + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())))
    parent = run_dir.read_settings().parent or {}
    if "as_delivered" in parent:
        console.print(f"parent: your weights {parent['weights']}, {describe_delivered(parent)}")
    console.print(front_table(frame, summary["directions"], "Pareto front (feasible trials)",
                              limit=50))
    console.print(summary_line(summary))


def run(args: argparse.Namespace) -> int:
    from minsearch.search.integrity import check_run_folder
    from minsearch.search.run_dir import RunDir

    run_dir = RunDir.open(args.run_dir)
    check_run_folder(run_dir, "front")  # a damaged file: one line naming it
    frame, summary = run_dir.read_results(), run_dir.read_front_summary()
    if args.json:
        print(json.dumps(front_json(frame, summary), indent=2, default=float))
    else:
        print_front(run_dir, frame, summary)
    return 0
