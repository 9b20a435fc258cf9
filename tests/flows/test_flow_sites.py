"""The flow site kinds under the one kind contract: discovered, described, applied by
``apply_`` (module swaps that change forward and inverse together)."""

from __future__ import annotations

import pytest
import torch

from minsearch.errors import UserError
from minsearch.flows.actnorm import FrozenActNorm
from minsearch.flows.base import IdentityFlow, InverseTrack
from minsearch.flows.coupling import AdditiveHead, Coupling
from minsearch.flows.mixing import Permutation
from minsearch.flows.residual import ResidualFlowBlock
from minsearch.flows.zoo import glow_digits
from minsearch.sites import find_sites
from minsearch.surgery import Genome, apply_

X = torch.rand(4, 1, 8, 8) - 0.5


def _glow():
    torch.manual_seed(0)
    return glow_digits(steps=2, hidden=8)


def test_glow_sites_per_kind_and_no_graph_sites_inside_the_flow():
    d = find_sites(_glow(), X)
    counts = d.counts()
    assert {k: counts[k] for k in ("actnorm", "mixing", "coupling", "invertibility")} == \
        {"actnorm": 4, "mixing": 4, "coupling": 4, "invertibility": 4}
    assert counts["residual"] == counts["norm"] == 0  # a coupling's add is no residual
    assert "forward but not inverse" in d.unavailable[0].reason
    site = d["body.scale.steps.0.transform"]
    assert site.options == ("keep", "residual-sn", "residual-soft")
    assert site.detail.shape == (4, 4, 4) and "exact log-det" in site.detail.exactness
    assert d["body.scale.inner.steps.1.transform.head"].options == ("keep", "additive")
    assert site.block == "body.scale.steps.0" and site.stage == "body.scale.steps"


def test_every_flow_option_applies_and_the_flow_still_inverts():
    model = _glow().eval()
    genome = {"actnorm:.*inner.*": "frozen", "actnorm:body\\.scale\\.steps.*": "identity",
              "mixing:*": "permutation", "coupling:.*inner.*": "additive",
              "invertibility:body\\.scale\\.steps.*": "residual-sn"}
    report = apply_(model, genome, X)
    assert len(report) == 4 + 4 + 2 + 2  # actnorm, mixing, coupling, invertibility
    part = lambda path: model.get_submodule(f"body.scale.{path}")  # noqa: E731
    assert isinstance(part("inner.steps.0.norm"), FrozenActNorm)
    assert isinstance(part("steps.0.norm"), IdentityFlow)
    assert isinstance(part("inner.steps.1.mix"), Permutation)
    assert isinstance(part("inner.steps.0.transform.head"), AdditiveHead)
    assert isinstance(part("steps.1.transform"), ResidualFlowBlock)
    # one permutation per step
    assert not torch.equal(part("inner.steps.0.mix").perm, part("inner.steps.1.mix").perm)
    model.eval()
    z, _ = model.transform(X)
    track = InverseTrack()
    assert (model.invert(z, track) - X).abs().max() < 1e-5 and bool(track.converged.all())
    assert torch.isfinite(model.train()(X)).all()


def test_resolved_genome_rebuilds_the_same_candidate():
    model = _glow()
    report = apply_(model, {"invertibility:*": {"name": "residual-sn", "iters": 7},
                            "mixing:*": "reverse"}, X)
    again = _glow()
    apply_(again, Genome.from_json(report.genome), X)
    assert [type(m).__name__ for m in again.modules()] == \
        [type(m).__name__ for m in model.modules()]
    assert all(b.iters == 7 for b in again.modules() if isinstance(b, ResidualFlowBlock))


def test_exact_returns_a_residual_step_to_a_coupling():
    model = glow_digits(steps=1, hidden=8, transform="residual-sn")
    d = find_sites(model, X)
    site = d["body.scale.steps.0.transform"]
    assert site.options == ("keep", "exact", "residual-sn", "residual-soft")
    assert "fixed-point" in site.detail.exactness and "estimated" in site.detail.exactness
    apply_(model, {"invertibility:*": "exact"}, X)
    assert isinstance(model.get_submodule("body.scale.steps.0.transform"), Coupling)


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "residual-sn", "coeff": 1.2}, r"0 < coeff < 1"),
    ({"name": "residual-sn", "logdet": "taylor"}, r"`logdet`.*series, roulette, exact"),
    ({"name": "residual-soft", "terms": 0}, r"`terms`.*int >= 1"),
])
def test_invertibility_configs_name_the_rule(spec, message):
    with pytest.raises(UserError, match=message):
        apply_(_glow(), {"invertibility:*": spec}, X)
