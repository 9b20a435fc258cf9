"""Normalizing flows built from standard blocks, and the invertibility gene's replacements.

Every block is a :class:`~minsearch.flows.base.FlowLayer`: ``forward(x) -> (y, logdet)`` with
``logdet`` of shape ``(B,)`` in nats, ``inverse(y, track) -> x``. Each block says what it
computes exactly and what it estimates (:attr:`FlowLayer.exactness`):

- :mod:`.actnorm` — ActNorm (Glow): per-channel affine, data-initialised; exact.
- :mod:`.mixing` — invertible 1x1 conv / linear mixing, fixed permutation, reversal; exact.
- :mod:`.coupling` — affine or additive coupling (RealNVP, NICE); triangular Jacobian, exact.
- :mod:`.residual` — residual block ``x + g(x)`` (i-ResNet, Residual Flows): invertible by
  fixed-point iteration when ``Lip(g) < 1``; log-det by a truncated power series, an unbiased
  Russian-roulette estimator (:mod:`.logdet`) or a brute-force Jacobian (small inputs).
- :mod:`.squeeze` — squeeze and multi-scale factoring (RealNVP); exact.
- :mod:`.model` — :class:`DensityFlow`, a flow with a standard normal prior, whose
  ``forward(x)`` is ``log p(x)`` per example; :mod:`.zoo` builds the task models.
"""
