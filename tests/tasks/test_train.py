"""The training loop: it learns, it is deterministic, and divergence is an error, not a NaN."""

from __future__ import annotations

import pytest
import torch

from minsearch.errors import UserError
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.train import Diverged, check_outputs, evaluate, fit
from tests.tasks.factories import NaNModel, TinyMLP


def test_fit_learns_digits(digits):
    torch.manual_seed(0)
    model = TinyMLP()
    before = evaluate(model, digits, digits.val)
    curves = fit(model, digits, RecipeConfig(lr=1e-2), epochs=3)
    assert len(curves) == 3 and curves[-1]["train_loss"] < curves[0]["train_loss"]
    assert before < 0.3 < 0.85 < curves[-1]["val_accuracy"]


def test_fit_is_deterministic(digits):
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyMLP()
        fit(model, digits, RecipeConfig(seed=3), epochs=1)
        weights.append(model.net[1].weight.detach().clone())
    assert torch.equal(*weights)


def test_on_epoch_reports_each_epoch(digits):
    seen = []
    fit(TinyMLP(), digits, RecipeConfig(), epochs=2,
        on_epoch=lambda epoch, point: seen.append((epoch, sorted(point))))
    assert seen == [(0, ["train_loss", "val_accuracy"]), (1, ["train_loss", "val_accuracy"])]


def test_divergence_raises_with_where_it_happened(digits):
    with pytest.raises(Diverged, match=r"training loss became nan at epoch 0, step 0"):
        fit(NaNModel(), digits, RecipeConfig(), epochs=1)


def test_non_finite_outputs_at_evaluation_raise(digits):
    with pytest.raises(Diverged, match="non-finite outputs"):
        evaluate(NaNModel(), digits, digits.test)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_every_optimizer_trains(digits, optimizer):
    torch.manual_seed(0)
    model = TinyMLP()
    curves = fit(model, digits, RecipeConfig(optimizer=optimizer, lr=0.05 if optimizer == "sgd"
                                             else 3e-3), epochs=2)
    assert curves[-1]["val_accuracy"] > 0.5


def test_wrong_class_count_is_explained(digits):
    with pytest.raises(UserError, match=r"num_classes=10"):
        check_outputs(TinyMLP(classes=7), digits)


def test_train_steps_takes_exactly_the_budget_across_passes(digits):
    from minsearch.tasks.train import train_steps

    recipe = RecipeConfig(batch_size=512)  # 2-3 batches per pass over the training split
    passes = -(-len(digits.train) // recipe.batch_size)
    model = TinyMLP()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    train_steps(model, digits, recipe, passes + 2, torch.Generator().manual_seed(0))
    assert len(calls) == passes + 2 and model.training


def test_one_class_data_is_never_advised_a_one_class_model(digits):
    """The advice of the class-count check must not lead to `num_classes=1` (issue 12)."""
    import dataclasses

    one = dataclasses.replace(digits, num_classes=1)
    with pytest.raises(UserError, match="a classifier needs at least two") as err:
        check_outputs(TinyMLP(classes=2), one)
    assert "num_classes=1" not in str(err.value)


def test_a_model_failing_on_the_data_keeps_its_error_for_debug(digits):
    class Fails(torch.nn.Module):
        def forward(self, x):
            raise ValueError("my forward")

    with pytest.raises(UserError, match="fails on a batch .* ValueError: my forward") as err:
        check_outputs(Fails(), digits)
    assert isinstance(err.value.__cause__, ValueError)
