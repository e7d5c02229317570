"""Which examples go into which batch: length-grouped training batches fixed by (seed, epoch), sorted
evaluation batches.

Both engines get the same grouping idea; the native engine's order is a pure function of the seed and
the epoch, so a resumed run can skip exactly the batches it had already trained on.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

MEGABATCH_BATCHES = 50  # as transformers' LengthGroupedSampler: sort within 50 batches, not the whole set


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of examples of similar length.

    Each epoch: shuffle all examples, cut them into mega-batches of 50 batches, sort each mega-batch by
    length and split it into batches, then shuffle the order of all batches (the longest one first).
    Sorting only within a random mega-batch keeps batches random while padding stays small; shuffling the
    batch order keeps long and short batches spread over the epoch. Without grouping, the batches are plain
    shuffled slices.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0

    def select_epoch(self, epoch: int) -> None:
        # Not named set_epoch on purpose: Accelerate calls set_epoch with its own count of iterations,
        # which restarts at 0 in a resumed run and would replay the wrong epoch's order.
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        if not self.group_by_length:
            return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        batches = []
        span = MEGABATCH_BATCHES * self.batch_size
        for start in range(0, len(order), span):
            mega = order[start:start + span]
            mega = mega[np.argsort(-self.lengths[mega], kind="stable")]
            batches += [mega[i:i + self.batch_size].tolist() for i in range(0, len(mega), self.batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        # The longest batch goes first, as in transformers: memory peaks at once (an out-of-memory error
        # comes in the first step, not an hour in) and later, smaller batches reuse the freed blocks.
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max())
        batches[0], batches[longest] = batches[longest], batches[0]
        return batches

    def __iter__(self):
        yield from self.batches()

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of examples sorted by length (longest first), so padding is minimal."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
