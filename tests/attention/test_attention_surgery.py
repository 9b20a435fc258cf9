"""Attention options on real sites: timm ViT/DeiT, nn.MultiheadAttention, traced SDPA calls."""

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from minsearch.attention import LowpAttention, LowpMultiheadAttention
from minsearch.attention.fx_sdpa import TracedSDPA, swap_sdpa
from minsearch.catalog.edits import Swap
from minsearch.catalog.registry import get_option
from minsearch.errors import UserError
from minsearch.sites import Site
from minsearch.sites.kinds.attention import AttentionDetail
from minsearch.surgery import apply_
from minsearch.text.gpt import CausalSelfAttention
from tests.attention.helpers import PRECISION_OPTIONS, config


def site(name: str, impl: str) -> Site:
    return Site(name, "attention", ("keep",), "", name, detail=AttentionDetail(impl))


def replace_all(model: nn.Module, option: str, impl: str, cls: type) -> list[str]:
    """Apply ``option`` through its registered handler to every ``cls`` module."""
    opt = get_option("attention", option)
    names = [n for n, m in model.named_modules() if type(m) is cls]
    for name in names:
        [edit] = opt.handler(opt.make_config(), site(name, impl), model.get_submodule(name))
        assert isinstance(edit, Swap) and edit.target == name
        model.set_submodule(name, edit.module)
    return names


def check_option_on(model: nn.Module, x: torch.Tensor, option: str, impl: str, cls: type,
                    new_cls: type, call=lambda m, x: m(x)) -> None:
    torch.manual_seed(0)
    ref = call(model.eval(), x)
    keys = set(model.state_dict())
    candidate = copy.deepcopy(model)
    names = replace_all(candidate, option, impl, cls)
    assert names and all(isinstance(candidate.get_submodule(n), new_cls) for n in names)
    assert keys <= set(candidate.state_dict())  # weights kept under their old names
    with torch.no_grad():
        out = call(candidate.eval(), x)
    if config(option).is_exact:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    else:
        assert torch.isfinite(out).all() and not torch.equal(out, ref)
    loss = call(candidate.train(), x).float().square().mean()
    loss.backward()
    grads = [p.grad for p in candidate.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.fixture(scope="module")
def vits() -> dict[str, nn.Module]:
    """One small model per arch for every option (check_option_on changes only a copy)."""
    torch.manual_seed(0)
    return {arch: timm.create_model(arch, img_size=32, depth=2, num_classes=5)
            for arch in ("vit_tiny_patch16_224", "deit_tiny_patch16_224")}


@pytest.mark.parametrize("option", PRECISION_OPTIONS)
@pytest.mark.parametrize("arch", ["vit_tiny_patch16_224", "deit_tiny_patch16_224"])
def test_timm_vit_and_deit(vits, arch, option):
    model = vits[arch]
    check_option_on(model, torch.randn(2, 3, 32, 32), option, "timm",
                    timm.layers.Attention, LowpAttention)


@pytest.mark.parametrize("option", PRECISION_OPTIONS)
def test_multihead_attention_with_masks_and_weights(option):
    mha = nn.MultiheadAttention(16, 2, dropout=0.1)  # (L, N, E) layout
    L, N = 7, 3
    kpm = torch.zeros(N, L, dtype=torch.bool)
    kpm[0, -2:] = True  # padded keys of the first sequence
    causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
    x = torch.randn(L, N, 16)

    def call(m, x):
        out, w = m(x, x, x, key_padding_mask=kpm, attn_mask=causal)
        assert w.shape == (N, L, L)
        return torch.cat([out.flatten(), w.flatten()])

    holder = nn.ModuleDict({"attn": mha})
    check_option_on(holder, x, option, "mha", nn.MultiheadAttention, LowpMultiheadAttention,
                    call=lambda m, x: call(m["attn"], x))


def test_multihead_attention_separate_kv_dims_batch_first():
    mha = nn.MultiheadAttention(16, 4, kdim=8, vdim=12, batch_first=True).eval()
    q, k, v = torch.randn(2, 5, 16), torch.randn(2, 9, 8), torch.randn(2, 9, 12)
    new = LowpMultiheadAttention.from_module(mha, config("fp32"))
    for kwargs in ({}, {"need_weights": False}, {"average_attn_weights": False}):
        ref, ref_w = mha(q, k, v, **kwargs)
        out, w = new(q, k, v, **kwargs)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        if kwargs.get("need_weights", True):
            torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)
        else:
            assert w is None and ref_w is None


def test_transformer_encoder_layer_does_not_bypass_low_precision():
    """TransformerEncoderLayer's eval fast path would run fp32 on MHA's weights directly."""
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        ref = layer(x)
        candidate = copy.deepcopy(layer)
        replace_all(candidate, "fp32", "mha", nn.MultiheadAttention)
        torch.testing.assert_close(candidate(x), ref, atol=1e-5, rtol=1e-5)
        replace_all(candidate := copy.deepcopy(layer), "qaas", "mha", nn.MultiheadAttention)
        fast = candidate(x)
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            slow = candidate(x)  # surely our forward
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    torch.testing.assert_close(fast, slow)
    assert not torch.allclose(fast, ref, atol=1e-3)


def test_multihead_attention_unsupported_features_say_keep():
    with pytest.raises(UserError, match="add_bias_kv or add_zero_attn.*option 'keep'"):
        LowpMultiheadAttention.from_module(nn.MultiheadAttention(8, 2, add_bias_kv=True),
                                           config("int8"))


class DropoutAttention(nn.Module):
    """SDPA with the usual ``p if self.training else 0`` dropout and an unused parameter."""

    def __init__(self):
        super().__init__()
        self.num_heads, self.p = 2, 0.25
        self.qkv = nn.Linear(8, 24)
        self.unused = nn.Parameter(torch.zeros(3))

    def forward(self, x, mask=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, 2, 4).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.p if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, C)


@pytest.mark.parametrize("option", PRECISION_OPTIONS)
def test_traced_sdpa_module(option):
    model = nn.Sequential(nn.Linear(16, 16), CausalSelfAttention(16, 2))
    check_option_on(model, torch.randn(2, 10, 16), option, "sdpa", CausalSelfAttention,
                    torch.fx.GraphModule)


def test_traced_sdpa_keeps_keys_heads_and_train_dropout():
    old = DropoutAttention()
    gm, replaced = swap_sdpa(old, config("qaas"))
    assert replaced == ["scaled_dot_product_attention"]
    assert set(old.state_dict()) <= set(gm.state_dict())  # 'unused' is kept too
    sdpa = gm.get_submodule("lowp_sdpa")
    assert isinstance(sdpa, TracedSDPA) and sdpa.train_dropout == 0.25
    assert sdpa.p_scale.shape == (2, 1, 1)  # one learned scale per head (num_heads found)
    x = torch.randn(2, 5, 8)
    gm.eval()
    torch.testing.assert_close(gm(x), gm(x))  # no dropout in eval
    gm.train()
    assert not torch.equal(gm(x), gm(x))  # dropout while training


def test_matmul_attention_site_supports_keep_only():
    class ByHand(nn.Module):
        def forward(self, q, k, v):
            return (q @ k.transpose(-2, -1)).softmax(-1) @ v

    opt = get_option("attention", "int8")
    assert not opt.applies_to(site("attn", "matmul")) and opt.applies_to(site("attn", "sdpa"))
    with pytest.raises(ValueError, match="by hand.*Use 'keep'"):
        opt.handler(opt.make_config(), site("attn", "matmul"), ByHand())
    with pytest.raises(UserError, match="no F.scaled_dot_product_attention call"):
        opt.handler(opt.make_config(), site("attn", "sdpa"), ByHand())


def test_apply_genome_int8_on_every_attention():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2, num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    ref = model.eval()(x)
    report = apply_(model, {"attention:*": "int8"}, x)
    assert [c.site.name for c in report.changes] == ["blocks.0.attn", "blocks.1.attn"]
    assert all(c.after == "LowpAttention" for c in report.changes)
    assert report.genome["blocks.0.attn"]["type"] == "attention/int8"
    with torch.no_grad():
        out = model.eval()(x)
    rel = (out - ref).abs().mean() / ref.abs().mean()
    assert 0 < rel < 0.05, rel


def test_search_space_gene_per_block_picks_precision_per_layer():
    from minsearch.search.space import SpaceConfig, genome_rules, resolve_genes
    from minsearch.sites import find_sites

    model = timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=2, in_chans=1,
                              num_classes=10, embed_dim=32, depth=2, num_heads=2)
    x = torch.randn(2, 1, 8, 8)
    space = SpaceConfig.from_json({"genes": [{
        "kind": "attention", "tie": "block",
        "options": ["keep", "fp8", "int8", "qaas", {"name": "ternary", "scale": "head"}]}]})
    genes = resolve_genes(space, find_sites(model, x))
    assert [g.name for g in genes] == ["attention@blocks.0", "attention@blocks.1"]
    rules = genome_rules(genes, {"attention@blocks.0": "qaas",
                                 "attention@blocks.1": "ternary(scale=head)"})
    report = apply_(model, rules, x)
    assert [c.config.name for c in report.changes] == ["qaas", "ternary"]
    assert model.blocks[1].attn.sdpa.spec.scale == "head"
    assert torch.isfinite(model(x)).all()
