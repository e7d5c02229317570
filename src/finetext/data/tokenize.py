"""Tokenization of clean splits into model inputs, single texts or sentence pairs."""

from __future__ import annotations

import datasets
import pandas as pd
from transformers import PreTrainedTokenizerBase

from finetext.data.sources import is_label_set


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str] | None, max_length: int,
           padding: str = "dynamic") -> dict[str, list]:
    """Tokenize texts (and their pairs, as pairs, never joined), truncated to max_length."""
    return tokenizer(
        texts,
        pairs,
        truncation=True,
        max_length=max_length,
        padding="max_length" if padding == "max_length" else False,
    )


def tokenize_split(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int,
                   padding: str) -> datasets.Dataset:
    """A datasets.Dataset with input_ids, attention_mask (token_type_ids) and labels."""
    pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
    features = dict(encode(tokenizer, df["text"].tolist(), pairs, max_length, padding))
    labels = df["label"]
    if len(labels) and is_label_set(labels.iloc[0]):  # multi-label: float 0/1 vectors for BCE
        features["labels"] = [[float(v) for v in vector] for vector in labels]
    else:
        features["labels"] = labels.astype("int64").tolist()
    return datasets.Dataset.from_dict(features)
