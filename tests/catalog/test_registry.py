"""The catalog, tested per registered option: a new option is covered without a new test."""

import copy
import functools

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


@functools.cache
def _zoo_sites(name: str):
    """Each zoo model's sites, found once for every option's test."""
    factory, example, _, _ = zoo.ZOO[name]
    torch.manual_seed(0)
    return find_sites(factory(), example())


def _where_it_applies(option) -> list[str]:
    return [name for name in zoo.ZOO
            if any(option.name in s.options for s in _zoo_sites(name).of_kind(option.kind))]


CASES = [(option, name) for option in OPTIONS for name in _where_it_applies(option)]
# Dropping the only residual's branch leaves a model with no weight between input and output.
NO_WEIGHTS_LEFT = {("residual/drop-branch", "functional_norm"),
                   ("residual/drop-branch", "untraceable_part")}


@pytest.mark.parametrize("option", OPTIONS, ids=IDS)
def test_every_option_applies_somewhere_in_the_zoo(option):
    assert _where_it_applies(option), f"no zoo model has a site where {option.kind}/" \
                                      f"{option.name} applies"


@pytest.mark.parametrize(("option", "model_name"), CASES,
                         ids=[f"{o.kind}/{o.name}-{n}" for o, n in CASES])
def test_option_on_zoo_model(option, model_name):
    """Each option, at every site of a zoo model where it applies: trains with finite
    gradients, and options declared identity-preserving reproduce the original output."""
    factory, example, _, _ = zoo.ZOO[model_name]
    torch.manual_seed(0)
    model, x = factory(), example()
    discovery = _zoo_sites(model_name)
    sites = [s for s in discovery.of_kind(option.kind) if option.name in s.options]
    ref = model.eval()(x)
    candidate = copy.deepcopy(model)
    report = apply_(candidate, {s.name: option.name for s in sites}, x, discovery=discovery)
    if option.identity:
        torch.testing.assert_close(candidate.eval()(x), ref, atol=1e-5, rtol=1e-5)
    out = candidate.train()(x)
    assert torch.isfinite(out).all()
    assert len(report) == (0 if option.name == "keep" else len(sites))
    if (f"{option.kind}/{option.name}", model_name) in NO_WEIGHTS_LEFT:
        assert not out.requires_grad
        return
    out.float().square().mean().backward()
    grads = [p.grad for p in candidate.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


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
