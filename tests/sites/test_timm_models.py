"""Discovery and surgery on real timm models from many families (random weights, CPU)."""

import copy
import functools

import pytest
import timm
import torch

from minsearch.catalog import all_options
from minsearch.sites import find_sites
from minsearch.surgery import apply_

# name -> (exact residual count, attention sites expected, input size used at 224)
DISCOVERY = {
    "resnet18": (8, False),
    "vit_tiny_patch16_224": (24, True),
    "deit_tiny_patch16_224": (24, True),
    "convnext_atto": (12, False),
    "efficientnet_b0": (9, False),
    "mobilenetv3_small_100": (6, False),
    "regnetx_002": (13, False),
    "swin_tiny_patch4_window7_224": (24, True),
    "mixer_s16_224": (16, False),
    "levit_128s": (20, True),
    "nf_resnet26": (8, False),
    "vgg11": (0, False),
    "densenet121": (0, False),
    "inception_v3": (0, False),
}


def meta_model(name: str, **kwargs):
    with torch.device("meta"):
        return timm.create_model(name, **kwargs)


@pytest.mark.parametrize("name", sorted(DISCOVERY))
def test_discovery_on_the_meta_device(name):
    residuals, has_attention = DISCOVERY[name]
    size = 299 if name == "inception_v3" else 224
    d = find_sites(meta_model(name), (1, 3, size, size))
    counts = d.counts()
    assert counts["residual"] == residuals
    assert (counts["attention"] > 0) == has_attention
    assert counts["activation"] > 0 and counts["conv"] + counts["linear"] > 0
    if name not in ("vgg11", "nf_resnet26"):  # VGG and NF-nets have no norms
        assert counts["norm"] > 0
    assert d.shape_error is None


def test_vit_pos_embed_add_is_not_a_residual():
    d = find_sites(meta_model("vit_tiny_patch16_224"), (1, 3, 224, 224))
    assert {s.owner for s in d.of_kind("residual")} == {f"blocks.{i}" for i in range(12)}


def test_nfnet_residuals_inside_timm_leaf_blocks_are_visible():
    # timm's own FX leaf list hides NormFreeBlock; our tracer traces through it
    owners = {s.owner for s in find_sites(meta_model("nf_resnet26")).of_kind("residual")}
    assert "stages.0.0" in owners


def test_large_model_on_meta_device():
    model = meta_model("vit_large_patch16_224")
    assert sum(p.numel() for p in model.parameters()) > 300e6
    d = find_sites(model, (1, 3, 224, 224))
    assert d.counts()["residual"] == 48 and d.counts()["attention"] == 24


# Real-weight surgery: small inputs keep it fast.
SURGERY = {
    "resnet18": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "deit_tiny_patch16_224": {"img_size": 32},
    "convnext_atto": {},
    "efficientnet_b0": {},
    "mobilenetv3_small_100": {},
    "regnetx_002": {},
    "mixer_s16_224": {"img_size": 32},
    "levit_128s": {"img_size": 64},
    "nf_resnet26": {},
    "swin_tiny_patch4_window7_224": {"img_size": 64, "window_size": 4},
    "vgg11_bn": {"mlp_ratio": 0.0625},  # a 256-wide head instead of 4096: seconds, not minutes
}


# What each model lacks (so the option loops below name it instead of skipping silently).
WITHOUT = {"nf_resnet26": "norm", "vgg11_bn": "residual"}
HAS_BATCH_NORM = {"efficientnet_b0", "levit_128s", "mobilenetv3_small_100", "regnetx_002",
                  "resnet18", "vgg11_bn"}


@functools.cache
def _found(name: str):
    """A model with real weights, its input and its sites, built once per model."""
    torch.manual_seed(0)
    kwargs = SURGERY[name]
    model = timm.create_model(name, num_classes=10, **kwargs).eval()
    size = kwargs.get("img_size", 32)
    x = torch.randn(2, 3, size, size)
    return model, x, find_sites(model, x)


@pytest.mark.parametrize("name", sorted(SURGERY))
def test_identity_preserving_options_reproduce_the_output(name):
    model, x, d = _found(name)
    with torch.no_grad():
        ref = model(x)
    assert d.shape_error is None  # real weights on CPU, shapes propagated on meta
    batch_norms = [s.name for s in d.of_kind("norm") if s.detail.family == "batch"]
    assert bool(batch_norms) == (name in HAS_BATCH_NORM)
    assert bool(d.of_kind("residual")) == (WITHOUT.get(name) != "residual")
    genomes = [{"residual:*": "keep", "norm:*": "keep", "activation:*": "keep"},
               {"residual:*": "gate"},  # `KIND:*` of an absent kind selects nothing
               {n: "frozen" for n in batch_norms}]
    for genome in genomes:
        candidate = copy.deepcopy(model)
        apply_(candidate, genome, x, discovery=d)
        with torch.no_grad():
            torch.testing.assert_close(candidate.eval()(x), ref, atol=1e-5, rtol=1e-5)


NON_IDENTITY = [o for o in all_options() if not o.identity and o.kind in
                ("norm", "residual", "activation")]


@pytest.mark.parametrize("name", sorted(SURGERY))
def test_every_other_option_trains_with_finite_gradients(name):
    model, x, d = _found(name)
    at = {option: [s.name for s in d.of_kind(option.kind) if option.name in s.options]
          for option in NON_IDENTITY}
    assert {o.kind for o, sites in at.items() if not sites} <= {WITHOUT.get(name)}
    for option, sites in at.items():
        if option.kind == WITHOUT.get(name):
            assert not sites
            continue
        candidate = copy.deepcopy(model).train()
        apply_(candidate, {s: option.name for s in sites}, x, discovery=d)
        out = candidate(x)
        out.float().logsumexp(-1).mean().backward()
        grads = [p.grad for p in candidate.parameters() if p.grad is not None]
        assert torch.isfinite(out).all(), f"{name} {option.kind}/{option.name}"
        assert grads and all(torch.isfinite(g).all() for g in grads), (
            f"{name} {option.kind}/{option.name}")
