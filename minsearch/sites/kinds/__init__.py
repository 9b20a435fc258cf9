"""The built-in site kinds, one module each; importing this package registers them."""

from minsearch.sites.kinds import (  # noqa: F401  (modules register on import)
    activation,
    actnorm,
    attention,
    conv,
    coupling,
    invertibility,
    linear,
    mixing,
    norm,
    pair,
    residual,
)
