"""Attention options. (Precision options arrive with the low-precision attention work.)"""

from minsearch.catalog.keep import keep_option

KeepAttention = keep_option("attention")
