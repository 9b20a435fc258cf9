"""The fine-tuning recipe: lr schedule, step budget, accumulation, precision, layout, compile,
and a trainer that continues exactly from its checkpoint."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from minsearch.tasks.amp import autocast_dtype, wants_channels_last
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.data import Split
from minsearch.tasks.train import fit
from minsearch.tasks.trainer import Trainer
from tests.tasks.factories import TinyMLP


def lrs_seen(trainer: Trainer) -> list[float]:
    """The lr of every optimiser step from now on, read from the optimiser as it steps."""
    seen: list[float] = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return seen


def train_all(trainer: Trainer, rounds: range | None = None) -> None:
    for r in rounds if rounds is not None else range(trainer.budget.rounds):
        trainer.train_round(r)


@pytest.mark.parametrize("warmup", [4, 0.2], ids=["steps", "fraction"])
def test_warmup_then_cosine_gives_the_expected_lr_at_each_step(digits, warmup):
    recipe = RecipeConfig(steps=20, schedule="cosine", warmup=warmup, lr=0.1)
    trainer = Trainer(TinyMLP(), digits, recipe)
    seen = lrs_seen(trainer)
    train_all(trainer)
    ramp = [0.1 * (k + 1) / 5 for k in range(4)]  # 4 warm-up steps: lr (k+1)/(W+1)
    cosine = [0.05 * (1 + math.cos(math.pi * j / 16)) for j in range(16)]  # to 0 over 16
    assert seen == pytest.approx(ramp + cosine, rel=1e-6)


def test_a_warmup_as_long_as_an_epoch_budget_is_one_line(digits):
    from minsearch.errors import UserError

    recipe = RecipeConfig(epochs=1, warmup=17)  # 1078 examples: 17 batches of 64
    with pytest.raises(UserError, match=r"^`warmup: 17` is 17 optimiser steps, but the whole "
                                        r"budget is 17 steps; make it shorter"):
        Trainer(TinyMLP(), digits, recipe)
    Trainer(TinyMLP(), digits, recipe.replace(warmup=16))


def test_constant_schedule_with_warmup_then_flat(digits):
    trainer = Trainer(TinyMLP(), digits, RecipeConfig(steps=6, warmup=2, lr=0.03))
    seen = lrs_seen(trainer)
    train_all(trainer)
    assert seen == pytest.approx([0.01, 0.02, 0.03, 0.03, 0.03, 0.03])


def test_cosine_over_epochs_counts_optimizer_steps_with_accumulation(digits):
    """An epoch budget is counted in optimiser steps: ceil(batches / accumulate) per epoch,
    and the cosine reaches its end exactly at the last one."""
    recipe = RecipeConfig(epochs=2, batch_size=128, accumulate=3, schedule="cosine", lr=0.1)
    trainer = Trainer(TinyMLP(), digits, recipe)
    per_epoch = math.ceil(math.ceil(len(digits.train) / 128) / 3)
    assert trainer.budget.total == 2 * per_epoch
    seen = lrs_seen(trainer)
    train_all(trainer)
    total = 2 * per_epoch
    assert seen == pytest.approx([0.05 * (1 + math.cos(math.pi * k / total))
                                  for k in range(total)])


def test_steps_budget_stops_at_exactly_n_optimizer_steps(digits):
    recipe = RecipeConfig(steps=7, accumulate=3, batch_size=512)  # 3 batches per pass
    model = TinyMLP()
    forwards = []
    model.register_forward_hook(lambda m, i, o: forwards.append(m.training))
    trainer = Trainer(model, digits, recipe)
    steps = []
    trainer.optimizer.register_step_post_hook(lambda *a: steps.append(1))
    train_all(trainer)
    assert trainer.budget.rounds == 7 and len(steps) == 7 == trainer.step
    assert forwards.count(True) == 21  # 3 batches per step, passes chained within a round


def test_steps_budget_reports_progress_in_ten_rounds(digits):
    seen = []
    curves = fit(TinyMLP(), digits, RecipeConfig(steps=25, batch_size=256),
                 on_epoch=lambda r, point: seen.append(r))
    assert len(curves) == 10 and seen == list(range(10))
    assert RecipeConfig(steps=25).rounds == 10 and RecipeConfig(steps=4).rounds == 4


def test_accumulating_n_batches_of_b_is_one_batch_of_n_times_b(digits):
    """20 examples: one batch of 20, or batches of 8 + 8 + 4 accumulated (each weighted by
    its share of the examples), give the same step."""
    small = dataclasses.replace(digits, train=Split(digits.train.x[:20], digits.train.y[:20]))
    start = TinyMLP().state_dict()
    after = []
    for batch, accumulate in ((20, 1), (8, 3)):
        model = TinyMLP()
        model.load_state_dict(start)
        recipe = RecipeConfig(optimizer="sgd", momentum=0.0, lr=0.5, batch_size=batch,
                              accumulate=accumulate, epochs=1)
        trainer = Trainer(model, small, recipe)
        train_all(trainer)
        assert trainer.step == 1
        after.append(model.state_dict())
    moved = (after[0]["net.1.weight"] - start["net.1.weight"]).abs().max()
    assert moved > 1e-3  # the step did something
    for key in start:
        torch.testing.assert_close(after[1][key], after[0][key], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32),
                                              ("bf16", torch.bfloat16)])
def test_fp32_and_bf16_autocast_both_train_on_cpu(digits, precision, dtype):
    torch.manual_seed(0)
    model = TinyMLP()
    seen = set()
    model.net[1].register_forward_hook(lambda m, i, o: seen.add(o.dtype) if m.training else None)
    curves = fit(model, digits, RecipeConfig(precision=precision, lr=1e-2), epochs=2)
    assert seen == {dtype}  # the training forward ran in that precision
    assert curves[-1]["val_accuracy"] > 0.8
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_precision_auto_is_bf16_on_cuda_and_fp32_on_cpu_and_for_flows():
    auto = RecipeConfig()
    assert autocast_dtype(auto, torch.device("cpu"), "image") is None
    assert autocast_dtype(auto, torch.device("cuda"), "image") is torch.bfloat16
    assert autocast_dtype(auto, torch.device("cuda"), "text") is torch.bfloat16
    assert autocast_dtype(auto, torch.device("cuda"), "density") is None
    assert autocast_dtype(RecipeConfig(precision="bf16"), torch.device("cpu"), "density") \
        is torch.bfloat16


def test_fp16_keeps_a_grad_scaler_in_the_checkpoint(digits):
    trainer = Trainer(TinyMLP(), digits, RecipeConfig(precision="fp16", steps=2))
    train_all(trainer)
    state = trainer.state_dict()
    assert "scaler" in state and state["scaler"]["scale"] > 0
    assert "scaler" not in Trainer(TinyMLP(), digits, RecipeConfig(steps=2)).state_dict()


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 64, 10))


def test_channels_last_auto_only_for_convnets_on_cuda(digits):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    auto = RecipeConfig()
    assert wants_channels_last(auto, conv_net(), cuda)
    assert not wants_channels_last(auto, conv_net(), cpu)
    assert not wants_channels_last(auto, TinyMLP(), cuda)
    model = conv_net()  # asked for on the CPU: the weights and inputs go NHWC, it trains
    inputs = []
    model[0].register_forward_hook(lambda m, i, o: inputs.append(i[0]))
    trainer = Trainer(model, digits, RecipeConfig(channels_last=True, steps=2))
    train_all(trainer)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert inputs[0].is_contiguous(memory_format=torch.channels_last)


def test_compile_trains_and_keeps_the_plain_state_dict_keys(digits, monkeypatch):
    compiled = []
    real = torch.compile

    def eager_compile(model, **kwargs):  # the same wrapping, without inductor's C++ build
        compiled.append(model)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    model = TinyMLP()
    trainer = Trainer(model, digits, RecipeConfig(compile=True, steps=3))
    before = model.net[1].weight.detach().clone()
    train_all(trainer)
    assert compiled == [model] and trainer.forward is not model
    assert not torch.equal(before, model.net[1].weight)  # the compiled forward trained it
    assert set(trainer.model.state_dict()) == set(TinyMLP().state_dict())  # no _orig_mod.


def checkpoint(trainer: Trainer) -> dict:
    """The trainer's state and weights through torch.save / load(weights_only=True), as a
    trial checkpoint is written and read."""
    buffer = io.BytesIO()
    torch.save({"model": trainer.model.state_dict(), **trainer.state_dict()}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_restored_trainer_continues_the_schedule_exactly(digits, precision):
    recipe = RecipeConfig(steps=20, schedule="cosine", warmup=0.25, lr=0.01, batch_size=128,
                          precision=precision)
    torch.manual_seed(0)
    start = TinyMLP().state_dict()
    whole = Trainer(TinyMLP(), digits, recipe)
    whole.model.load_state_dict(start)
    lrs_whole = lrs_seen(whole)
    train_all(whole)

    first = Trainer(TinyMLP(), digits, recipe)
    first.model.load_state_dict(start)
    lrs = lrs_seen(first)
    train_all(first, range(4))
    saved = checkpoint(first)
    second = Trainer(TinyMLP(), digits, recipe)  # a new process: fresh model and trainer
    second.model.load_state_dict(saved["model"])
    second.load_state_dict(saved)
    lrs_second = lrs_seen(second)
    train_all(second, range(4, 10))
    assert second.step == 20 and lrs + lrs_second == pytest.approx(lrs_whole)
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value)


def test_flows_train_with_the_schedule_and_accumulation():
    """Density tasks (flows) go through the same trainer: their own loss, the same recipe."""
    from minsearch.models import build_model
    from minsearch.tasks.config import TaskConfig
    from minsearch.tasks.data import load_data

    task = TaskConfig.from_flat({"model": "minsearch.flows.zoo:mlp_flow?dims=2&steps=2",
                                 "dataset": "density:moons", "max_samples": 400, "steps": 40,
                                 "schedule": "cosine", "warmup": 0.1, "accumulate": 2,
                                 "batch_size": 64, "lr": 1e-2, "objectives": ["bits_per_dim"]})
    data = load_data(task.data)
    torch.manual_seed(0)
    trainer = Trainer(build_model(task.model), data, task.recipe)
    seen = lrs_seen(trainer)
    bits = [trainer.train_round(r) for r in range(trainer.budget.rounds)]
    assert trainer.step == 40 and seen[4] == pytest.approx(1e-2) and seen[-1] < 1e-4
    assert bits[-1] < bits[0] - 0.1  # bits per dim, falling
