"""The CPU live-tensor counter behind the peak-memory objectives."""

from __future__ import annotations

import torch

from minsearch.objectives.memory import LiveTensorBytes


def test_counts_new_storages_until_freed():
    with LiveTensorBytes() as tracker:
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2  # 4000 more
        del a, b
        c = torch.ones(500)  # after the frees: 2000 live
    assert tracker.peak == 8000
    assert tracker.live == 2000
    del c


def test_views_and_in_place_results_are_not_new_memory():
    x = torch.ones(1000)
    with LiveTensorBytes() as tracker:
        v = x.view(10, 100)
        x.add_(1)
        t = v.t()
    assert tracker.peak == 0
    del v, t


def test_peak_grows_with_batch():
    layer = torch.nn.Linear(256, 512)
    peaks = []
    for batch in (8, 32, 128):
        x = torch.randn(batch, 256)
        with torch.no_grad(), LiveTensorBytes() as tracker:
            layer(x).relu()
        peaks.append(tracker.peak)
    assert peaks == [b * 512 * 4 * 2 for b in (8, 32, 128)]  # linear output + relu output
