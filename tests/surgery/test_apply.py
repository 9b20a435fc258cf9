"""apply_: genomes, reports, state_dict stability, rebuild from a logged genome."""

import copy
import pickle

import pytest
import torch

from minsearch.sites import find_sites
from minsearch.surgery import Genome, apply_
from tests import zoo


def test_selectors_kind_regex_and_exact_names():
    model = zoo.GPT(n_layer=3)
    genome = {"norm:*": "dyt", r"norm:h\.1\..*": "rmsnorm", "h.2.ln_2": "identity",
              r"residual:h\.[01]\..*": "gate"}
    report = apply_(model, genome)
    chosen = {c.site.name: c.config.name for c in report.changes}
    assert chosen["h.0.ln_1"] == "dyt" and chosen["ln_f"] == "dyt"
    assert chosen["h.1.ln_1"] == chosen["h.1.ln_2"] == "rmsnorm"
    assert chosen["h.2.ln_2"] == "identity"
    assert sorted(n for n, o in chosen.items() if o == "gate") == [
        "h.0.residual_0", "h.0.residual_1", "h.1.residual_0", "h.1.residual_1"]
    assert "h.2.residual_0" not in chosen


@pytest.mark.parametrize("genome, message", [
    ({"norm:blocks.*": "dyt"}, "matches no norm site; norm sites look like: h.0.ln_1"),
    ({"h.0.ln_9": "dyt"}, "neither a site name nor 'KIND:PATTERN'"),
    ({"norm:*": "dty"}, "Unknown option 'dty' for norm"),
    ({"ln_f": "gate"}, "Unknown option 'gate' for norm"),
    ({"norm:(": "dyt"}, "invalid regex"),
])
def test_genome_mistakes_fail_before_the_model_is_touched(genome, message):
    model = zoo.GPT()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        apply_(model, genome)
    assert model.state_dict().keys() == before.keys() and "forward" not in model.__dict__


def test_inapplicable_option_is_refused():
    with pytest.raises(ValueError, match="'frozen' cannot be used at layer_norm_0"):
        apply_(zoo.FunctionalNorm(), {"layer_norm_0": "frozen"})


def test_report_lists_every_change_and_keep_changes_nothing():
    model = zoo.ConvBNBlock()
    assert len(apply_(copy.deepcopy(model), {"norm:*": "keep", "residual:*": "keep"})) == 0
    report = apply_(model, {"norm:*": "affine", "residual_0": "rezero"})
    assert [str(c) for c in report.changes] == [
        "bn1: BatchNorm2d -> Affine (affine)", "bn2: BatchNorm2d -> Affine (affine)",
        "shortcut.1: BatchNorm2d -> Affine (affine)", "residual_0: add -> ResidualScale (rezero)"]


def test_untouched_state_dict_keys_survive_and_gates_are_named_after_sites():
    model = zoo.GPT()
    keys = set(model.state_dict())
    apply_(model, {"residual:*": "rezero", "h.0.ln_1": "dyt"})
    new = set(model.state_dict())
    assert {k for k in keys if not k.startswith("h.0.ln_1.")} <= new
    assert {"h.0.residual_0.alpha", "h.1.residual_1.alpha", "h.0.ln_1.alpha"} <= new


def test_rebuilt_exactly_from_the_logged_genome():
    torch.manual_seed(0)
    x = torch.randint(0, 32, (2, 16))
    trained = zoo.GPT()
    report = apply_(trained, {"residual:*": "layerscale", "norm:*": "dyt",
                              "activation:*": "gelu-tanh"}, x)
    opt = torch.optim.SGD(trained.parameters(), lr=0.1)
    trained(x).square().mean().backward()
    opt.step()
    logged = Genome.from_json(report.genome).to_json()  # what a results folder stores

    rebuilt = zoo.GPT()
    apply_(rebuilt, logged, x)
    rebuilt.load_state_dict(trained.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt.eval()(x), trained.eval()(x), rtol=0, atol=0)


def test_root_owned_residuals_are_rewritten_in_place():
    model = zoo.ResidualMLP()
    x = torch.randn(4, 8)
    ref = model(x)
    same = model
    apply_(model, {"residual:*": "gate"})
    assert model is same and isinstance(model, zoo.ResidualMLP)
    torch.testing.assert_close(model(x), ref)
    assert "residual_0" in dict(model.named_children())


def test_drop_branch_removes_the_branch_compute():
    model = zoo.GPT(n_layer=1)
    apply_(model, {"h.0.residual_1": "drop-branch"})
    model(torch.randint(0, 32, (2, 16)))
    ops = [n.target for n in model.h[0].forward.graph.nodes if n.op == "call_module"]
    assert "mlp.c_fc" not in ops and "attn.c_attn" in ops  # the MLP branch is dead code
    # ... and its weights are gone with it (the branch's norm too); the rest stays
    assert "mlp" not in dict(model.h[0].named_children())
    assert "ln_2" not in dict(model.h[0].named_children())
    assert not any(k.startswith("h.0.mlp.") for k in model.state_dict())
    assert "h.0.attn.c_attn.weight" in model.state_dict()


def test_drop_branch_before_an_in_place_relu_still_trains():
    model = zoo.ConvBNBlock()
    apply_(model, {"residual_0": "drop-branch"})
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert model.shortcut[0].weight.grad is not None


def test_deepcopy_is_independent_and_pickle_is_refused_clearly():
    model = zoo.GPT()
    apply_(model, {"residual:*": "gate"})
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.h[0].residual_0.alpha.fill_(0.0)
    x = torch.randint(0, 32, (2, 16))
    assert not torch.allclose(clone(x), model(x))
    assert clone.h[0].forward.module is clone.h[0]
    with pytest.raises(TypeError, match="save its state_dict and genome"):
        pickle.dumps(model)


def test_frozen_batchnorm_matches_eval_mode_and_stays_frozen_in_training():
    model = zoo.ConvBNBlock()
    model.train()
    for _ in range(3):  # give the running statistics real values
        model(torch.randn(8, 3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    ref = model.eval()(x)
    apply_(model, {"norm:*": "frozen"})
    torch.testing.assert_close(model.eval()(x), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.train()(x), ref, atol=1e-5, rtol=1e-5)


def test_functional_norm_is_lifted_with_its_weights():
    model = zoo.FunctionalNorm()
    with torch.no_grad():
        model.ln_weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 16)
    ref = model(x)
    weight = model.ln_weight.detach().clone()
    apply_(model, {"layer_norm_0": "rmsnorm"})
    lifted = model.layer_norm_0
    torch.testing.assert_close(lifted.weight, weight)
    assert "ln_weight" not in dict(model.named_parameters())  # moved, not held twice
    assert not torch.allclose(model(x), ref)  # RMSNorm drops the mean subtraction
    model(x).sum().backward()
    assert lifted.weight.grad is not None


def test_apply_to_a_rewritten_model_again():
    model = zoo.GPT()
    apply_(model, {"norm:*": "dyt"})
    sites = find_sites(model)
    assert len(sites.of_kind("residual")) == 4
    apply_(model, {"residual:*": "rezero"})
    assert model(torch.randint(0, 32, (2, 16))).shape == (2, 16, 32)
