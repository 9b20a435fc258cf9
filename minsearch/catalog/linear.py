"""Linear options: ``keep`` (weight-precision options are to come)."""

from minsearch.catalog.keep import keep_option

KeepLinear = keep_option("linear")
