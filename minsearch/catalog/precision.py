"""Linear and conv weight-precision genes: sites are found now; precision options come later."""

from minsearch.catalog.keep import keep_option

KeepLinear = keep_option("linear")
KeepConv = keep_option("conv")
