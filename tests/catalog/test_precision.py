"""Precision genes on linear and conv sites (torchao): every option on a timm ResNet, a timm
ViT and the char GPT applies, runs, stays within a stated error of the float model, shrinks the
stored bytes by the format's ratio and round-trips through an export. Options that cannot run
on this machine's device are refused with torchao's reason (and run where a GPU is present)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from minsearch.catalog import get_option, options_for, parse_option
from minsearch.catalog.precision import PRECISIONS
from minsearch.errors import UserError
from minsearch.layers.deploy import deploy_problems, deployed
from minsearch.layers.precision import Precision, PrecisionLayer, unavailable
from minsearch.models import build_model
from minsearch.objectives.size import Flops, state_bytes, stored_tensors
from minsearch.sites import find_sites
from minsearch.surgery import apply_
from minsearch.tasks.candidate import export_blob, load_candidate

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

MODELS = {  # spec, input
    "resnet": ("timm:resnet18?num_classes=16&layers=[1,1,1,1]&channels=[16,32,64,64]"
               "&stem_width=16", lambda: torch.randn(2, 3, 32, 32)),
    "vit": ("timm:vit_tiny_patch16_224?img_size=32&num_classes=10",
            lambda: torch.randn(2, 3, 32, 32)),
    "gpt": ("minsearch.text.gpt:char_gpt?block_size=16&n_embd=128&n_head=2&n_layer=2",
            lambda: torch.randint(0, 60, (2, 16))),
}

# Relative L2 error of the deployed model's logits vs the float model's (random weights, seed 0).
# Measured on CPU (resnet / vit / gpt): int8 weights 0.013 / 0.040 / 0.004, int8 dynamic
# 0.008 / 0.041 / 0.008, fp8 weights 0.020 / 0.171 / 0.027 (e4m3 keeps 3 mantissa bits: ~3%
# per weight). Bounds are about twice the worst.
ERROR_BOUND = {"int8-weight": 0.08, "int8-dynamic": 0.08, "fp8-weight": 0.35,
               "fp8-dynamic": 0.35, "int4-weight": 0.5}


def _expected_bytes(layer: nn.Module, precision: Precision) -> int:
    """Bytes torchao stores for an int8/fp8 weight: 1 per value plus an fp32 scale (and an
    int8 zero point for int8) per output channel -- for a conv per output channel and kernel
    position (torchao's intx layout)."""
    w = layer.weight
    rows = w.shape[0] * (w[0, 0].numel() if w.dim() > 2 else 1)
    zero_point = 1 if precision.weight == "int8" else 0
    return w.numel() + rows * (4 + zero_point)


@functools.cache
def _model(name: str):
    spec, make_input = MODELS[name]
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = make_input()
    return spec, model, x, find_sites(model, x)


def _genome(sites, option: str) -> dict[str, str]:
    """``option`` at every linear and conv site where it applies (int8 conv: not on the
    3-channel stem)."""
    return {s.name: option for kind in ("linear", "conv") for s in sites.of_kind(kind)
            if option in s.options}


def _runs_here(option: str) -> bool:
    kinds = ["linear"] + (["conv"] if option in options_for("conv") else [])
    return all(unavailable(PRECISIONS[option], kind == "conv", DEVICE) is None for kind in kinds)


CASES = [(m, o) for m in MODELS for o in PRECISIONS]


@pytest.mark.parametrize(("name", "option"), CASES)
def test_every_option_applies_runs_and_round_trips(name, option, tmp_path):
    spec, model, x, sites = _model(name)
    candidate = copy.deepcopy(model)
    if not _runs_here(option) and _genome(sites, option):  # refused before training, why
        apply_(candidate, _genome(sites, option), x, discovery=sites)
        problems = deploy_problems(candidate, DEVICE)
        assert problems and all(("CUDA" in p or "torchao" in p) for p in problems), problems
        return
    if not _genome(sites, option):  # int4 needs 1024-wide inputs: none of these models has
        assert option == "int4-weight"
        assert all(s.detail.in_features % 1024 for s in sites.of_kind("linear"))
        return
    model, x = model.to(DEVICE), x.to(DEVICE)
    candidate = copy.deepcopy(model)
    apply_(candidate, _genome(sites, option), x, discovery=sites)
    layers = [m for m in candidate.modules() if isinstance(m, PrecisionLayer)]
    assert len(layers) == len(_genome(sites, option)) > 0
    deploy = deployed(candidate.eval())
    assert not any(isinstance(m, PrecisionLayer) for m in deploy.modules())
    with torch.no_grad():
        ref, out = model(x).float(), deploy(x).float()
    error = float((out - ref).norm() / ref.norm())
    assert 0 < error < ERROR_BOUND[option], f"{name} {option}: relative error {error:.4f}"

    for layer in layers:  # the real stored bytes of each quantized weight, scales included
        real = layer.deploy()
        q_weight = getattr(real, "layer", real).weight  # int4 computes in bf16 (a wrapper)
        stored = sum(t.numel() * t.element_size() for t in stored_tensors(q_weight))
        assert stored == _expected_bytes(layer.layer, PRECISIONS[option]), f"{name} {option}"
    assert state_bytes(deploy) < state_bytes(model)

    blob = export_blob(spec, _genome(sites, option), candidate.state_dict(), tuple(x.shape),
                       str(x.dtype).removeprefix("torch."))
    torch.save(blob, tmp_path / "c.pt")
    loaded = load_candidate(tmp_path / "c.pt", map_location=str(DEVICE))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), deploy(x), atol=0, rtol=0)


def test_int4_weights_on_1024_wide_layers():
    """int4 (tinygemm, CUDA): half a byte per weight plus a bf16 scale and zero per group of
    32: 6.4x fewer bytes than fp32. On a CPU it is refused with the reason."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    x = torch.randn(4, 1024)
    sites = find_sites(model, x)
    assert [s.name for s in sites.of_kind("linear") if "int4-weight" in s.options] == ["0", "2"]
    candidate = copy.deepcopy(model)
    apply_(candidate, {"0": "int4-weight", "2": "int4-weight"}, x, discovery=sites)
    if DEVICE.type == "cpu":
        assert "int4 weights need CUDA" in deploy_problems(candidate, DEVICE)[0]
        return
    model, candidate, x = model.to(DEVICE), candidate.to(DEVICE), x.to(DEVICE)
    deploy = deployed(candidate.eval())
    stored = sum(t.numel() * t.element_size() for t in stored_tensors(deploy[0].layer.weight))
    assert 1024 * 1024 * 4 / stored == pytest.approx(6.4)
    with torch.no_grad():
        ref, out = model(x), deploy(x)
    assert float((out - ref).norm() / ref.norm()) < ERROR_BOUND["int4-weight"]


def test_precision_beside_a_graph_rewrite_deploys():
    """A block whose residual is rewritten (its forward becomes a graph) and whose linears carry
    precision genes: deploying swaps the linears under the graph, which calls them whole."""
    _, model, x, sites = _model("vit")
    candidate = copy.deepcopy(model)
    genome = {"residual:*": "rezero", "linear:*": "int8-weight"}
    apply_(candidate, genome, x, discovery=sites)
    with torch.no_grad():
        trained = candidate.eval()(x)
        out = deployed(candidate)(x)
    assert torch.isfinite(out).all() and (out - trained).abs().max() < 1e-4


def test_int8_weights_hold_a_quarter_of_the_bytes_of_the_model_linears():
    _, model, x, sites = _model("vit")
    candidate = copy.deepcopy(model)
    apply_(candidate, {"linear:*": "int8-weight"}, x, discovery=sites)
    linear_bytes = sum(state_bytes(m) for m in model.modules() if isinstance(m, nn.Linear))
    saved = state_bytes(model) - state_bytes(deployed(candidate))
    assert 0.70 * linear_bytes < saved < 0.75 * linear_bytes  # weights /4, biases stay fp32


@pytest.mark.parametrize("weight", ["int8", "fp8"])
def test_qat_forward_equals_the_deployed_layer_and_trains_the_float_weight(weight):
    torch.manual_seed(0)
    layer = PrecisionLayer(nn.Linear(64, 32), Precision(weight))
    x = torch.randn(5, 64)
    out = layer(x)
    with torch.no_grad():
        torch.testing.assert_close(out, layer.deploy()(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out, layer.layer(x))  # the rounding is really there
    out.square().sum().backward()  # straight-through: the float weight gets the gradient
    assert layer.layer.weight.grad is not None and layer.layer.weight.grad.abs().sum() > 0


def test_qat_conv_equals_the_real_int8_conv():
    torch.manual_seed(0)
    layer = PrecisionLayer(nn.Conv2d(8, 16, 3), Precision("int8"))
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        fake, real = layer(x), layer.deploy()(x)
        torch.testing.assert_close(fake, real, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(fake, layer.layer(x))


@pytest.mark.parametrize("option", [o for o in PRECISIONS if _runs_here(o)])
def test_an_all_zero_weight_stays_finite(option):
    """A zero-initialised layer: torchao's fp8 scale would be 0 / 448 (NaN) without a floor."""
    layer = nn.Linear(32, 32).to(DEVICE)
    nn.init.zeros_(layer.weight)
    wrapped = PrecisionLayer(layer, PRECISIONS[option])
    x = torch.randn(4, 32, device=DEVICE)
    atol = 1e-6 if PRECISIONS[option].compute_dtype is None else 1e-3  # bf16 bias: 2^-9
    with torch.no_grad():
        for out in (wrapped(x), wrapped.deploy()(x)):
            torch.testing.assert_close(out.float(), layer(x), atol=atol, rtol=0)


def test_ptq_trains_in_float_and_quantizes_only_when_deployed():
    torch.manual_seed(0)
    layer = PrecisionLayer(nn.Linear(64, 32), Precision("int8", "int8"), training="ptq")
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.layer(x), atol=0, rtol=0)
        assert not torch.allclose(layer.deploy()(x), layer.layer(x))


def test_int8_dynamic_flops_are_counted():
    torch.manual_seed(0)
    float_layer = nn.Sequential(nn.Linear(64, 32))
    q = deployed(nn.Sequential(PrecisionLayer(copy.deepcopy(float_layer[0]),
                                              Precision("int8", "int8"))))

    class _Data:
        test = None

        @staticmethod
        def examples(split, n):
            return (torch.randn(n, 64),)

    def flops(model):
        ctx = type("Ctx", (), {"model": model, "data": _Data, "device": torch.device("cpu")})
        return Flops().measure(ctx)

    assert flops(q) == flops(float_layer) == 2 * 64 * 32


def test_int8_conv_is_not_offered_where_scales_cost_more_than_it_saves():
    _, _, _, sites = _model("resnet")
    convs = {s.name: s for s in sites.of_kind("conv")}
    assert "int8-weight" not in convs["conv1"].options  # the stem: 3 input channels
    assert all("int8-weight" in s.options for n, s in convs.items() if n != "conv1")
    depthwise = find_sites(nn.Sequential(nn.Conv2d(32, 32, 3, groups=32)), (1, 32, 8, 8))
    assert depthwise.of_kind("conv")[0].options == ("keep",)


def test_options_of_each_kind_and_their_refusals_on_cpu():
    assert set(options_for("linear")) == {"keep", *PRECISIONS}
    assert set(options_for("conv")) == {"keep", "int8-weight"}
    cpu = torch.device("cpu")
    for option, expected in [("fp8-dynamic", "compute capability >= 8.9"),
                             ("int4-weight", "int4 weights need CUDA")]:
        config = parse_option("linear", option)
        assert expected in get_option("linear", option).unavailable_on(config, cpu)
    for option in ("int8-weight", "int8-dynamic", "fp8-weight"):
        config = parse_option("linear", option)
        assert get_option("linear", option).unavailable_on(config, cpu) is None


def test_bad_option_parameters_are_one_clear_error():
    with pytest.raises(UserError, match="`training` of linear/int8-weight must be one of"):
        parse_option("linear", {"name": "int8-weight", "training": "fp32"})
    with pytest.raises(UserError, match="`group_size` of linear/int4-weight must be one of"):
        parse_option("linear", {"name": "int4-weight", "group_size": 48})
    with pytest.raises(UserError, match="no parameter 'group_size'"):
        parse_option("conv", {"name": "int8-weight", "group_size": 32})
