"""The corruption suite: every corruption keeps the shape, changes the image, and hurts more
at a higher severity."""

from __future__ import annotations

import pytest
import torch

from minsearch.errors import UserError
from minsearch.objectives.corruptions import corruption_names, get_corruption


@pytest.fixture
def images(digits):
    return digits.test.images(slice(0, 64))


@pytest.mark.parametrize("name", corruption_names())
def test_corruption_is_a_seeded_image_to_image_map(name, images):
    fn = get_corruption(name)
    out = fn(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and not torch.allclose(out, images)
    again = fn(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", corruption_names())
def test_higher_severity_moves_images_further(name, images):
    fn = get_corruption(name)
    distance = [float((fn(images, s, torch.Generator().manual_seed(0)).clamp(0, 1) - images)
                      .pow(2).mean()) for s in (1, 2, 3)]
    assert distance[0] < distance[1] < distance[2]


def test_unknown_corruption_lists_the_known():
    with pytest.raises(UserError, match="known: gaussian_noise"):
        get_corruption("fog")
