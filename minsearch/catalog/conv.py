"""Conv options: ``keep`` (weight-precision options are to come)."""

from minsearch.catalog.keep import keep_option

KeepConv = keep_option("conv")
