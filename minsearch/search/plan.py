"""A search plan: the validated task, space and genes, and the run folder that holds them.

Everything that can be wrong with the inputs is found here, before Ray starts or anything
trains: the task and space files, the model, the data, and every gene against the sites that
``find_sites`` reports for the task's model.

Run folder layout (``docs/search.md`` has the full list)::

    RUN_DIR/task.yaml, space.yaml   the resolved inputs (the run needs nothing else)
    RUN_DIR/genes.json              genes and the sites each one ties
    RUN_DIR/search.json             settings: trials, objectives, directions, status
    RUN_DIR/parent/                 the trained parent's weights (init: parent)
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from minsearch.search.space import Gene, SpaceConfig, baseline_params, load_space, resolve_genes
from minsearch.tasks.config import TaskConfig, load_task

SEARCH_JSON = "search.json"
STUDY_NAME = "minsearch"


def storage_url(run_dir: str | Path) -> str:
    """The Optuna study's SQLite storage in the run folder (also for optuna-dashboard)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"


@dataclass
class Plan:
    run_dir: Path
    task: TaskConfig
    space: SpaceConfig
    genes: list[Gene]
    settings: dict[str, Any]

    @property
    def directions(self) -> dict[str, str]:
        return self.task.directions

    @property
    def gene_names(self) -> list[str]:
        return [g.name for g in self.genes]

    @property
    def baseline(self) -> dict[str, str]:
        return baseline_params(self.genes)

    def save_settings(self, **changes: Any) -> None:
        self.settings.update(changes)
        path = self.run_dir / SEARCH_JSON
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.settings, indent=2))
        tmp.replace(path)


def default_run_dir(task: TaskConfig) -> Path:
    return Path("runs") / f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def new_plan(task_path: str | Path, space_path: str | Path, *, out: str | Path | None = None,
             trials: int | None = None) -> Plan:
    """Validate the inputs against the model and create the run folder."""
    import torch

    from minsearch.models import build_model
    from minsearch.sites import find_sites
    from minsearch.tasks.candidate import example_input
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import check_outputs

    task = load_task(task_path)
    space = load_space(space_path)
    if trials is not None:
        if trials < 1:
            raise ValueError(f"--trials must be >= 1, but got {trials}.")
        space = dataclasses.replace(space, trials=trials)
    data = load_data(task.data)
    torch.manual_seed(task.recipe.seed)
    model = build_model(task.model)
    check_outputs(model, data)
    genes = resolve_genes(space, find_sites(model, example_input(data, batch=2)))
    run_dir = Path(out) if out is not None else default_run_dir(task)
    if (run_dir / SEARCH_JSON).exists():
        raise ValueError(f"{run_dir} already holds a search; continue it with `minsearch resume "
                         f"{run_dir}` or choose another --out.")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "task.yaml").write_text(yaml.safe_dump(task.to_flat(), sort_keys=False))
    (run_dir / "space.yaml").write_text(yaml.safe_dump(space.to_json(), sort_keys=False))
    (run_dir / "genes.json").write_text(json.dumps([g.to_json() for g in genes], indent=1))
    plan = Plan(run_dir, task, space, genes, {})
    plan.save_settings(trials=space.trials, objectives=list(task.measure.objectives),
                       directions=task.directions, created=time.strftime("%Y-%m-%d %H:%M:%S"),
                       status="created", input_shape=[1, *data.input_shape],
                       input_dtype=str(data.input_dtype).removeprefix("torch."))
    return plan


def load_plan(run_dir: str | Path) -> Plan:
    """Read back a plan from its run folder (for resume, front, report, export)."""
    run_dir = Path(run_dir)
    settings_path = run_dir / SEARCH_JSON
    if not settings_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a minsearch run folder (no {SEARCH_JSON}); "
                                f"start one with `minsearch search TASK --space SPACE --out "
                                f"{run_dir}`.")
    task = TaskConfig.from_flat(yaml.safe_load((run_dir / "task.yaml").read_text()))
    space = SpaceConfig.from_json(yaml.safe_load((run_dir / "space.yaml").read_text()))
    genes = [Gene.from_json(g) for g in json.loads((run_dir / "genes.json").read_text())]
    return Plan(run_dir, task, space, genes, json.loads(settings_path.read_text()))
