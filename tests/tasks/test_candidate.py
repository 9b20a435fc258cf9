"""Candidates: the parent is trained once and cached; surgery keeps the parent's weights;
exports reload exactly."""

from __future__ import annotations

import pytest
import torch

import minsearch.tasks.candidate as candidate
from minsearch.errors import UserError
from minsearch.tasks.candidate import (
    build_candidate,
    export_blob,
    load_candidate,
    load_or_train_parent,
    parent_key,
)
from minsearch.tasks.config import TaskConfig

SPEC = "tests.tasks.factories:tiny_mlp"


def task(**kw) -> TaskConfig:
    return TaskConfig.from_flat({"model": SPEC, "parent_epochs": 1, "epochs": 1, **kw})


@pytest.fixture(scope="module")
def parent(tmp_path_factory, digits):
    """The parent of ``task()``, trained once for the module: (cache folder, state, info)."""
    cache = tmp_path_factory.mktemp("parents")
    return (cache, *load_or_train_parent(task(), digits, cache))


def test_parent_is_trained_once_then_read_from_the_cache(parent, digits, monkeypatch):
    cache, state, info = parent
    assert info["epochs"] == 1 and info["val_accuracy"] > 0.3
    assert (cache / f"parent-{parent_key(task())}.pt").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached parent must not be trained again")

    monkeypatch.setattr(candidate, "fit", no_training)
    again, info_again = load_or_train_parent(task(), digits, cache)
    assert info_again == info
    assert state and all(torch.equal(state[k], again[k]) for k in state)


def test_parent_key_ignores_the_candidates_budget_only():
    assert parent_key(task(epochs=1)) == parent_key(task(epochs=5))
    assert parent_key(task(checkpoint_seconds=0)) == parent_key(task())
    assert parent_key(task(lr=0.01)) != parent_key(task())
    assert parent_key(task(parent_epochs=2)) != parent_key(task())
    assert parent_key(task(data_seed=1)) != parent_key(task())


def test_candidate_keeps_parent_weights_of_what_it_keeps(parent, digits):
    _, state, _ = parent
    model, genome = build_candidate(task(), {"norm:*": "dyt"}, digits, parent_state=state)
    assert type(model.net[2]).__name__ != "LayerNorm"  # the norm was replaced
    assert torch.equal(model.net[1].weight, state["net.1.weight"])  # kept: parent's weights
    assert torch.equal(model.net[4].weight, state["net.4.weight"])
    assert set(genome) == {"net.2"}


def test_candidate_without_parent_starts_from_the_same_seeded_weights(digits):
    a, _ = build_candidate(task(init="scratch"), {}, digits)
    b, _ = build_candidate(task(init="scratch"), {"activation:*": "relu"}, digits)
    assert torch.equal(a.net[1].weight, b.net[1].weight)


def test_export_round_trip_reproduces_the_outputs(tmp_path, digits):
    model, genome = build_candidate(task(), {"norm:*": "dyt", "activation:*": "relu"}, digits)
    blob = export_blob(SPEC, genome, model.state_dict(), (1, 1, 8, 8), trial_id="t")
    path = tmp_path / "c.pt"
    torch.save(blob, path)
    assert torch.load(path, weights_only=True)["genome"] == genome
    loaded = load_candidate(path)
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(loaded(x), model.eval()(x))


def test_load_candidate_refuses_other_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(UserError, match="not a minsearch export"):
        load_candidate(tmp_path / "x.pt")
