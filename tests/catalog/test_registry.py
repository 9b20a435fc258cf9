"""The catalog, tested per registered option: a new option is covered without a new test."""

import copy

import pytest
import torch

from minsearch.catalog import OptionConfig, all_options, get_option, options_for, parse_option
from minsearch.sites import find_sites
from minsearch.surgery import apply_
from tests import zoo

OPTIONS = all_options()
IDS = [f"{o.kind}/{o.name}" for o in OPTIONS]


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_config_round_trips_through_json(option):
    config = option.make_config()
    data = config.to_json()
    assert data["type"] == f"{option.kind}/{option.name}" and data["version"] >= 1
    assert OptionConfig.from_json(data) == config
    assert parse_option(option.kind, data) == config
    assert parse_option(option.kind, option.name) == config


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_option_on_every_zoo_model(option):
    """Each option, at every zoo site where it applies: trains with finite gradients, and
    options declared identity-preserving reproduce the original output."""
    used = 0
    for name, (factory, example, _, _) in zoo.ZOO.items():
        torch.manual_seed(0)
        model, x = factory(), example()
        sites = [s for s in find_sites(model, x).of_kind(option.kind)
                 if option.name in s.options]
        if not sites:
            continue
        used += 1
        ref = model.eval()(x)
        candidate = copy.deepcopy(model)
        report = apply_(candidate, {s.name: option.name for s in sites}, x)
        if option.identity:
            torch.testing.assert_close(candidate.eval()(x), ref, atol=1e-5, rtol=1e-5)
        out = candidate.train()(x)
        assert torch.isfinite(out).all(), name
        if out.requires_grad:  # dropping every branch of a one-residual model leaves no weights
            out.float().square().mean().backward()
            grads = [p.grad for p in candidate.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads), name
        assert len(report) == (0 if option.name == "keep" else len(sites))
    assert used, f"no zoo model has a site where {option.kind}/{option.name} applies"


def test_keep_is_first_for_every_kind():
    for kind in ("norm", "residual", "activation", "attention", "linear", "conv"):
        assert options_for(kind)[0] == "keep"


def test_catalog_v1_is_complete():
    assert set(options_for("norm")) >= {"keep", "identity", "rmsnorm", "dyt", "affine", "frozen"}
    assert set(options_for("residual")) >= {"keep", "drop-skip", "drop-branch", "rezero", "gate",
                                            "layerscale", "scaled"}
    assert set(options_for("activation")) >= {"keep", "relu", "gelu-tanh", "identity"}


def test_registry_miss_names_what_is_known():
    with pytest.raises(ValueError, match=r"Unknown option 'dty' for norm; known: keep, .*dyt"):
        get_option("norm", "dty")
    with pytest.raises(ValueError, match=r"Unknown site kind 'nrom'"):
        get_option("nrom", "dyt")


def test_configs_validate_and_name_the_fix():
    with pytest.raises(ValueError, match="alpha_init > 0"):
        parse_option("norm", {"name": "dyt", "alpha_init": 0})
    with pytest.raises(ValueError, match="has no parameter 'alpha'; known: alpha_init"):
        parse_option("norm", {"name": "dyt", "alpha": 1})
    with pytest.raises(ValueError, match="is for residual sites, not norm"):
        parse_option("norm", parse_option("residual", "gate"))
    with pytest.raises(ValueError, match="stored at version 9"):
        OptionConfig.from_json({"type": "norm/dyt", "version": 9})
