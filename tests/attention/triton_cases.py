"""Cases for the fused Triton kernel against the fake-quant reference, under Triton's CPU
interpreter. Run by ``test_attention_triton.py`` in a fresh process with TRITON_INTERPRET=1:
the interpreter works only if that is set before anything imports triton (triton's own
``tl.max``/``tl.sum`` are ``@jit`` functions, compiled or interpreted when triton is imported,
and torch may import triton early). Running this file directly sets it too.

The interpreter is slow: sizes stay tiny (T=40 with 16-token tiles: three key tiles and a
ragged last one; D=24 pads to 32).
"""

import os
import sys

if "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from minsearch.attention import LowpSDPA, lowp_attention
from minsearch.attention.spec import PV_FORMATS, QK_FORMATS, AttnSpec  # noqa: E402
from minsearch.errors import UserError
from tests.attention.helpers import close_up_to_rare_flips, config, qkv  # noqa: E402

ALPHA = torch.tensor([1.0, 0.45]).reshape(2, 1, 1)  # learned-scale stand-in, one per head


@pytest.fixture(scope="module")
def kernel():
    import triton.language.standard as tl_standard

    if os.environ.get("TRITON_INTERPRET") != "1" or "Interpreted" not in type(
            tl_standard.max).__name__:
        raise RuntimeError("triton was imported before TRITON_INTERPRET=1 was set; run these "
                           "cases through tests/attention/test_attention_triton.py.")
    import minsearch.attention.triton_kernel as module

    return module


def _alpha(spec):
    return ALPHA if spec.learned_p_scale else None


@pytest.mark.parametrize("pv", PV_FORMATS)
@pytest.mark.parametrize("qk", QK_FORMATS)
def test_one_key_tile_equals_reference(kernel, qk, pv):
    """With every key in one tile the running max is the final max: the same values."""
    q, k, v = qkv(B=1, T=40, D=24)
    spec = AttnSpec(qk, pv, block=16)
    out = kernel.triton_attention(q, k, v, spec, _alpha(spec), block_m=16, block_n=64)
    ref = lowp_attention(q, k, v, spec, _alpha(spec))
    if pv == "fp32":
        torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    else:
        close_up_to_rare_flips(out, ref, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("pv", PV_FORMATS)
@pytest.mark.parametrize("qk", QK_FORMATS)
def test_tiled_causal_kernel_is_as_accurate_as_reference(kernel, qk, pv):
    """Several key tiles, causal. Binary/ternary (two passes) equal the reference; other P
    formats are quantized against the running max, so they differ from the reference by
    rounding only and are no less accurate against fp32."""
    q, k, v = qkv(B=1, T=40, D=24, seed=1)
    spec = AttnSpec(qk, pv, block=16)
    out = kernel.triton_attention(q, k, v, spec, _alpha(spec), is_causal=True,
                                  block_m=16, block_n=16)
    ref = lowp_attention(q, k, v, spec, _alpha(spec), is_causal=True)
    fp32 = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if pv == "fp32":
        torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    elif spec.learned_p_scale:  # two passes: the reference's algorithm, up to rounding flips
        close_up_to_rare_flips(out, ref, fp32)
    err_out, err_ref = (out - fp32).abs(), (ref - fp32).abs()
    assert err_out.mean() <= 1.25 * err_ref.mean() + 1e-5, (err_out.mean(), err_ref.mean())
    assert err_out.max() <= 2.0 * err_ref.max() + 1e-4, (err_out.max(), err_ref.max())


@pytest.mark.parametrize("p_norm", ["exact", "quantized"])
def test_quantized_normalisation(kernel, p_norm):
    q, k, v = qkv(B=1, T=40, D=16)
    spec = AttnSpec("int8", "ternary", p_norm=p_norm, block=16)
    out = kernel.triton_attention(q, k, v, spec, ALPHA, block_m=16, block_n=16)
    close_up_to_rare_flips(out, lowp_attention(q, k, v, spec, ALPHA),
                           F.scaled_dot_product_attention(q, k, v))


def test_lowp_sdpa_dispatches_to_the_kernel(kernel):
    m = LowpSDPA(config("qaas", kernel="triton"), num_heads=2).eval()
    q, k, v = qkv(B=1, T=20, D=16)
    with torch.no_grad():
        out = m(q, k, v)
    close_up_to_rare_flips(out, lowp_attention(q, k, v, m.spec, m.alpha()),
                           F.scaled_dot_product_attention(q, k, v))
    with pytest.raises(UserError, match="supports neither attn_mask nor dropout"):
        m(q, k, v, attn_mask=torch.ones(20, 20, dtype=torch.bool))


def test_kernel_rejects_mismatched_heads(kernel):
    q = torch.randn(1, 4, 8, 16)
    k = v = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="repeat K/V heads"):
        kernel.triton_attention(q, k, v, AttnSpec())
