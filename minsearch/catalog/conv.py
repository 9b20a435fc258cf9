"""Conv options: keep · int8-weight (:mod:`minsearch.catalog.precision`: the format torchao
quantizes convolutions to)."""

from minsearch.catalog.keep import keep_option
from minsearch.catalog.precision import CONV_PRECISIONS, precision_options

KeepConv = keep_option("conv")
CONV_PRECISION_OPTIONS = precision_options("conv", CONV_PRECISIONS)
