"""A character corpus from text files on disk, split deterministically into train/val/test.

The default corpus is text present on every machine: the Python standard library's own
source files. Files are shuffled with the seed, joined, and the text cut into contiguous
train/val/test ranges (so at most two files straddle a boundary). Characters outside ASCII
map to ``?``: the vocabulary is always the 128 ASCII codes, so a model's size does not depend
on the corpus.
"""

from __future__ import annotations

import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from minsearch.errors import UserError

VOCAB_SIZE = 128
PRINTABLE = (32, 127)  # noise draws character codes in [32, 127): space to '~'
_UNKNOWN = ord("?")


def encode(text: str) -> torch.Tensor:
    codes = text.encode("ascii", errors="replace")  # non-ASCII -> b"?"
    ids = torch.frombuffer(bytearray(codes), dtype=torch.uint8).long()
    return torch.where(ids < VOCAB_SIZE, ids, torch.full_like(ids, _UNKNOWN))


def decode(ids: torch.Tensor) -> str:
    return bytes(ids.tolist()).decode("ascii")


def char_noise(x: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` (character codes) with a fraction ``rate`` replaced by random printable ones."""
    hit = torch.rand(x.shape, generator=generator) < rate
    chars = torch.randint(*PRINTABLE, x.shape, generator=generator)
    return torch.where(hit.to(x.device), chars.to(x), x)


@dataclass
class CharCorpus:
    train: torch.Tensor  # (N,) int64 character codes
    val: torch.Tensor
    test: torch.Tensor
    files: int

    def windows(self, split: str, block_size: int, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` fixed windows of ``block_size + 1`` characters (inputs plus the next-char
        targets), evenly spaced: the same for every candidate, for fair evaluation."""
        data = getattr(self, split)
        span = block_size + 1
        if len(data) < span:
            raise UserError(f"The {split} split has {len(data)} characters, fewer than one "
                            f"window of {span}; use more text or a smaller block_size.")
        starts = torch.linspace(0, len(data) - span, count).long()
        return torch.stack([data[s:s + span] for s in starts.tolist()])  # (count, T+1)

    def random_batch(self, block_size: int, batch_size: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(self.train) - block_size - 1, (batch_size,),
                               generator=generator)
        x = torch.stack([self.train[s:s + block_size] for s in starts.tolist()])
        y = torch.stack([self.train[s + 1:s + block_size + 1] for s in starts.tolist()])
        return x, y  # (B, T) each


def default_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_corpus(root: str | Path | None = None, *, pattern: str = "*.py",
                max_chars: int = 2_000_000, split: tuple[float, float, float] = (0.9, 0.05, 0.05),
                seed: int = 0) -> CharCorpus:
    """Read up to ``max_chars`` characters from files matching ``pattern`` under ``root``
    (default: the standard library) and split them."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        raise UserError(f"Corpus folder {str(root)!r} does not exist; give a folder "
                        f"of text files (e.g. data_root: /path/to/texts).")
    if abs(sum(split) - 1.0) > 1e-6 or min(split) <= 0:
        raise UserError(f"Split fractions must be positive and sum to 1, but got {split}.")
    skip = {"test", "tests", "site-packages", "dist-packages"}  # the stdlib's own code only
    files = sorted(p for p in root.rglob(pattern)
                   if p.is_file() and not skip & set(p.relative_to(root).parts))
    random.Random(seed).shuffle(files)
    texts, total = [], 0
    for path in files:
        if total >= max_chars:
            break
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        texts.append(text[: max_chars - total])
        total += len(texts[-1])
    if total == 0:
        raise UserError(f"No text in files matching {pattern!r} under {str(root)!r}.")
    ids = encode("\n".join(texts))
    a, b = int(len(ids) * split[0]), int(len(ids) * (split[0] + split[1]))
    return CharCorpus(ids[:a], ids[a:b], ids[b:], len(texts))
