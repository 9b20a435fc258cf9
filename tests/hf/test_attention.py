"""Low-precision attention registered in transformers' AttentionInterface, one layer at a
time: fp32 equals transformers' own SDPA function on the very same inputs (masks, GQA, T5's
position bias, sliding windows), int8 errs within its bound, other layers are untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from minsearch.attention.hf import IMPLEMENTATION, lowp_attention_forward, register
from minsearch.models.hf import example_input
from minsearch.surgery import apply_


def _run_recording(model, discovery, option, inputs):
    """Apply ``option`` to every attention site, run, and return each call's inputs and
    output as seen by the registered function."""
    calls = []

    def recording(module, q, k, v, mask, **kw):
        out = lowp_attention_forward(module, q, k, v, mask, **kw)
        calls.append((module, q, k, v, mask, kw, out[0]))
        return out

    candidate = copy.deepcopy(model)
    apply_(candidate, {"attention:*": option}, discovery=discovery)
    AttentionInterface.register(IMPLEMENTATION, recording)
    try:
        with torch.no_grad():
            candidate(**inputs)
    finally:
        register()
    return calls


def _inputs(family, model):
    x = example_input(model)
    if family == "t5":
        return {"input_ids": x, "decoder_input_ids": x[:, :6]}
    mask = torch.ones_like(x)
    mask[1, -5:] = 0  # padding in the second sequence
    return {"input_ids": x, "attention_mask": mask}


@pytest.mark.parametrize("family", ["llama", "mistral", "bert", "t5"])
def test_lowp_attention_matches_transformers_sdpa(family, built):
    model, discovery = built(family)
    inputs = _inputs(family, model)
    exact = _run_recording(model, discovery, "fp32", inputs)
    assert len(exact) == len(discovery.of_kind("attention"))
    masks = 0
    for module, q, k, v, mask, kw, out in exact:
        ref = sdpa_attention_forward(module, q, k, v, mask, **kw)[0]
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
        masks += mask is not None or kw.get("position_bias") is not None
    assert masks  # the masks (or T5's bias) reached the function
    for module, q, k, v, mask, kw, out in _run_recording(model, discovery, "int8", inputs):
        ref = sdpa_attention_forward(module, q, k, v, mask, **kw)[0]
        error = float((out - ref).abs().mean() / ref.abs().mean())
        assert 1e-4 < error < 0.06, error  # really quantized, within the int8 bound


def test_one_layer_switches_alone_and_keeps_the_state_dict_keys(built):
    model, discovery = built("llama")
    candidate = copy.deepcopy(model)
    apply_(candidate, {"model.layers.1.self_attn": "qaas"}, discovery=discovery)
    first, second = candidate.model.layers[0].self_attn, candidate.model.layers[1].self_attn
    assert first.config._attn_implementation == model.config._attn_implementation == "sdpa"
    assert second.config._attn_implementation == IMPLEMENTATION
    assert second.q_proj.weight is model.model.layers[1].self_attn.q_proj.weight or torch.equal(
        second.q_proj.weight, model.model.layers[1].self_attn.q_proj.weight)
    keys = set(candidate.state_dict()) - set(model.state_dict())
    assert keys == {"model.layers.1.self_attn.lowp_sdpa.p_scale"}  # binary P's learned step
    x = example_input(model)
    with torch.no_grad():
        assert not torch.allclose(candidate(x), model(x), atol=1e-4)


def test_gemma2_soft_capped_attention_keeps_and_says_why():
    """Gemma 2 soft-caps its scores (tanh(s / cap) * cap): SDPA has no such form, so the
    precision options do not apply there, and a genome asking for one is refused up front."""
    from minsearch.errors import UserError
    from minsearch.models import build_model
    from minsearch.sites import find_sites
    from minsearch.sites.kind import describe

    model = build_model("hf:gemma2?vocab_size=100&hidden_size=32&intermediate_size=64"
                        "&num_hidden_layers=2&num_attention_heads=4&num_key_value_heads=2"
                        "&head_dim=8")
    sites = find_sites(model).of_kind("attention")
    assert [s.options for s in sites] == [("keep",), ("keep",)]
    assert "soft-capped at 50.0" in describe(sites[0])
    with pytest.raises(UserError, match="int8"):
        apply_(model, {"attention:*": "int8"})
    uncapped = build_model("hf:gemma2?vocab_size=100&hidden_size=32&intermediate_size=64"
                           "&num_hidden_layers=2&num_attention_heads=4&num_key_value_heads=2"
                           "&head_dim=8&attn_logit_softcapping=null")
    assert len(apply_(uncapped, {"attention:*": "int8"})) == 2
    assert torch.isfinite(uncapped(example_input(uncapped))).all()


def test_falcon_multi_query_attention_runs_in_int8():
    """Falcon computes attention in its own code (one key/value head broadcast to all query
    heads, no AttentionInterface): its SDPA calls are swapped and the int8 path broadcasts."""
    from minsearch.models import build_model

    model = build_model("hf:falcon?vocab_size=100&hidden_size=32&num_hidden_layers=2"
                        "&num_attention_heads=4").eval()
    x = example_input(model)
    with torch.no_grad():
        ref = model(x)
        report = apply_(model, {"attention:*": "int8"})
        out = model(x)
    assert len(report) == 2 and {c.site.detail.impl for c in report.changes} == {"sdpa"}
    error = float((out - ref).abs().mean() / ref.abs().mean())
    assert 1e-5 < error < 0.05, error
