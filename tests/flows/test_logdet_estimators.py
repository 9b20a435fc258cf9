"""The residual block's log-det estimators against the exact value (float64).

Tolerance: a mean of N estimates is accepted within 4 standard errors of its target (a
false alarm about once in 16,000 runs; the seeds are fixed, so the outcome is too)."""

from __future__ import annotations

import torch
from torch.func import jacrev

from minsearch.flows.logdet import roulette_logdet, series_logdet
from minsearch.flows.residual import ResidualFlowBlock

SE = 4.0


def _setup(coeff: float = 0.9, copies: int = 2000):
    torch.manual_seed(0)
    block = ResidualFlowBlock((3,), hidden=16, coeff=coeff).double().eval()
    x0 = torch.randn(3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = jacrev(lambda v: block.g(v.view(1, 3)).flatten())(x0)  # (3, 3)
    x = x0.expand(copies, 3).clone().requires_grad_(True)  # one point, many noise draws
    return block, x, block.g(x), jac.detach()


def _within(samples: torch.Tensor, target: float) -> tuple[bool, float, float]:
    mean, se = float(samples.mean()), float(samples.std() / len(samples) ** 0.5)
    return abs(mean - target) <= SE * se, mean, se


def _truncated(jac: torch.Tensor, terms: int) -> float:
    power, total = torch.eye(3, dtype=jac.dtype), 0.0
    for k in range(1, terms + 1):
        power = power @ jac
        total += (-1) ** (k + 1) * float(torch.trace(power)) / k
    return total


def test_series_estimates_its_truncated_sum_without_bias_and_states_the_truncation():
    block, x, gx, jac = _setup()
    exact = float(torch.linalg.slogdet(torch.eye(3, dtype=jac.dtype) + jac)[1])
    gen = torch.Generator().manual_seed(3)
    for terms in (1, 2, 10):
        estimates = series_logdet(gx, x, terms, generator=gen)
        ok, mean, se = _within(estimates, _truncated(jac, terms))
        assert ok, (terms, mean, se)
    # with 10 terms the truncation bias is below the bound Lip^11 / (1 - Lip) * dims
    assert abs(_truncated(jac, 10) - exact) < 0.9 ** 11 / 0.1 * 3
    # one term (the trace) is measurably off: the series option is biased, as it says
    assert abs(_truncated(jac, 1) - exact) > 1e-3


def test_russian_roulette_is_unbiased_for_the_whole_series():
    block, x, gx, jac = _setup(copies=20)
    exact = float(torch.linalg.slogdet(torch.eye(3, dtype=jac.dtype) + jac)[1])
    gen = torch.Generator().manual_seed(4)
    # one geometric draw per call: the unit of independence is a call's mean
    means = torch.stack([roulette_logdet(gx, x, 1, p_stop=0.5, generator=gen).mean()
                         for _ in range(600)])
    ok, mean, se = _within(means, exact)
    assert ok, (mean, exact, se)
    assert abs(_truncated(jac, 1) - exact) > SE * se  # the first term alone would be rejected


def test_roulette_draws_a_geometric_number_of_extra_terms(monkeypatch):
    block, x, gx, _ = _setup(copies=2)
    gen = torch.Generator().manual_seed(0)
    calls = []
    original = torch.autograd.grad

    def counting(*args, **kwargs):  # one vector-Jacobian product per series term
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    counts = []
    for _ in range(400):
        calls.clear()
        roulette_logdet(gx, x, 2, p_stop=0.5, generator=gen)
        counts.append(len(calls) - 2)
    counts = torch.tensor(counts, dtype=torch.float64)
    assert counts.min() == 0
    ok, mean, se = _within(counts, 1.0)  # E[m] = (1 - p) / p = 1
    assert ok, (mean, se)
