"""Streamed image data: an ImageFolder made on the fly (2,000 16x16 PNGs) read through a
DataLoader with 2 workers, trained, evaluated and measured like in-memory data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from minsearch.errors import UserError
from minsearch.tasks.config import DataConfig, RecipeConfig, TaskConfig
from minsearch.tasks.data import load_data
from minsearch.tasks.stream import StreamData
from minsearch.tasks.train import evaluate, fit

CNN = "tests.tasks.factories:tiny_cnn"  # trains in seconds
TIMM = "timm:resnet18?num_classes=4&layers=[1,1,1,1]&channels=[8,16,32,32]&stem_width=8"
PLAIN = [{"Resize": [[16, 16]]}]  # a fixed-size eval transform: no augmentation


pytestmark = pytest.mark.usefixtures("one_thread")


def write_folder(root, n: int = 2000, side: int = 16, seed: int = 0) -> None:
    """``n`` RGB PNGs in 4 classes: a bright square in one quadrant (the class) on noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    half = side // 2
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % 4
        pixels = rng.integers(0, 90, (side, side, 3), dtype=np.uint8)
        r, k = divmod(c, 2)
        pixels[r * half:(r + 1) * half, k * half:(k + 1) * half] += 150
        Image.fromarray(pixels).save(root / f"c{c}" / f"{i}.png", compress_level=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_folder(root)
    return root


def children() -> list[int]:
    """Live child processes of this one (Linux /proc: their parent pid is ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry.name.isdigit() and int(fields[1]) == os.getpid() and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end and any(p in children() for p in pids):
        time.sleep(0.05)
    return [p for p in pids if p in children()]


def config(folder, **changes) -> DataConfig:
    return DataConfig(dataset="imagefolder", data_root=str(folder), num_workers=2, **changes)


def test_streams_with_two_workers_trains_and_evaluates(folder):
    data = load_data(config(folder, train_transform=[{"RandomCrop": {"size": 16,
                                                                     "padding": 2}}],
                            eval_transform=PLAIN, mean=[0.5], std=[0.25]), CNN)
    assert isinstance(data, StreamData) and data.input_shape == (3, 16, 16)
    assert (len(data.train), len(data.val), len(data.test)) == (1200, 400, 400)
    assert not any(isinstance(v, torch.Tensor) and v.numel() > 2000
                   for v in vars(data.train).values())  # index lists and labels only
    batches = data.batches(data.train, 64, generator=torch.Generator().manual_seed(0))
    x, y = next(batches)
    workers = children()
    assert len(workers) == 2 and x.shape == (64, 3, 16, 16) and x.dtype == torch.float32
    batches.close()  # an abandoned pass ends its workers
    assert wait_gone(workers) == []
    torch.manual_seed(0)
    from minsearch.models import build_model

    model = build_model(CNN)
    curves = fit(model, data, RecipeConfig(lr=1e-2, batch_size=32), epochs=1)
    assert curves[-1]["val_accuracy"] > 0.8, curves  # 4 classes: chance is 0.25
    assert evaluate(model, data, data.test) > 0.8
    assert wait_gone(children()) == []  # every pass closed its workers


def test_every_objective_measures_streamed_data(folder):
    from minsearch.models import build_model
    from minsearch.objectives import measure_all

    task = TaskConfig.from_flat({
        "model": CNN, "dataset": "imagefolder", "data_root": str(folder), "num_workers": 2,
        "eval_transform": PLAIN, "eval_samples": 64, "objectives": [
            "accuracy", "param_bytes", "latency_ms", "peak_mem_infer_bytes", "robustness"],
        "latency_runs": 2, "latency_warmup": 1, "corruptions": ["gaussian_noise"],
        "severities": [3], "memory_batch": 8})
    data = load_data(task.data, task.model)
    assert len(data.val) == len(data.test) == 64  # eval_samples: a quick screen
    values, extras = measure_all(build_model(CNN), data, task, torch.device("cpu"))
    assert set(values) == set(task.measure.objectives)
    assert all(np.isfinite(v) for v in values.values())


def test_splits_and_epochs_are_deterministic(folder):
    cfg = config(folder, train_transform=[{"RandomCrop": {"size": 16, "padding": 2}}],
                 eval_transform=PLAIN, max_samples=500)
    a, b = load_data(cfg, CNN), load_data(cfg, CNN)
    assert torch.equal(a.test.index, b.test.index) and torch.equal(a.train.y, b.train.y)
    other = load_data(cfg.replace(data_seed=1), CNN)
    assert not torch.equal(other.test.index, a.test.index)

    def epoch(data, seed):
        return [x for x, _ in data.batches(data.train, 100,
                                           generator=torch.Generator().manual_seed(seed))]

    first, again, second = epoch(a, 0), epoch(b, 0), epoch(a, 1)
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))  # augmentation too
    assert not torch.equal(first[0], second[0])


def test_timm_transforms_are_resolved_from_the_model(folder):
    data = load_data(config(folder, image_size=16, max_samples=200), TIMM)
    assert data.pipeline.origin == "timm" and data.input_shape == (3, 16, 16)
    assert torch.allclose(data.mean, torch.tensor([0.485, 0.456, 0.406]))  # timm's config
    item = data.train.source.read(int(data.train.index[0]))
    torch.manual_seed(0)
    crops = {tuple(data.pipeline.train(item).flatten()[:40].tolist()) for _ in range(4)}
    assert len(crops) > 1  # training augments (timm's random resized crop)
    assert torch.equal(data.pipeline.eval(item), data.pipeline.eval(item))


def test_without_transforms_or_stats_the_mean_is_measured(folder):
    data = load_data(config(folder, max_samples=300), "tests.tasks.factories:tiny_mlp")
    assert data.pipeline.origin == "plain"
    x, _ = data.examples(data.train, len(data.train))
    assert x.mean().abs() < 0.05 and (x.std() - 1).abs() < 0.05  # normalised by measured stats


@pytest.mark.parametrize("changes, message", [
    ({"train_transform": ["RandomCrp"]}, "'RandomCrp' is not a torchvision.transforms class. "
                                         "Did you mean 'RandomCrop'?"),
    ({"eval_transform": ["Normalize"]}, "converts images to tensors and normalises"),
    ({"eval_transform": [{"Resize": {"sise": 8}}]}, "Resize rejected its arguments"),
    ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, "`mean` has 2 values but the images have 3"),
])
def test_transform_mistakes_are_one_line(folder, changes, message):
    with pytest.raises(UserError, match=message) as err:
        load_data(config(folder, max_samples=100, **changes), CNN)
    assert "\n" not in str(err.value)


def test_in_memory_data_refuses_stream_keys():
    with pytest.raises(UserError, match="`eval_transform` apply to streamed image data"):
        load_data(DataConfig(dataset="tests.tasks.factories:pair_dataset",
                             eval_transform=["RandomCrop"]))


def test_a_file_that_fails_to_decode_is_named_when_read(tmp_path):
    """A PNG cut in half opens (its header is whole) but cannot be decoded: the worker's
    failure comes back as the one line that names the file."""
    from PIL import Image

    write_folder(tmp_path, n=40, side=8)
    bad = tmp_path / "c1" / "1.png"
    Image.effect_noise((32, 32), 50).save(bad)
    bad.write_bytes(bad.read_bytes()[:bad.stat().st_size // 2])
    data = load_data(config(tmp_path, eval_transform=[{"Resize": [[8, 8]]}], mean=[0.5],
                            std=[0.25]), CNN)
    with pytest.raises(UserError) as err:
        for split in (data.train, data.val, data.test):
            for _ in data.batches(split, 8):
                pass
    assert str(err.value).startswith("Image 'c1/1.png' under `data_root`")
    assert "cannot be read" in str(err.value) and "\n" not in str(err.value)


def test_train_and_test_folders_are_the_parts(tmp_path):
    write_folder(tmp_path / "train", n=80, side=8)
    write_folder(tmp_path / "test", n=20, side=8, seed=1)
    data = load_data(config(tmp_path, eval_transform=[]), CNN)
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 80
    assert len(data.val) == 20  # 0.2 / (0.6 + 0.2) of train/
    assert data.test.source.name(0).startswith("c") and data.test.source.name(0).endswith(".png")
