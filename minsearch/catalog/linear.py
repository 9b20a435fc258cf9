"""Linear options: keep · int8-weight · int8-dynamic · fp8-weight · fp8-dynamic · int4-weight
(:mod:`minsearch.catalog.precision`)."""

from minsearch.catalog.keep import keep_option
from minsearch.catalog.precision import PRECISIONS, precision_options

KeepLinear = keep_option("linear")
LINEAR_PRECISIONS = precision_options("linear", tuple(PRECISIONS))
