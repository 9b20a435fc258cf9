"""Datasets: every source becomes tensors, split deterministically and disjointly."""

from __future__ import annotations

import pytest
import torch

from minsearch.errors import UserError
from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import load_data


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.flatten(1)}


def test_digits_split_is_a_disjoint_partition(digits):
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == 1797 and sizes == [1079, 359, 359]
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    x = torch.cat([digits.train.x, digits.val.x, digits.test.x])
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    train, val, test = rows(digits.train.x), rows(digits.val.x), rows(digits.test.x)
    # digits has a few duplicate images; nearly all rows must be split-exclusive
    assert len(train & test) < 10 and len(train & val) < 10


def test_split_is_deterministic_per_seed(digits):
    again = load_data(DataConfig())
    assert torch.equal(again.test.x, digits.test.x) and torch.equal(again.test.y, digits.test.y)
    other = load_data(DataConfig(data_seed=1))
    assert not torch.equal(other.test.y, digits.test.y)


def test_max_samples_takes_a_seeded_subset():
    data = load_data(DataConfig(max_samples=200))
    assert len(data.train) + len(data.val) + len(data.test) == 200


def test_batches_are_normalised_with_train_statistics(digits):
    x, y = next(digits.batches(digits.train, len(digits.train)))
    assert x.mean().abs() < 1e-4 and (x.std() - 1).abs() < 1e-2
    zero, _ = next(digits.batches(digits.train, 4, corrupt=lambda im: im * 0))
    assert torch.allclose(zero, ((0 - digits.mean) / digits.std).expand_as(zero))


def test_factory_returning_a_tensor_pair():
    data = load_data(DataConfig(dataset="tests.tasks.factories:pair_dataset",
                                data_kwargs={"n": 50}))
    assert len(data.train) + len(data.val) + len(data.test) == 50
    assert data.num_classes == 2 and data.input_shape == (1, 6, 6)


def test_factory_returning_train_and_test():
    data = load_data(DataConfig(dataset="tests.tasks.factories:split_dataset"))
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 60


def test_factory_that_cannot_be_imported_names_itself():
    with pytest.raises(UserError, match="tests.tasks.factories:missing"):
        load_data(DataConfig(dataset="tests.tasks.factories:missing"))


def test_image_folder_is_read_and_resized(tmp_path):
    from PIL import Image

    for label, shade in (("cat", 40), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(10):
            Image.new("RGB", (12, 10), (shade, shade, i)).save(tmp_path / label / f"{i}.png")
    data = load_data(DataConfig(dataset="imagefolder", data_root=str(tmp_path), image_size=8,
                                num_workers=0))
    assert data.input_shape == (3, 8, 8) and data.num_classes == 2  # streamed, resized
    x, _ = data.examples(data.train, 4)
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32
    assert len(data.train) + len(data.val) + len(data.test) == 20


def test_torchvision_dataset_is_never_downloaded(tmp_path):
    with pytest.raises(UserError, match="never downloads"):
        load_data(DataConfig(dataset="torchvision:MNIST", data_root=str(tmp_path)))
    assert not any(tmp_path.rglob("*.gz"))


def test_unknown_torchvision_dataset():
    with pytest.raises(UserError, match="has no dataset 'CIFAR11'"):
        load_data(DataConfig(dataset="torchvision:CIFAR11", data_root="/tmp"))
