"""Every catalog option of the norm, residual, pair, attention and activation kinds on
transformers models: it applies and trains, identity options reproduce the output, each
family's norm parametrization is read (Gemma's ``1 + weight``), and generation still works."""

from __future__ import annotations

import copy

import pytest
import torch

from minsearch.catalog import all_options
from minsearch.models.hf import example_input
from minsearch.surgery import apply_
from tests.hf.zoo import FAMILIES, GENERATES

KINDS = ("norm", "residual", "pair", "attention", "activation")
SWEEP = ("llama", "bert", "t5")  # pre-norm with GQA, post-norm, position bias + RMS T5 norm
OPTIONS = [o for o in all_options() if o.kind in KINDS]
# every option on SWEEP; on the other families the identity options that change something
CASES = [(o, f) for o in OPTIONS for f in FAMILIES
         if f in SWEEP or (o.identity and o.name != "keep")]


@pytest.mark.parametrize(("option", "family"), CASES,
                         ids=[f"{o.kind}/{o.name}-{f}" for o, f in CASES])
def test_option_applies_trains_and_identity_reproduces(option, family, built):
    model, discovery = built(family)
    sites = [s for s in discovery.of_kind(option.kind) if option.name in s.options]
    assert sites, f"{option.kind}/{option.name} applies nowhere in {family}"
    x = example_input(model)
    with torch.no_grad():
        ref = model(x)
    candidate = copy.deepcopy(model)
    report = apply_(candidate, {s.name: option.name for s in sites}, discovery=discovery)
    assert len(report) == (0 if option.name == "keep" else len(sites))
    if option.identity:
        with torch.no_grad():
            torch.testing.assert_close(candidate.eval()(x), ref, atol=1e-5, rtol=1e-5)
    out = candidate.train()(x)
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in candidate.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_gemma_norms_are_read_as_one_plus_weight(built):
    """GemmaRMSNorm scales by 1 + weight (weight starts at 0): copying `weight` as the scale
    made every replacement output a constant."""
    model, discovery = built("gemma")
    x = example_input(model)
    with torch.no_grad():
        ref = model(x)
    same = copy.deepcopy(model)
    apply_(same, {"norm:*": "rmsnorm"}, discovery=discovery)  # RMS for RMS: the same function
    dyt = copy.deepcopy(model)
    apply_(dyt, {"norm:*": "dyt"}, discovery=discovery)
    with torch.no_grad():
        torch.testing.assert_close(same(x), ref, atol=1e-5, rtol=1e-5)
        out = dyt(x)
    assert out.std(dim=1).mean() > 1e-3  # not constant over tokens (it was exactly)
    assert torch.allclose(dyt.model.norm.weight, 1 + model.model.norm.weight)


def test_t5_layer_norm_is_measured_as_an_rms_norm(built):
    _, discovery = built("t5")
    assert {s.detail.family for s in discovery.of_kind("norm")} == {"rms"}


@pytest.mark.parametrize("family", GENERATES)
def test_generate_after_a_rewrite(family, built):
    """Rewritten layers take the cache, masks and keyword arguments generate() passes: an
    identity rewrite generates the same tokens, a low-precision one runs with the KV cache."""
    model, discovery = built(family)
    kw = dict(max_new_tokens=4, do_sample=False)
    x = example_input(model)
    inputs = {"input_features": x} if family == "whisper" else {"input_ids": x[:, :5]}
    ref = model.generate(**inputs, **kw)
    same = copy.deepcopy(model)
    apply_(same, {"residual:*": "gate", "attention:*": "fp32", "pair:*": "keep"},
           discovery=discovery)
    assert torch.equal(same.generate(**inputs, **kw), ref)
    lowp = copy.deepcopy(model)
    apply_(lowp, {"attention:*": "int8", "residual:*": "rezero"}, discovery=discovery)
    out = lowp.generate(**inputs, **kw)
    assert out.shape[0] == ref.shape[0] and out.shape[1] > inputs[next(iter(inputs))].shape[0]


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_frozen_norms_fold_into_the_linears_of_each_layer(family, built):
    """LN-free inference on a transformers decoder: every layer's frozen RMSNorm folds into
    q/k/v (through the attention module) or the MLP's gate and up projections."""
    from minsearch.surgery.fold import fold_norms_

    model, discovery = built(family)
    candidate = copy.deepcopy(model)
    apply_(candidate, {"norm:*": "frozen"}, discovery=discovery)
    x = example_input(model)
    candidate.train()(x)  # calibrates each frozen scale
    with torch.no_grad():
        ref = candidate.eval()(x)
        folds = {f.norm: f for f in fold_norms_(candidate)}
        out = candidate(x)
    layers = [n for n in folds if ".layers." in n]
    assert len(layers) == 4 and all(folds[n].folded for n in layers)
    assert folds["model.layers.0.input_layernorm"].into == tuple(
        f"model.layers.0.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj"))
    assert not folds["model.norm"].folded  # called in LlamaModel's own forward: not captured
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
