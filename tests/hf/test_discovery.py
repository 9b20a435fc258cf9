"""Sites of transformers models, found in transformers' own layer code: exact residual and
attention counts (from the layer classes), every norm, post-norm described as such."""

from __future__ import annotations

import pytest

from minsearch.sites import find_sites
from minsearch.sites.classify import is_norm
from minsearch.sites.kind import describe
from tests.hf.zoo import FAMILIES, expected, tiny


@pytest.mark.parametrize("family", FAMILIES)
def test_every_residual_and_attention_of_each_layer_is_found(family, built):
    model, discovery = built(family)
    want = expected(model)
    assert want.residuals > 0
    assert len(discovery.of_kind("residual")) == want.residuals
    assert len(discovery.of_kind("attention")) == want.attention
    assert {s.detail.impl for s in discovery.of_kind("attention")} == {"hf"}
    # every option of the catalog is offered on every attention (the interface route)
    assert {"int8", "fp8", "bf16", "sage", "qaas", "ternary", "fp32"} <= set(
        discovery.of_kind("attention")[0].options)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_norm_is_a_site_with_its_width(family, built):
    model, discovery = built(family)
    norms = {name for name, m in model.named_modules() if is_norm(m)}
    sites = discovery.of_kind("norm")
    assert norms and {s.name for s in sites} == norms
    width = getattr(model.config, "hidden_size", None) or model.config.d_model
    assert all(s.detail.channels == width for s in sites)
    # and every residual knows its width from its norm (no shapes: captured layer by layer)
    assert all(s.detail.channels == width for s in discovery.of_kind("residual"))


def test_pre_norm_pairs_name_the_norm_that_starts_each_branch(built):
    _, discovery = built("llama")
    pairs = {s.detail.residual: s.detail for s in discovery.of_kind("pair")}
    assert pairs["model.layers.1.residual_0"].norm == "model.layers.1.input_layernorm"
    assert pairs["model.layers.1.residual_1"].norm == "model.layers.1.post_attention_layernorm"
    assert {d.position for d in pairs.values()} == {"pre"}


def test_post_norm_residuals_name_their_norm_and_what_dropping_means(built):
    _, discovery = built("bert")
    residuals = discovery.of_kind("residual")
    assert [s.detail.post_norm for s in residuals[:2]] == [
        "bert.encoder.layer.0.attention.output.LayerNorm",
        "bert.encoder.layer.0.output.LayerNorm"]
    assert all(s.detail.pair_norm is None for s in residuals)
    line = describe(residuals[0])
    assert "post-norm" in line and "drop-branch leaves LayerNorm(x)" in line
    pairs = discovery.of_kind("pair")
    assert len(pairs) == 4 and {p.detail.position for p in pairs} == {"post"}
    assert pairs[0].detail.norm == residuals[0].detail.post_norm


def test_the_model_as_transformers_builds_it_is_discovered_too():
    model = tiny("gpt2")  # no minsearch forward installed: the raw XForCausalLM
    discovery = find_sites(model)
    assert len(discovery.of_kind("residual")) == 4 and len(discovery.of_kind("attention")) == 2
    assert "forward" not in model.__dict__  # discovery changes nothing


def test_embedding_sums_are_not_residuals():
    """RoBERTa computes position ids from the token ids: both embeddings fork from the ids."""
    from minsearch.models import build_model

    model = build_model("hf:roberta?vocab_size=100&hidden_size=32&num_hidden_layers=1"
                        "&num_attention_heads=4&intermediate_size=64&max_position_embeddings=40")
    assert len(find_sites(model).of_kind("residual")) == 2
