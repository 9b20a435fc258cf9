"""A small trained model and its measuring context, shared by the objective tests."""

from __future__ import annotations

import pytest
import torch

from minsearch.objectives import MeasureContext
from minsearch.tasks.config import DataConfig, TaskConfig
from minsearch.tasks.data import load_data
from minsearch.tasks.train import fit
from tests.tasks.factories import TinyMLP


@pytest.fixture(scope="session")
def digits():
    return load_data(DataConfig())


@pytest.fixture(scope="session")
def task():
    return TaskConfig.from_flat({"model": "tests.tasks.factories:tiny_mlp", "latency_runs": 5,
                                 "latency_warmup": 1, "memory_batch": 32,
                                 "corruptions": ["gaussian_noise", "blur"],
                                 "severities": [1, 3]})


@pytest.fixture(scope="session")
def trained(digits, task):
    torch.manual_seed(0)
    model = TinyMLP()
    fit(model, digits, task.recipe, epochs=2)
    return model.eval()


@pytest.fixture
def ctx(trained, digits, task):
    return MeasureContext(model=trained, data=digits, task=task, device=torch.device("cpu"))


@pytest.fixture(scope="session")
def density_ctx():
    """A small flow trained on 2-D moons, for the objectives of density tasks."""
    from minsearch.flows.zoo import mlp_flow

    task = TaskConfig.from_flat({"model": "minsearch.flows.zoo:mlp_flow?steps=2&hidden=16",
                                 "dataset": "density:moons", "max_samples": 300,
                                 "latency_runs": 3, "latency_warmup": 1, "memory_batch": 32,
                                 "objectives": ["bits_per_dim"]})
    data = load_data(task.data)
    torch.manual_seed(0)
    model = mlp_flow(steps=2, hidden=16)
    fit(model, data, task.recipe, epochs=1)
    return MeasureContext(model=model.eval(), data=data, task=task, device=torch.device("cpu"))
