"""Each flow block's inverse and log-det against a brute-force Jacobian (torch.func.jacrev),
in float64 on small inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import jacrev

from minsearch.flows.actnorm import ActNorm, FrozenActNorm
from minsearch.flows.base import FlowSequence, IdentityFlow, InverseTrack
from minsearch.flows.coupling import Coupling
from minsearch.flows.mixing import InvertibleLinear, Permutation, Reverse
from minsearch.flows.residual import ResidualFlowBlock
from minsearch.flows.squeeze import Scale


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial weights (couplings start as the identity, ActNorm at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _brute_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log |det| of the Jacobian of ``fn`` (one example in, same shape out) at each ``x``."""
    def flat(v):  # (D,) -> (D,)
        return fn(v.view(1, *x.shape[1:])).flatten()

    return torch.stack([torch.linalg.slogdet(jacrev(flat)(xi.flatten()))[1] for xi in x])


EXACT_BLOCKS = {
    "actnorm-vector": (lambda: ActNorm(3), (4, 3)),
    "actnorm-map": (lambda: ActNorm(2), (3, 2, 2, 2)),
    "frozen-actnorm": (lambda: FrozenActNorm.from_module(_randomize(ActNorm(3), 9)), (4, 3)),
    "linear-vector": (lambda: InvertibleLinear(3, seed=1), (4, 3)),
    "linear-1x1conv": (lambda: InvertibleLinear(4, seed=2), (2, 4, 2, 2)),
    "permutation": (lambda: Permutation(5, seed=3), (3, 5)),
    "reverse": (lambda: Reverse(), (3, 4)),
    "identity": (lambda: IdentityFlow(), (3, 4)),
    "affine-coupling-vector": (lambda: Coupling((4,), 8), (3, 4)),
    "additive-coupling-vector": (lambda: Coupling((3,), 8, additive=True), (3, 3)),
    "affine-coupling-map": (lambda: Coupling((4, 2, 2), 6), (2, 4, 2, 2)),
    "step": (lambda: FlowSequence({"norm": ActNorm(4), "mix": InvertibleLinear(4),
                                   "transform": Coupling((4,), 8)}), (3, 4)),
    "two-scale": (lambda: Scale(Coupling((4, 2, 2), 6), Scale(Coupling((8, 1, 1), 6))),
                  (2, 1, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(EXACT_BLOCKS))
def test_exact_block_inverse_and_logdet_match_brute_force(name):
    make, shape = EXACT_BLOCKS[name]
    torch.manual_seed(0)
    block = make().double()
    if name != "frozen-actnorm":
        _randomize(block, seed=1)
    block.eval()
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y, logdet = block(x)
    assert y.shape == x.shape and logdet.shape == (shape[0],)
    torch.testing.assert_close(block.inverse(y), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet, _brute_logdet(lambda v: block(v)[0], x),
                               atol=1e-10, rtol=0)


def test_actnorm_initialises_from_the_first_training_batch():
    x = 3.0 + 2.0 * torch.randn(512, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    y, _ = ActNorm(2).train()(x)
    flat = y.transpose(0, 1).reshape(2, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(1), torch.ones(2), atol=1e-4, rtol=0)


def test_frozen_actnorm_does_not_train():
    frozen = FrozenActNorm.from_module(_randomize(ActNorm(3), 0))
    assert not any(p.requires_grad for p in frozen.parameters())


def _residual(dims: int = 4, **kwargs) -> ResidualFlowBlock:
    torch.manual_seed(0)
    block = ResidualFlowBlock((dims,), hidden=16, **kwargs).double().eval()
    block.generator = torch.Generator().manual_seed(5)
    return block


def test_residual_block_exact_logdet_matches_brute_force():
    block = _residual(logdet="exact", coeff=0.9)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y, logdet = block(x)
    torch.testing.assert_close(y, x + block.g(x))
    torch.testing.assert_close(logdet, _brute_logdet(lambda v: v + block.g(v), x),
                               atol=1e-10, rtol=0)


def test_residual_block_with_lipschitz_below_one_inverts_to_1e_5():
    torch.manual_seed(0)
    block = ResidualFlowBlock((4, 2, 2), hidden=32, coeff=0.9).eval()  # float32, 16 dims
    assert block.lipschitz_bound() < 1.0
    x = torch.randn(64, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    y, _ = block(x)
    track = InverseTrack()
    x_back = block.inverse(y, track)
    assert (x_back - x).abs().max() < 1e-5
    assert bool(track.converged.all()) and track.iterations < block.iters


def test_soft_residual_penalty_counts_spectral_norms_above_the_bound():
    block = _residual(spectral=False, penalty=1.0, coeff=0.5)
    with torch.no_grad():
        for m in block.net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(10)
    excess = [float(torch.linalg.matrix_norm(m.weight.detach(), ord=2)) - 0.5 for m in block.net
              if isinstance(m, nn.Linear)]
    assert float(block.penalty().detach()) == pytest.approx(sum(max(0.0, e) ** 2 for e in excess))
    assert _residual(spectral=True).penalty() is None
