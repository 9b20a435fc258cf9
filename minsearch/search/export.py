"""Export one trial of a run: its trained weights, genome and model spec in one file.

The file is read with ``torch.load(path, weights_only=True)`` (plain tensors, strings, lists
and dicts), and rebuilt into a module with one line::

    from minsearch.tasks.candidate import load_candidate; model = load_candidate("trial.pt")
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd
import torch

from minsearch.errors import UserError
from minsearch.search.file_checks import torch_file_problem
from minsearch.search.plan import Plan
from minsearch.search.run_dir import CheckpointFiles, DamagedFile

WEIGHTS = CheckpointFiles.WEIGHTS


def export_trial(plan: Plan, frame: pd.DataFrame, trial_id: str, out: Path) -> Path:
    """Export trial ``trial_id`` of ``frame`` (the run's results) to ``out``."""
    rows = frame[frame["trial_id"].astype(str) == str(trial_id)]
    if rows.empty:
        known = ", ".join(frame["trial_id"].astype(str).head(8))
        raise UserError(f"No trial {trial_id!r} in {plan.run.path}; trials: {known} … (see "
                        f"`minsearch front {plan.run.path}`).")
    return export_row(plan, rows.iloc[0], out)


def export_row(plan: Plan, row: pd.Series, out: Path) -> Path:
    """Export the trial of results row ``row`` (COMPLETE, with its final checkpoint)."""
    from minsearch.tasks.candidate import export_blob

    trial_id = str(row["trial_id"])
    if row["state"] != "COMPLETE":
        raise UserError(f"Trial {trial_id} is {row['state']}, not COMPLETE: it has no trained "
                        f"weights to export.")
    location = str(row["checkpoint"])  # a local path, or a URI (minsearch.search.storage)
    with contextlib.ExitStack() as stack:
        try:
            weights = stack.enter_context(plan.tune.checkpoint_file(location, WEIGHTS))
        except FileNotFoundError:
            raise UserError(f"The weights of trial {trial_id} are gone ({location}/{WEIGHTS}); "
                            f"Ray keeps only each trial's last checkpoint in "
                            f"{plan.tune.where}.") from None
        problem = torch_file_problem(weights)
        if problem:
            raise DamagedFile(Path(location, WEIGHTS), problem,
                              f"the weights of trial {trial_id} cannot be rebuilt without "
                              f"training it again: restore {plan.tune.where} from a backup")
        state = torch.load(weights, map_location="cpu", weights_only=True)
    objectives = {k: float(row[k]) for k in plan.directions}
    blob = export_blob(plan.task.model, json.loads(row["genome"]), state,
                       tuple(plan.settings.input_shape), plan.settings.input_dtype,
                       trial_id=trial_id, objectives=objectives)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    return out
