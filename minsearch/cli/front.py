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
    """The front summary with each member's genes, objectives (means), their intervals, the
    worsening with its interval, feasibility and stability; and the uncertain contenders
    (``--json``)."""
    genes = [c for c in frame.columns if c.startswith("gene:")]

    def member(row) -> dict:
        names = summary["directions"]
        return {"trial_id": str(row["trial_id"]), "baseline": bool(row["baseline"]),
                "genes": {g[5:]: str(row[g]) for g in genes},
                "objectives": {k: float(row[k]) for k in names},
                "intervals": {k: [_number(row.get(f"{k}:lo")), _number(row.get(f"{k}:hi"))]
                              for k in names},
                "worsening": [_number(row.get(c)) for c in ("worsening", "worsening:lo",
                                                            "worsening:hi")],
                "feasibility": str(row.get("feasibility", "")),
                "stability": _number(row.get("stability"))}

    contenders = frame[frame["contender"]] if "contender" in frame else frame.iloc[:0]
    return {**summary, "front": [member(r) for _, r in frame[frame["pareto"]].iterrows()],
            "contenders": [member(r) for _, r in contenders.iterrows()]}


def _number(value) -> float | None:
    """A float for JSON; None for a missing value or NaN (no interval)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def print_front(run_dir, frame, summary: dict) -> None:
    """The front table of a run (``frame``: its results, ``summary``: its front summary)."""
    from rich.console import Console

    from minsearch.search.display import front_table, seeds_line, summary_line
    from minsearch.search.run_dir import describe_delivered

    console = Console()
    if not console.is_terminal:
        console.width = 180  # piped or logged: do not squeeze the table into 80 columns
    counts = frame["state"].value_counts().to_dict()
    console.print(f"run folder: {run_dir.path}  ·  trials: "
                  + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())))
    settings = run_dir.read_settings()
    parent = settings.parent or {}
    if "as_delivered" in parent:
        console.print(f"parent: your weights {parent['weights']}, {describe_delivered(parent)}")
    constraint = settings.constraint
    console.print(front_table(frame, summary["directions"], "Pareto front (feasible trials; "
                              "uncertain contenders dimmed below)", limit=50,
                              constraint=constraint))
    line = seeds_line(frame, constraint)
    if line:
        console.print(line)
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
