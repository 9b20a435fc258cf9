"""``minsearch export RUN_DIR --trial ID --out FILE``: one trial's weights and genome."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write one trial's weights + genome to a file",
        description="The file loads with torch.load(FILE, weights_only=True); rebuild the "
                    "model with: from minsearch.tasks.candidate import load_candidate; "
                    "model = load_candidate(FILE)")
    p.add_argument("run_dir")
    p.add_argument("--trial", required=True, help="trial id (see `minsearch front RUN_DIR`)")
    p.add_argument("--out", required=True, help="output file, e.g. candidate.pt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minsearch.search.export import export_trial
    from minsearch.search.integrity import check_run_folder
    from minsearch.search.plan import load_plan
    from minsearch.search.run_dir import RunDir

    run_dir = RunDir.open(args.run_dir)
    check_run_folder(run_dir, "export")  # a damaged file: one line naming it
    plan = load_plan(run_dir)
    path = export_trial(plan, plan.run.read_results(), args.trial, Path(args.out))
    print(f"wrote {path}; load it with: from minsearch.tasks.candidate import load_candidate; "
          f"model = load_candidate({str(path)!r})")
    return 0
