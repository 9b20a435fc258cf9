"""AttnSpec and the catalog configs: validation, presets, JSON, byte counts."""

import pytest

from minsearch.attention.cost import attention_bytes
from minsearch.attention.spec import AttnSpec
from minsearch.catalog import OptionConfig, parse_option
from minsearch.errors import UserError
from tests.attention.helpers import PRECISION_OPTIONS, config


def test_presets_are_registered_with_their_formats():
    assert {"lowp", "fp32", "bf16", "fp8", "int8", "sage", "qaas", "ternary"} <= set(
        PRECISION_OPTIONS)
    expect = {"fp32": ("fp32", "fp32"), "bf16": ("bf16", "bf16"), "fp8": ("fp8", "fp8"),
              "int8": ("int8", "int8"), "sage": ("int8", "fp8"), "qaas": ("fp8", "binary"),
              "ternary": ("fp8", "ternary")}
    for name, (qk, pv) in expect.items():
        c = config(name)
        assert (c.qk, c.pv) == (qk, pv), name


@pytest.mark.parametrize("name", PRECISION_OPTIONS)
def test_overrides_round_trip_through_json(name):
    c = parse_option("attention", {"name": name, "scale": "head", "block": 32})
    assert (c.scale, c.block) == ("head", 32)
    assert OptionConfig.from_json(c.to_json()) == c
    assert c.spec() == AttnSpec(c.qk, c.pv, "head", 32, c.smooth_k, c.p_norm, c.p_scale_init,
                                c.kernel)


@pytest.mark.parametrize("fields, match", [
    ({"qk": "int4"}, r"`qk` must be one of fp32, bf16, fp8, int8, but got qk='int4'"),
    ({"pv": "fp4"}, r"`pv` must be one of .*binary, ternary, but got pv='fp4'"),
    ({"scale": "tensor"}, r"`scale` must be one of head, block"),
    ({"block": 0}, r"positive integer, but got block=0; 64 or 128"),
    ({"pv": "int8", "p_scale_init": 0.5}, r"pv='int8'; drop p_scale_init or use pv='binary'"),
    ({"pv": "binary", "p_scale_init": 2.0}, r"must lie in \(0, 1\]"),
    ({"p_norm": "quantized"}, r"binary/ternary P only, but pv='fp32'; use p_norm='exact'"),
    ({"kernel": "int8mm", "qk": "fp8"}, r"needs qk='int8', but got qk='fp8'; use kernel='auto'"),
])
def test_invalid_precision_states_rule_value_and_fix(fields, match):
    with pytest.raises(UserError, match=match):
        config("lowp", **fields)


def test_smooth_k_must_be_bool():
    with pytest.raises(UserError, match="smooth_k"):
        AttnSpec(smooth_k="yes")


def test_bytes_fp32_vs_qaas():
    B, H, T, D = 1, 2, 1024, 64
    fp32 = attention_bytes(AttnSpec(), B, H, T, D)
    qaas = attention_bytes(config("qaas"), B, H, T, D)
    assert fp32.scores == fp32.probs == B * H * T * T * 4
    assert qaas.probs == B * H * T * T / 8  # one bit per probability
    assert qaas.scores == fp32.scores  # the fp32 accumulator is not smaller
    # fused: Q, K, V, O + (m, l) per row; qaas: fp8 Q/K, bf16 V, fp32 O + per-block scales
    assert fp32.fused == B * H * T * (4 * D * 4 + 8)
    assert qaas.fused == B * H * T * (2 * D + 2 * D + 4 * D + 8) + 2 * B * H * (T // 64) * 4
