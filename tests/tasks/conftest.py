"""Shared data for the task tests (the digits load once per session)."""

from __future__ import annotations

import pytest

from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import load_data


@pytest.fixture(scope="session")
def digits():
    return load_data(DataConfig())
