"""Text as task data (``dataset: text``): a character corpus, next-character targets.

The corpus (:func:`minsearch.text.corpus.load_corpus`: files under ``data_root``, default the
Python standard library, shuffled with ``data_seed`` and cut into contiguous train/val/test
ranges) becomes a :class:`~minsearch.tasks.data.DataKind` like the image datasets:

- an example is a window of ``block_size + 1`` characters: the model reads the first
  ``block_size`` (int64 codes, ``(B, T)``) and predicts each next one (targets ``(B, T)``,
  logits ``(B, T, 128)``), so the classification loss over the last dim is the LM loss;
- a training "epoch" is ``epoch_batches`` batches of windows at random offsets of the train
  range (the text is too long for passes, and the epoch count stays a budget knob);
- evaluation and measurement use ``eval_windows`` fixed windows per range, evenly spaced, the
  same for every candidate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from minsearch.errors import UserError
from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import Corrupt
from minsearch.text.corpus import VOCAB_SIZE, char_noise, load_corpus


@dataclass
class TextSplit:
    ids: torch.Tensor  # (N,) int64 character codes, the whole range
    windows: torch.Tensor  # (W, T + 1) fixed evaluation windows: inputs [:, :-1], targets [:, 1:]

    def __len__(self) -> int:
        return len(self.windows)


@dataclass
class TextData:
    train: TextSplit
    val: TextSplit
    test: TextSplit
    block_size: int
    epoch_batches: int
    files: int  # how many files the corpus read
    num_classes: int = VOCAB_SIZE
    kind: ClassVar[str] = "text"
    input_dtype: ClassVar[torch.dtype] = torch.int64
    output_arg: ClassVar[str] = "vocab_size"

    @property
    def input_shape(self) -> tuple[int]:
        return (self.block_size,)

    def batches(self, split: TextSplit, batch_size: int, *, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None, corrupt: Corrupt | None = None,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """With a generator: ``epoch_batches`` batches of random windows of ``split``; without:
        its fixed windows in order. ``corrupt`` maps input codes to input codes."""
        if generator is not None:
            chunks = (self._random_windows(split, batch_size, generator)
                      for _ in range(self.epoch_batches))
        else:
            chunks = split.windows.split(batch_size)
        for chunk in chunks:
            x, y = chunk[:, :-1], chunk[:, 1:]
            if corrupt is not None:
                x = corrupt(x)
            yield x.to(device), y.to(device)

    def _random_windows(self, split: TextSplit, batch_size: int,
                        generator: torch.Generator) -> torch.Tensor:
        span = self.block_size + 1
        starts = torch.randint(0, len(split.ids) - span + 1, (batch_size, 1), generator=generator)
        return split.ids[starts + torch.arange(span)]  # (B, T + 1)

    def examples(self, split: TextSplit, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        windows = split.windows[torch.arange(n) % len(split)]
        return windows[:, :-1], windows[:, 1:]

    def noise(self, rate: float, generator: torch.Generator) -> Corrupt:
        return lambda x: char_noise(x, rate, generator)


def load_text_data(cfg: DataConfig) -> TextData:
    """Read and split the corpus ``cfg`` names; deterministic in ``cfg.data_seed``."""
    assert cfg.kind == "text", cfg.dataset  # load_data dispatches on the kind
    corpus = load_corpus(cfg.data_root, pattern=cfg.file_pattern, max_chars=cfg.max_chars,
                         split=cfg.split, seed=cfg.data_seed)
    if len(corpus.train) <= cfg.block_size + 1:
        raise UserError(f"The train range has {len(corpus.train)} characters, too few for "
                        f"windows of block_size={cfg.block_size}; raise `max_chars` or lower "
                        f"`block_size`.")
    splits = {name: TextSplit(getattr(corpus, name),
                              corpus.windows(name, cfg.block_size, cfg.eval_windows))
              for name in ("train", "val", "test")}
    return TextData(**splits, block_size=cfg.block_size, epoch_batches=cfg.epoch_batches,
                    files=corpus.files)
