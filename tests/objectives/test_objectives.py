"""Every registered objective, and the facts each one must get right."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from minsearch.errors import UserError
from minsearch.objectives import check_task, get_objective, measure_all, objective_names
from minsearch.objectives.base import _OBJECTIVES, MeasureContext, Objective
from minsearch.objectives.constraint import directions
from minsearch.objectives.robustness import chance_margin, majority_rate, robustness_ratio
from minsearch.objectives.size import state_bytes
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.train import Diverged
from tests.tasks.factories import TinyMLP


@pytest.mark.parametrize("name", objective_names())
def test_every_objective_measures_a_finite_value_with_a_direction(name, request):
    objective = get_objective(name)
    ctx = request.getfixturevalue("ctx" if "image" in objective.kinds else "density_ctx")
    assert objective.name == name and objective.direction in ("max", "min") and objective.unit
    value = objective.measure(ctx)
    assert isinstance(value, float) and math.isfinite(value)


def test_unknown_objective_suggests():
    with pytest.raises(UserError, match="Did you mean 'latency_ms'"):
        get_objective("latency")


def test_accuracy_is_the_test_split_accuracy(ctx):
    value = get_objective("accuracy").measure(ctx)
    assert 0.8 < value <= 1.0
    correct = (ctx.model(ctx.data.normalize(ctx.data.test.images(slice(None)))).argmax(-1)
               == ctx.data.test.y).float().mean()
    assert value == pytest.approx(float(correct))


def test_param_bytes_are_dtype_aware(ctx, trained):
    import copy

    full = state_bytes(trained)
    assert full == sum(t.numel() * 4 for t in trained.state_dict().values())
    assert state_bytes(copy.deepcopy(trained).half()) == full // 2


def test_tied_weights_count_once():
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    assert state_bytes(model) == 16 * 4


def test_flops_of_a_linear_layer(digits, task):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    ctx = MeasureContext(model, digits, task, torch.device("cpu"))
    assert get_objective("flops").measure(ctx) == 2 * 64 * 10


def test_inference_memory_counts_activations_and_weights(digits, task):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1000), nn.ReLU(), nn.Linear(1000, 10))
    values = {}
    for batch in (16, 64):
        measure = task.measure.replace(memory_batch=batch)
        ctx = MeasureContext(model, digits, task.replace(measure=measure), torch.device("cpu"))
        values[batch] = get_objective("peak_mem_infer_bytes").measure(ctx)
    weights = state_bytes(model)
    # held: weights + input; live peak: the (B, 1000) hidden and its ReLU output
    for batch, value in values.items():
        expected = weights + batch * 64 * 4 + 2 * batch * 1000 * 4
        assert value == pytest.approx(expected, rel=0.05)


def test_train_memory_exceeds_inference_memory(ctx):
    assert (get_objective("peak_mem_train_bytes").measure(ctx)
            > get_objective("peak_mem_infer_bytes").measure(ctx))


def test_train_measurements_leave_the_trained_weights_alone(ctx, trained):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    get_objective("peak_mem_train_bytes").measure(ctx)
    get_objective("train_step_ms").measure(ctx)
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())


@pytest.mark.parametrize("clean, corrupted, expected", [
    (0.9, [0.9, 0.9], 1.0),
    (0.9, [0.5, 0.5], (0.5 - 0.1) / (0.9 - 0.1)),
    (0.9, [0.05], 0.0),  # below chance counts as nothing kept
    (0.1, [0.1], 0.0),  # a chance-level model is not "perfectly robust"
    (0.117, [0.117], 0.0),  # nor one a little above 1/classes: the one-class predictor
    (0.15, [0.15], 0.0),  # above the majority rate, but within the noise of 100 examples (0.09)
    (0.25, [0.25], 1.0),  # clearly above it
])
def test_robustness_is_the_ratio_above_the_majority_rate(clean, corrupted, expected):
    assert chance_margin(0.1, 100) == pytest.approx(3 * math.sqrt(0.1 * 0.9 / 100))
    assert robustness_ratio(clean, corrupted, majority=0.1, n=100) == pytest.approx(expected)


def test_the_margin_is_the_largest_chance_level_noise():
    assert chance_margin(0.9, 100) == chance_margin(0.5, 100) == pytest.approx(0.15)
    assert majority_rate(torch.tensor([0, 1, 1, 3])) == 0.5


def test_robustness_of_a_trained_model_lies_between_0_and_1(ctx):
    value = get_objective("robustness").measure(ctx)
    assert 0.5 < value < 1.0
    assert set(ctx.cache["corruptions"]) == {"gaussian_noise@1", "gaussian_noise@3", "blur@1",
                                            "blur@3"}
    assert ctx.cache["corruptions"]["gaussian_noise@3"] < ctx.cache["corruptions"][
        "gaussian_noise@1"]


class Constant(nn.Module):
    """Predicts class ``label`` whatever the input (a broken candidate)."""

    def __init__(self, label: int, classes: int = 10):
        super().__init__()
        self.label, self.classes = label, classes

    def forward(self, x):
        return nn.functional.one_hot(torch.full((len(x),), self.label), self.classes).float()


@pytest.mark.parametrize("label", ["majority", "other"])
def test_a_constant_predictor_is_not_robust(digits, task, label):
    counts = torch.bincount(digits.test.y)
    pick = int(counts.argmax() if label == "majority" else counts.argmin())
    ctx = MeasureContext(Constant(pick), digits, task, torch.device("cpu"))
    assert get_objective("robustness").measure(ctx) == 0.0
    assert set(ctx.cache["corruptions"].values()) == {ctx.cache["accuracy"]}  # noise: no change


@pytest.mark.parametrize("seed", range(3))
def test_an_untrained_model_is_not_robust(digits, task, seed):
    torch.manual_seed(seed)
    ctx = MeasureContext(TinyMLP().eval(), digits, task, torch.device("cpu"))
    assert get_objective("robustness").measure(ctx) == 0.0
    assert ctx.cache["accuracy"] < 0.2


def test_measure_all_refuses_non_finite_values(ctx):
    class Broken(Objective):
        name, direction, unit = "broken_test_objective", "min", "x"

        def measure(self, ctx):
            return float("nan")

    _OBJECTIVES[Broken.name] = Broken
    try:
        measure = ctx.task.measure.replace(objectives=("accuracy", Broken.name))
        task = ctx.task.replace(measure=measure)
        with pytest.raises(Diverged, match="'broken_test_objective' measured nan"):
            measure_all(ctx.model, ctx.data, task, ctx.device)
    finally:
        del _OBJECTIVES[Broken.name]


def test_measure_all_returns_objectives_in_task_order_and_extras(ctx, task):
    measure = task.measure.replace(objectives=("accuracy", "robustness", "param_bytes"))
    values, extras = measure_all(ctx.model, ctx.data, task.replace(measure=measure), ctx.device)
    assert list(values) == ["accuracy", "robustness", "param_bytes"]
    assert len(extras) == 4 and all(k.startswith("corruption/") for k in extras)


@pytest.mark.parametrize("changes, message", [
    ({"objectives": ["acuracy"]}, "Unknown objective 'acuracy'.*Did you mean 'accuracy'"),
    ({"corruptions": ["fog"]}, "Unknown corruption 'fog'; known: gaussian_noise"),
    ({"objectives": ["accuracy", "loss_p99", "robustness"], "dataset": "text"},
     r"\['robustness'\] do not measure text data"),
])
def test_check_task_refuses_names_the_registries_lack(changes, message):
    task = TaskConfig.from_flat({"model": "tests.tasks.factories:tiny_mlp", **changes})
    with pytest.raises(UserError, match=message):
        check_task(task)


def test_measure_all_checks_the_task_first(ctx):
    task = ctx.task.replace(measure=ctx.task.measure.replace(objectives=("accuracy", "acc")))
    with pytest.raises(UserError, match="Unknown objective 'acc'"):
        measure_all(ctx.model, ctx.data, task, ctx.device)


def test_directions_follow_the_registry():
    assert directions(["accuracy", "loss", "robustness", "param_bytes"]) == {
        "accuracy": "max", "loss": "min", "robustness": "max", "param_bytes": "min"}
