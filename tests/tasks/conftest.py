"""Shared data for the task tests (the digits load once per session)."""

from __future__ import annotations

import pytest
import torch

from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import load_data


@pytest.fixture(scope="session")
def digits():
    return load_data(DataConfig())


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    two on a loaded 2-core machine made an epoch 40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
