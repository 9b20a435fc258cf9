"""A search plan: the checked task, space and genes, and the run folder that holds them.

Two steps, so that checking writes nothing:

- :func:`check_inputs` finds everything that can be wrong with the inputs before Ray starts
  or anything trains: the task and space files, the plugins, the objectives, the model (built
  and run on a batch of the data), the data, every gene against the sites that
  ``find_sites`` reports for the task's model, the sampler and the devices. It returns the
  checked objects (:class:`Inputs`) and touches no file: ``minsearch validate`` is this step.
- :func:`create_plan` makes the run folder and writes the inputs into it;
  :func:`load_plan` reads them back (resume, front, report, export).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minsearch.errors import UserError
from minsearch.objectives.constraint import Constraint, directions
from minsearch.search.multifidelity import halving_config
from minsearch.search.promotion import HalvingConfig
from minsearch.search.run_dir import RunDir, Settings
from minsearch.search.space import (
    Gene,
    SpaceConfig,
    baseline_params,
    load_space,
    resolve_genes,
    unavailable_options,
)
from minsearch.search.storage import TuneStore
from minsearch.tasks.config import TaskConfig, load_task


@dataclass(frozen=True)
class Inputs:
    """A task and a space checked against each other, the model and this machine."""

    task: TaskConfig
    space: SpaceConfig
    genes: list[Gene]
    input_shape: tuple[int, ...]  # one example, batch dimension first
    input_dtype: str  # e.g. float32 (images), int64 (char codes)

    @property
    def directions(self) -> dict[str, str]:
        return directions(self.task.measure.objectives)

    @property
    def constraint(self) -> Constraint:
        return Constraint.from_task(self.task)

    @property
    def space_size(self) -> int:
        """How many genomes the space holds."""
        return math.prod(len(g.labels) for g in self.genes)


@dataclass
class Plan:
    run: RunDir
    task: TaskConfig
    space: SpaceConfig
    genes: list[Gene]
    settings: Settings

    @property
    def directions(self) -> dict[str, str]:
        return self.settings.directions

    @property
    def constraint(self) -> Constraint:
        return self.settings.constraint

    @property
    def gene_names(self) -> list[str]:
        return [g.name for g in self.genes]

    @property
    def baseline(self) -> dict[str, str]:
        return baseline_params(self.genes)

    @property
    def halving(self) -> HalvingConfig | None:
        """The promotion rule of ``strategy: multifidelity`` (None for the default)."""
        return halving_config(self.space, self.task, self.directions, self.constraint)

    @property
    def tune(self) -> TuneStore:
        """Where Ray Tune keeps this search's experiment (:mod:`minsearch.search.storage`)."""
        return TuneStore(self.run, self.settings.storage)

    def save_settings(self, **changes: Any) -> None:
        for key, value in changes.items():
            if not hasattr(self.settings, key):
                raise AttributeError(f"Settings have no field {key!r}")
            setattr(self.settings, key, value)
        self.run.write_settings(self.settings)


def check_devices(task: TaskConfig, *, local: bool = True) -> None:
    """The task's training device exists here; with a local Ray (``local``), so do the GPUs
    each trial asks for (a cluster's GPUs are Ray's to find)."""
    import torch

    if task.recipe.device == "cuda" and not torch.cuda.is_available():
        raise UserError("`device: cuda` was asked for but no CUDA device is visible; use "
                        "`device: auto` or `device: cpu`.")
    gpus = task.resources.gpus_per_trial
    if local and gpus > 0 and torch.cuda.device_count() < math.ceil(gpus):
        raise UserError(f"`gpus_per_trial: {gpus:g}` needs {math.ceil(gpus)} GPU(s) but this "
                        f"machine has {torch.cuda.device_count()}; set `gpus_per_trial: 0`, or "
                        f"join a cluster that has them with --address.")


def trial_device(task: TaskConfig, *, local: bool = True):
    """The torch device a trial will train on, or None where the driver cannot know (GPU
    trials on a cluster): a trial without GPUs sees none (Ray hides them), so it runs on the
    CPU whatever ``device`` says."""
    import torch

    if task.recipe.device == "cpu" or task.resources.gpus_per_trial == 0:
        return torch.device("cpu")
    return torch.device("cuda") if local else None


def check_inputs(task_path: str | Path, space_path: str | Path, *, trials: int | None = None,
                 local: bool = True) -> Inputs:
    """Everything ``search`` checks before it writes or trains anything (see the module
    docstring); ``local`` is False when the trials run on a Ray cluster."""

    from minsearch.objectives import check_task
    from minsearch.search.samplers import make_sampler
    from minsearch.sites import find_sites
    from minsearch.tasks.candidate import example_input, parent_model
    from minsearch.tasks.data import load_task_data
    from minsearch.tasks.schedule import Budget, check_warmup
    from minsearch.tasks.train import check_outputs

    space = load_space(space_path)  # first: its plugins may register what the task names
    task = load_task(task_path)
    check_task(task)
    if trials is not None:
        if trials < 1:
            raise UserError(f"--trials must be >= 1, but got {trials}; e.g. --trials 12.")
        space = dataclasses.replace(space, trials=trials)
    try:
        check_devices(task, local=local)
    except UserError as err:  # a task key: name the file, as its other mistakes do
        raise UserError(f"{task_path}: {err}") from None
    data = load_task_data(task)
    model = parent_model(task)  # with the user's weights: read and checked against the model
    check_outputs(model, data)
    try:  # a warm-up as long as the candidates' budget: known once the data is
        check_warmup(task.recipe, Budget.of(task.recipe, data).total)
    except UserError as err:
        raise UserError(f"{task_path}: {err}") from None
    genes = resolve_genes(space, find_sites(model, example_input(data, batch=2)))
    device = trial_device(task, local=local)
    problems = unavailable_options(genes, device) if device is not None else []
    if problems:
        raise UserError(f"{space_path}: {problems[0]}, and the trials run on {device}; remove "
                        f"that option from the space, or run the trials where it runs.")
    make_sampler(space, genes)  # the sampler takes the space's parameters
    try:  # strategy: multifidelity: its rungs against the task's epochs and seeds
        halving_config(space, task, directions(task.measure.objectives),
                       Constraint.from_task(task))
    except UserError as err:
        raise UserError(f"{space_path}: {err}") from None
    return Inputs(task, space, genes, (1, *data.input_shape),
                  str(data.input_dtype).removeprefix("torch."))


def create_plan(inputs: Inputs, run: RunDir) -> Plan:
    """Make the run folder (``run`` checked with :meth:`RunDir.new`) and write the inputs."""
    run.create()
    run.write_inputs(inputs.task, inputs.space, inputs.genes)
    settings = Settings(trials=inputs.space.trials, directions=inputs.directions,
                        constraint=inputs.constraint, input_shape=list(inputs.input_shape),
                        input_dtype=inputs.input_dtype,
                        created=time.strftime("%Y-%m-%d %H:%M:%S"))
    plan = Plan(run, inputs.task, inputs.space, inputs.genes, settings)
    run.write_settings(settings)
    return plan


def load_plan(run: RunDir) -> Plan:
    """Read back a plan from its run folder (for resume, front, report, export)."""
    settings = RunDir.open(run.path).read_settings()
    space = run.read_space()  # first: it loads the plugins
    return Plan(run, run.read_task(), space, run.read_genes(), settings)
