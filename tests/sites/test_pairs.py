"""Pair sites: a norm and the residual whose branch it starts."""

import pytest
import timm
import torch

from minsearch.sites import find_sites
from tests import zoo


def pairs_of(model, example):
    return {p.detail.norm: p for p in find_sites(model, example).of_kind("pair")}


def test_nanogpt_pre_norm_pairs():
    pairs = pairs_of(zoo.GPT(n_layer=2), torch.randint(0, 32, (2, 16)))
    assert sorted(pairs) == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2"]
    p = pairs["h.0.ln_1"]
    assert (p.name, p.detail.residual, p.owner) == ("h.0.pair_0", "h.0.residual_0", "h.0")
    assert "ln_f" not in pairs  # the final norm feeds the head, not a residual branch


@pytest.mark.parametrize("name, count, first_norm", [
    ("vit_tiny_patch16_224", 24, "blocks.0.norm1"),
    ("convnext_atto", 12, "stages.0.blocks.0.norm"),
    ("resnet18", 8, "layer1.0.bn1"),
])
def test_timm_pairs(name, count, first_norm):
    with torch.device("meta"):
        model = timm.create_model(name)
    pairs = pairs_of(model, (1, 3, 224, 224))
    assert len(pairs) == count
    assert first_norm in pairs
    assert all(p.detail.residual.endswith(p.name.rsplit("pair_", 1)[1]) for p in pairs.values())


def test_post_norm_pairs_with_the_add_it_follows():
    """norm(x + f(x)) (BERT): the norm is after the add, on both paths; the pair is marked
    post-norm (the gated unit then squashes the gated sum)."""

    class PostNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.norm = torch.nn.LayerNorm(8)

        def forward(self, x):
            return self.norm(x + self.fc(x))  # the norm is after the add, on both paths

    pairs = pairs_of(PostNorm(), (2, 8))
    assert [(p.detail.norm, p.detail.position) for p in pairs.values()] == [("norm", "post")]


def test_agu_starts_as_the_identity_block():
    """init=0: every gated block passes x through, like dropping each paired branch."""
    from minsearch.surgery import apply_

    torch.manual_seed(0)
    x = torch.randint(0, 32, (2, 16))
    gated, dropped = zoo.GPT(), zoo.GPT()
    dropped.load_state_dict(gated.state_dict())
    report = apply_(gated, {"pair:*": "agu"}, x)
    assert {c.after for c in report.changes} == {"GateSquash+GateAdd"}
    apply_(dropped, {"residual:*": "drop-branch"}, x)
    torch.testing.assert_close(gated(x), dropped(x))
    gated(x).square().mean().backward()
    assert gated.h[0].residual_0.g.grad.abs().sum() > 0  # the gate learns from its zero start


def test_pair_and_its_parts_cannot_both_change():
    from minsearch.surgery import apply_

    with pytest.raises(ValueError, match="h.0.ln_1 is changed twice"):
        apply_(zoo.GPT(), {"pair:*": "agu", "h.0.ln_1": "dyt"})
