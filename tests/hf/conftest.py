"""Each tiny transformers model is built and discovered once per test session."""

from __future__ import annotations

import os
from functools import cache

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@cache
def _built(family: str):
    import torch

    from minsearch.models import build_model
    from minsearch.sites import find_sites
    from tests.hf.zoo import spec

    torch.manual_seed(0)
    model = build_model(spec(family)).eval()
    return model, find_sites(model)


@pytest.fixture
def built():
    """``built(family) -> (model, discovery)``; copy the model before changing it."""
    return _built
