"""The starting point of docs/your-model.md: a folder of images and a model trained on it,
saved the way users save models.

    python docs/examples/your_model/make_model.py --out runs/your-model

writes ``OUT/digits/{train,test}/<class>/<n>.png`` (scikit-learn's 1,797 8x8 digits as
grayscale PNGs, 80% train, 20% test, split with seed 0), trains a narrow timm ResNet on
``train/`` with a plain PyTorch loop (torchvision's ImageFolder, ToTensor, Normalize), and
saves ``OUT/model.pt`` (``torch.save(model.state_dict(), ...)``) and ``OUT/model.safetensors``
(``safetensors.torch.save_file``). ``OUT/made.json`` records its test accuracy. About 15 s on
one CPU core. Nothing here is minsearch: it stands for the user's own training script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torchvision import datasets, transforms

MODEL = "resnet18"  # timm's ResNet builder, narrowed: ~170k parameters
KWARGS = {"in_chans": 1, "num_classes": 10, "layers": [1, 1, 1, 1],
          "channels": [16, 32, 64, 64], "stem_width": 16}
MEAN, STD = (0.3,), (0.4,)  # the normalisation this model is trained with (tasks say it too)


def write_folder(root: Path, seed: int = 0) -> None:
    """The digits as ``root/{train,test}/<digit>/<n>.png`` (8x8, grayscale 0..255)."""
    bunch = load_digits()
    order = np.random.default_rng(seed).permutation(len(bunch.target))
    cut = int(0.8 * len(order))
    for part, index in (("train", order[:cut]), ("test", order[cut:])):
        for n in index:
            folder = root / part / str(bunch.target[n])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.round(bunch.images[n] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{n}.png")


def loader(folder: Path, shuffle: bool) -> torch.utils.data.DataLoader:
    transform = transforms.Compose([transforms.Grayscale(1), transforms.ToTensor(),
                                    transforms.Normalize(MEAN, STD)])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=shuffle)


@torch.no_grad()
def accuracy(model: torch.nn.Module, folder: Path) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader(folder, shuffle=False):
        correct += int((model(x).argmax(-1) == y).sum())
        total += len(y)
    return correct / total


def make(out: Path, epochs: int = 15) -> float:
    """Write the folder (unless it is there), train, save; returns the test accuracy."""
    torch.manual_seed(0)
    if not (out / "digits" / "train").is_dir():
        write_folder(out / "digits")
    model = timm.create_model(MODEL, **KWARGS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        for x, y in loader(out / "digits" / "train", shuffle=True):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    test = accuracy(model, out / "digits" / "test")
    torch.save(model.state_dict(), out / "model.pt")
    save_file(model.state_dict(), str(out / "model.safetensors"))
    (out / "made.json").write_text(json.dumps({"test_accuracy": test, "epochs": epochs}))
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/your-model")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    test = make(out, args.epochs)
    print(f"test accuracy {test:.4f}; saved {out / 'model.pt'} and {out / 'model.safetensors'}")


if __name__ == "__main__":
    main()
