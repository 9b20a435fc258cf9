"""``minsearch front RUN_DIR [--json]``: the Pareto front of a (running or finished) search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("front", help="print the Pareto front of a run",
                              description="Print the non-dominated feasible trials of a run "
                                          "folder, with the hypervolume and its reference point.")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def front_json(run_dir: str | Path) -> dict:
    from minsearch.search.results import FRONT_JSON, read_results

    run_dir = Path(run_dir)
    frame = read_results(run_dir)
    summary = json.loads((run_dir / FRONT_JSON).read_text())
    genes = [c for c in frame.columns if c.startswith("gene:")]
    members = []
    for _, row in frame[frame["pareto"].astype(str).str.lower() == "true"].iterrows():
        members.append({"trial_id": str(row["trial_id"]),
                        "baseline": str(row["baseline"]).lower() == "true",
                        "genes": {g[5:]: str(row[g]) for g in genes},
                        "objectives": {k: float(row[k]) for k in summary["directions"]}})
    return {**summary, "front": members}


def print_front(run_dir: str | Path) -> None:
    from rich.console import Console

    from minsearch.search.display import front_table, summary_line
    from minsearch.search.results import read_results

    run_dir = Path(run_dir)
    frame = read_results(run_dir)
    frame["pareto"] = frame["pareto"].astype(str).str.lower() == "true"
    frame["baseline"] = frame["baseline"].astype(str).str.lower() == "true"
    summary = json.loads((run_dir / "front.json").read_text())
    console = Console()
    if not console.is_terminal:
        console.width = 160  # piped or logged: do not squeeze the table into 80 columns
    counts = frame["state"].value_counts().to_dict()
    console.print(f"run folder: {run_dir}  ·  trials: "
                  + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())))
    console.print(front_table(frame, summary["directions"], "Pareto front (feasible trials)",
                              limit=50))
    console.print(summary_line(summary))


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(front_json(args.run_dir), indent=2, default=float))
    else:
        print_front(args.run_dir)
    return 0
