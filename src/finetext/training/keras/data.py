"""The batches Keras trains and predicts on: keras.utils.PyDataset views of the run's tokenized splits.

Training batches are the native engine's (training.batching: length-grouped, a pure function of seed and epoch),
laid end to end over the whole run, so that one Keras "epoch" can be one evaluation interval (eval_strategy steps,
or one pass) and a resumed run starts at any evaluation by an offset. Each batch is padded to its longest row.
"""

from __future__ import annotations

import datasets
import keras
import numpy as np
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from finetext.training.batching import LengthGroupedBatches, sorted_batches

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Padder:
    """Rows of a tokenized split, read by index and padded into one numpy batch."""

    def __init__(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase):
        keep = [c for c in (*MODEL_INPUTS, "labels") if c in split.column_names]
        self.split = split.select_columns(keep)
        self.collate = DataCollatorWithPadding(tokenizer, return_tensors="np")

    def batch(self, indices: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        columns = self.split[indices]
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        padded = dict(self.collate(rows))
        labels = padded.pop("labels", None)
        return {name: np.asarray(padded[name], dtype=np.int64) for name in MODEL_INPUTS if name in padded}, labels


class TrainingBatches(keras.utils.PyDataset):
    """Every training batch of the run in order (epoch after epoch), from batch `start` on."""

    def __init__(self, padder: Padder, sampler: LengthGroupedBatches, total: int, start: int = 0):
        super().__init__()
        self.padder, self.sampler, self.total, self.start = padder, sampler, total, start
        self.per_epoch = len(sampler)
        self._order: tuple[int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return self.total - self.start

    def __getitem__(self, index: int):
        return self.padder.batch(self.indices(self.start + index))

    def indices(self, global_index: int) -> list[int]:
        """The rows of the run's batch number global_index (counted from the first batch of the run)."""
        epoch, position = divmod(global_index, self.per_epoch)
        if self._order is None or self._order[0] != epoch:
            self.sampler.select_epoch(epoch)
            self._order = (epoch, self.sampler.batches())
        return self._order[1][position]


class PredictionBatches(keras.utils.PyDataset):
    """A split in batches sorted by length (little padding); `order` maps the predictions back to its rows."""

    def __init__(self, padder: Padder, batch_size: int):
        super().__init__()
        lengths = [len(ids) for ids in padder.split["input_ids"]]
        self.padder, self.batches = padder, sorted_batches(lengths, batch_size)
        self.order = np.argsort(np.concatenate([np.asarray(b, dtype=np.int64) for b in self.batches]))
        self.labels = np.asarray(padder.split["labels"])
        """The split's labels in row order (what the predictions, put back in row order, are scored against)."""

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        inputs, _ = self.padder.batch(self.batches[index])
        return (inputs,)
