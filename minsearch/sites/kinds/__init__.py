"""The built-in site kinds, one module each; importing this package registers them."""

from minsearch.sites.kinds import (  # noqa: F401  (modules register on import)
    activation,
    attention,
    conv,
    linear,
    norm,
    pair,
    residual,
)
