"""Cost-only objectives: measured on the built candidate before training, what it really
holds (a dropped branch's weights are gone), and budgets that refuse a genome untrained."""

from __future__ import annotations

import pytest
import torch

from minsearch.objectives import get_objective, measure_costs, over_budget
from minsearch.objectives.size import state_bytes
from minsearch.tasks.candidate import build_candidate
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.data import load_data

VIT = ("timm:vit_tiny_patch16_224?img_size=8&patch_size=2&in_chans=1&num_classes=10"
       "&embed_dim=32&depth=2&num_heads=2")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vit_task():
    return TaskConfig.from_flat({"model": VIT, "init": "scratch",
                                 "objectives": ["accuracy", "param_bytes", "flops",
                                                "peak_mem_infer_bytes"], "memory_batch": 8})


@pytest.fixture(scope="module")
def digits(vit_task):
    return load_data(vit_task.data)


def test_the_digits_test_split_has_359_images(digits):
    assert len(digits.test) == 359  # round(0.2 * 1797); the docs said 360


def test_costs_are_the_cost_only_objectives_and_the_budgeted_ones(vit_task):
    assert {n for n in ("accuracy", "param_bytes", "flops", "peak_mem_infer_bytes",
                        "peak_mem_train_bytes", "latency_ms", "robustness")
            if get_objective(n).cost_only} == {"param_bytes", "flops", "peak_mem_infer_bytes",
                                               "peak_mem_train_bytes"}


def test_dropping_every_branch_drops_its_bytes_and_flops(vit_task, digits):
    """Both residual branches of both blocks dropped: the blocks hold nothing any more, so
    param_bytes is the model's bytes minus every ``blocks.*`` tensor (it used to stay near the
    full 106,152 while the FLOPs fell from 840,320 to 4,736)."""
    full, _ = build_candidate(vit_task, {}, digits)
    dropped, _ = build_candidate(vit_task, {"residual:*": "drop-branch"}, digits)
    costs = {"full": measure_costs(full, digits, vit_task, CPU),
             "dropped": measure_costs(dropped, digits, vit_task, CPU)}
    outside_blocks = sum(v.numel() * v.element_size() for k, v in full.state_dict().items()
                         if not k.startswith("blocks."))
    assert costs["full"]["param_bytes"] == state_bytes(full) == 106_152
    assert costs["dropped"]["param_bytes"] == outside_blocks == 4_520
    assert (costs["full"]["flops"], costs["dropped"]["flops"]) == (840_320, 4_736)
    assert costs["dropped"]["peak_mem_infer_bytes"] < costs["full"]["peak_mem_infer_bytes"]
    assert set(costs["full"]) == {"param_bytes", "flops", "peak_mem_infer_bytes"}


def test_costs_do_not_depend_on_the_weights(vit_task, digits):
    model, _ = build_candidate(vit_task, {"norm:*": "dyt"}, digits)
    before = measure_costs(model, digits, vit_task, CPU)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    assert measure_costs(model, digits, vit_task, CPU) == before


def test_a_budget_names_each_cost_over_it(vit_task, digits):
    task = vit_task.replace(measure=vit_task.measure.replace(max_param_bytes=50_000,
                                                             max_flops=1e6))
    model, _ = build_candidate(task, {}, digits)
    costs = measure_costs(model, digits, task, CPU)
    assert over_budget(costs, task) == ("over budget, not trained: param_bytes 106,152 > "
                                        "`max_param_bytes: 50,000`")
    assert over_budget(costs, vit_task) is None
    # A budgeted cost the task does not list as an objective is measured all the same.
    only_accuracy = task.replace(measure=task.measure.replace(objectives=("accuracy",)))
    assert set(measure_costs(model, digits, only_accuracy, CPU)) == {"param_bytes", "flops"}
