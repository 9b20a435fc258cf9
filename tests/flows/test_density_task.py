"""The density task kind: data, the likelihood loop behind the generic training entry points,
the flow objectives, and the inversion-error constraint."""

from __future__ import annotations

import math

import pytest
import torch

from minsearch.errors import UserError
from minsearch.flows.zoo import mlp_flow
from minsearch.objectives import measure_all
from minsearch.surgery import apply_
from minsearch.tasks.config import DataConfig, TaskConfig
from minsearch.tasks.data import load_data
from minsearch.tasks.train import Diverged, check_outputs, evaluate, fit

FLOW = "minsearch.flows.zoo:mlp_flow?dims=2&steps=2&hidden=16"
CPU = torch.device("cpu")


def _task(**extra) -> TaskConfig:
    flat = {"model": FLOW, "dataset": "density:moons", "max_samples": 600, "init": "scratch",
            "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0, "latency_runs": 3,
            "latency_warmup": 1, "latency_batch": 32, "memory_batch": 32,
            "objectives": ["bits_per_dim", "inversion_error", "inversion_error_mean",
                           "inversion_failures", "sample_ms", "flow_train_step_ms",
                           "flow_peak_mem_train_bytes"]}
    return TaskConfig.from_flat({**flat, **extra})


@pytest.fixture(scope="module")
def moons():
    return load_data(_task().data)


def test_density_config_names_the_sets_and_the_constraint_rule():
    with pytest.raises(UserError, match="density:NAME.*moons, circles"):
        DataConfig(dataset="density:mnist")
    with pytest.raises(UserError, match="max_inversion_error.*inversion_error"):
        _task(objectives=["bits_per_dim"], max_inversion_error=1e-3)
    assert DataConfig(dataset="density:digits").kind == "density"


@pytest.mark.parametrize("name", ["moons", "circles", "8gaussians", "checkerboard"])
def test_two_d_sets_are_seeded_points(name):
    a, b = (load_data(DataConfig(dataset=f"density:{name}", max_samples=200)) for _ in "ab")
    assert a.input_shape == (2,) and a.levels is None
    assert torch.equal(a.train.x, b.train.x) and len(a.train) + len(a.val) + len(a.test) == 200
    assert a.train.x.abs().max() < 5


def test_digits_are_dequantized_17_levels_and_bits_count_them():
    data = load_data(DataConfig(dataset="density:digits"))
    assert data.input_shape == (1, 8, 8) and data.levels == 17 and data.train.x.max() == 16
    x, y = next(data.batches(data.test, 8))
    assert x.min() >= -0.5 and x.max() < 0.5 and not y.any()
    # evaluation noise is fixed; training noise is fresh
    torch.testing.assert_close(next(data.batches(data.test, 8))[0], x)
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(next(data.batches(data.test, 8, generator=gen))[0], x)
    # a uniform density on the unit cube (log p = 0) codes each level in log2(17) bits
    assert float(data.bits_per_dim(torch.zeros(1))) == pytest.approx(math.log2(17))
    level = torch.floor((x + 0.5) * 17)  # dequantization keeps each pixel in its level
    torch.testing.assert_close(level, data.test.x[:8].float())


def test_generic_training_entry_points_train_a_flow_by_likelihood(moons):
    task = _task()
    torch.manual_seed(0)
    model = mlp_flow(dims=2, steps=2, hidden=16)
    check_outputs(model, moons)
    before = evaluate(model, moons, moons.val)
    curves = fit(model, moons, task.recipe, epochs=4)
    after = evaluate(model, moons, moons.val)
    assert after > before + 0.3  # minus bits/dim: higher is better
    assert curves[-1]["train_loss"] < curves[0]["train_loss"]


def test_a_classifier_is_refused_by_the_density_task(moons):
    with pytest.raises(UserError, match=r"log p\(x\), one value per example"):
        check_outputs(torch.nn.Linear(2, 3), moons)


def test_flow_objectives_on_exact_and_residual_flows(moons):
    task = _task()
    torch.manual_seed(0)
    exact = mlp_flow(dims=2, steps=2, hidden=16)
    fit(exact, moons, task.recipe, epochs=2)
    values, _ = measure_all(exact, moons, task, CPU)
    assert values["inversion_error"] < 1e-5 and values["inversion_failures"] == 0
    assert values["sample_ms"] > 0 and values["flow_peak_mem_train_bytes"] > 0
    residual = mlp_flow(dims=2, steps=2, hidden=16)
    apply_(residual, {"invertibility:*": "residual-sn"}, torch.zeros(2, 2))
    fit(residual, moons, task.recipe, epochs=2)
    values, _ = measure_all(residual, moons, task, CPU)
    assert values["inversion_error"] < 1e-4 and values["inversion_failures"] == 0
    assert math.isfinite(values["bits_per_dim"])


def _blown_soft_flow() -> torch.nn.Module:
    """A residual-soft flow whose g is far from contractive (weights x 4)."""
    torch.manual_seed(0)
    model = mlp_flow(dims=2, steps=2, hidden=16)
    apply_(model, {"invertibility:*": {"name": "residual-soft", "iters": 30}},
           torch.zeros(2, 2))
    with torch.no_grad():
        for block in model.modules():
            if hasattr(block, "lipschitz_bound"):
                for p in block.net.parameters():
                    p.mul_(4.0)
                assert block.lipschitz_bound() > 1
    return model.eval()


def test_an_approximate_inverse_that_fails_says_so(moons):
    """Too few fixed-point iterations: the error is reported, with the failed share."""
    torch.manual_seed(0)
    model = mlp_flow(dims=2, steps=2, hidden=16)
    apply_(model, {"invertibility:*": {"name": "residual-sn", "iters": 1, "coeff": 0.95}},
           torch.zeros(2, 2))
    with torch.no_grad():  # a non-trivial g (the spectral norm still bounds it by 0.95)
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    task = _task(objectives=["bits_per_dim", "inversion_error", "inversion_failures"])
    values, _ = measure_all(model.eval(), moons, task, CPU)
    assert values["inversion_failures"] > 0.5
    assert values["inversion_error"] > 1e-4
    with pytest.raises(Diverged, match=r"inversion error .* exceeds max_inversion_error 0.0001"):
        measure_all(model, moons, _task(objectives=["bits_per_dim", "inversion_error"],
                                        max_inversion_error=1e-4), CPU)


def test_a_soft_block_that_is_not_invertible_fails_the_trial_and_says_where(moons):
    """Lip(g) > 1: the fixed-point iteration blows up on part of the test set."""
    task = _task(objectives=["inversion_error", "inversion_failures"])
    with pytest.raises(Diverged, match=r"inverse diverged \(non-finite\) on \d+ of 120 test"):
        measure_all(_blown_soft_flow(), moons, task, CPU)
