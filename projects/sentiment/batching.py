"""Batching texts for the neural models: batches of similar length, collated as lists of strings.

The models tokenize the texts themselves, so a batch is the raw strings and a label tensor; grouping texts of
similar length keeps the padding, and so the wasted compute, small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler


class LengthBuckets(Sampler[list[int]]):
    """Shuffled batches of texts of similar length: a padded batch then wastes little compute on padding.

    Texts are shuffled, cut into pools of `pool` batches, sorted by length inside each pool, batched,
    and the batches shuffled again, so every epoch sees a new order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, pool: int = 50, seed: int = 0) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.pool = batch_size, pool
        self.generator = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.generator.permutation(len(self.lengths))
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for index in self.generator.permutation(len(batches)):
            yield batches[index]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def collate_texts(batch: list[tuple[str, int] | tuple[str]]) -> list[Any]:
    """(text, label) pairs to [list of texts, label tensor]; the models tokenize the texts themselves."""
    texts = [row[0] for row in batch]
    if len(batch[0]) == 1:
        return [texts]
    return [texts, torch.tensor([row[1] for row in batch], dtype=torch.long)]
