"""Site discovery on tiny topologies whose answers are known."""

import pytest
import torch
from torch import nn

from minsearch.sites import find_sites
from tests import zoo


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_residuals_found_exactly(name):
    factory, example, expected, shortcuts = zoo.ZOO[name]
    found = find_sites(factory(), example()).of_kind("residual")
    assert [s.name for s in found] == expected
    assert [s.detail.shortcut for s in found] == shortcuts


def test_nanogpt_block_sites():
    d = find_sites(zoo.GPT(n_layer=2), torch.randint(0, 32, (2, 16)))  # token ids
    attention = d.of_kind("attention")
    assert [s.name for s in attention] == ["h.0.attn", "h.1.attn"]
    assert {s.detail.impl for s in attention} == {"sdpa"}
    assert [s.name for s in d.of_kind("norm")] == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1",
                                                   "h.1.ln_2", "ln_f"]
    assert [s.name for s in d.of_kind("activation")] == ["h.0.mlp.gelu", "h.1.mlp.gelu"]
    residual = d["h.0.residual_0"]
    assert residual.owner == "h.0" and residual.block == "h.0" and residual.stage == "h"
    assert residual.detail.channels == 16 and residual.detail.channel_dim == -1


def test_projection_shortcut_is_identified():
    site = find_sites(zoo.ConvBNBlock(), (2, 3, 8, 8))["residual_0"]
    assert site.detail.shortcut == "projection"
    assert site.detail.shortcut_ops == 2  # 1x1 conv + BN
    assert site.detail.channels == 8 and site.detail.channel_dim == 1


def test_functional_norm_and_activation_are_graph_sites():
    d = find_sites(zoo.FunctionalNorm())
    norm, = d.of_kind("norm")
    act, = d.of_kind("activation")
    assert (norm.name, norm.graph, norm.target) == ("layer_norm_0", True, "layer_norm")
    assert (act.name, act.graph) == ("gelu_0", True)
    assert "dyt" in norm.options and "frozen" not in norm.options


def test_adds_that_are_not_residuals():
    residuals = find_sites(zoo.NotResiduals()).of_kind("residual")
    assert [s.name for s in residuals] == ["residual_0"]
    assert residuals[0].detail.shortcut == "identity"
    assert residuals[0].detail.branch_ops > 5  # qkv ... softmax ... proj


def test_untraceable_model_keeps_module_sites_and_says_why():
    d = find_sites(zoo.DataDependent())
    assert d.of_kind("residual") == []
    assert [s.name for s in d.of_kind("norm")] == ["norm"]
    assert [s.name for s in d.of_kind("linear")] == ["fc"]
    assert [s.name for s in d.of_kind("activation")] == ["act"]
    gap, = d.unavailable
    assert gap.kind == "residual" and "control flow" in gap.reason


def test_untraceable_part_becomes_a_leaf():
    d = find_sites(zoo.HasUntraceablePart())
    assert d.leaf_classes == ("DataDependent",)
    assert [g.where for g in d.unavailable] == ["inner"]
    assert [s.name for s in d.of_kind("residual")] == ["residual_0"]


def test_shared_module_called_twice_yields_its_sites_once():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = zoo.Block(8, 2)

        def forward(self, x):
            return self.block(self.block(x))

    d = find_sites(Twice())
    assert [s.name for s in d.of_kind("residual")] == ["block.residual_0", "block.residual_1"]


def test_discovery_does_not_touch_the_model():
    model = zoo.GPT()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    find_sites(model, torch.randint(0, 32, (2, 16)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "forward" not in model.__dict__


def test_bad_example_shape_is_reported_not_raised():
    d = find_sites(zoo.ConvBNBlock(), (2, 3))
    assert d.shape_error and "does not fit" in d.shape_error
    assert d["residual_0"].detail.channels is None
