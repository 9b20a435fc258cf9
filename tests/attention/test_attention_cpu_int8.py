"""The CPU inference path with real int8 matmuls equals the fake-quant reference."""

import pytest
import torch
import torch.nn.functional as F

from minsearch.attention import LowpSDPA, cpu_int8, lowp_attention
from minsearch.attention.spec import AttnSpec
from tests.attention.helpers import PRECISION_OPTIONS, close_up_to_rare_flips, config, qkv

INT8_QK = [n for n in PRECISION_OPTIONS if config(n).qk == "int8"]


def test_int8_options_exist():
    assert {"int8", "sage"} <= set(INT8_QK)


@pytest.mark.parametrize("pv", ["fp32", "bf16", "fp8", "int8", "binary", "ternary"])
@pytest.mark.parametrize("scale", ["head", "block"])
def test_int8mm_equals_reference(pv, scale):
    q, k, v = qkv(T=40, D=16)
    spec = AttnSpec("int8", pv, scale=scale, block=16)
    alpha = torch.tensor([0.9, 0.6]).reshape(2, 1, 1) if spec.learned_p_scale else None
    for kwargs in ({}, {"is_causal": True}, {"attn_mask": torch.randn(40, 40)}):
        ref = lowp_attention(q, k, v, spec, alpha, **kwargs)
        out = cpu_int8.int8mm_attention(q, k, v, spec, alpha, **kwargs)
        if pv == "fp32":
            torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
        else:  # integer vs float sums of the same products: last-bit differences in S
            close_up_to_rare_flips(out, ref, F.scaled_dot_product_attention(q, k, v, **kwargs))


def test_int_bmm_is_exact():
    a = torch.randint(-127, 128, (2, 3, 17, 24), dtype=torch.int8)
    b = torch.randint(-127, 128, (2, 3, 24, 9), dtype=torch.int8)
    assert torch.equal(cpu_int8.int_bmm(a, b), a.int() @ b.int())


@pytest.mark.parametrize("name", INT8_QK)
def test_inference_on_cpu_takes_the_int8mm_path(name, monkeypatch):
    calls = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append(1) or real(a, b))
    m = LowpSDPA(config(name), num_heads=2).eval()
    q, k, v = qkv(T=32, D=16)
    with torch.no_grad():
        assert m.path(q, None, 0.0) == "int8mm"
        out = m(q, k, v)
    assert calls, "torch._int_mm was not called"
    close_up_to_rare_flips(out, lowp_attention(q, k, v, m.spec),
                           F.scaled_dot_product_attention(q, k, v))


def test_training_takes_the_reference_path():
    m = LowpSDPA(config("int8"), num_heads=2).train()
    q, _, _ = qkv(T=8, D=8, requires_grad=True)
    assert m.path(q, None, 0.0) == "reference"
    assert m.eval().path(q, None, 0.1) == "reference"  # dropout: only the reference has it
    assert LowpSDPA(config("fp32")).path(q, None, 0.0) == "sdpa"


def test_int8mm_path_needs_int8_qk():
    q, k, v = qkv(T=8, D=8)
    with pytest.raises(ValueError, match="needs qk='int8'"):
        cpu_int8.int8mm_attention(q, k, v, AttnSpec("fp8", "fp8"))


def test_auto_falls_back_to_reference_when_the_kernel_fails(monkeypatch):
    """CPU twin of a GPU whose Triton build cannot compile the kernel: warn, then reference."""
    import minsearch.attention.triton_kernel as kernel

    def broken(*args, **kwargs):
        raise RuntimeError("no fp8 MMA here")

    monkeypatch.setattr(kernel, "triton_attention", broken)
    m = LowpSDPA(config("qaas"), num_heads=2).eval()
    monkeypatch.setattr(m, "path", lambda q, mask, p: "triton" if not m._triton_failed
                        else "reference")
    q, k, v = qkv(T=16, D=8)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="no fp8 MMA here"):
        out = m(q, k, v)
    torch.testing.assert_close(out, lowp_attention(q, k, v, m.spec, m.alpha()))
    assert m._triton_failed
    forced = LowpSDPA(config("qaas", kernel="triton"), num_heads=2).eval()
    with pytest.raises(RuntimeError, match="no fp8 MMA"):
        forced(q, k, v)
