"""Tokenization of clean splits into model inputs, single texts or sentence pairs; cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from finetext.data.sources import is_label_set
from finetext.library_output import library_bars_off
from finetext.storage import staged_folder
from finetext.version import __version__

log = logging.getLogger("finetext")


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
                   padding: str, cache: bool = False) -> datasets.Dataset:
    """A datasets.Dataset with input_ids, attention_mask (token_type_ids) and labels.

    With cache, a split tokenized before with the same tokenizer and settings is read back from disk
    (memory-mapped) instead of being tokenized again."""
    if not cache:
        return _tokenize(df, tokenizer, max_length, padding)
    folder = cache_dir() / cache_key(df, tokenizer, max_length, padding)
    if (folder / "dataset_info.json").is_file():
        try:
            with library_bars_off():
                return datasets.load_from_disk(str(folder))
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry is rebuilt, never fatal
            log.warning("tokenization cache entry %s is unreadable (%s); tokenizing again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    encoded = _tokenize(df, tokenizer, max_length, padding)
    _store(encoded, folder)
    return encoded


def _tokenize(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int,
              padding: str) -> datasets.Dataset:
    pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
    features = dict(encode(tokenizer, df["text"].tolist(), pairs, max_length, padding))
    labels = df["label"]
    if len(labels) and is_label_set(labels.iloc[0]):  # multi-label: float 0/1 vectors for BCE
        features["labels"] = [[float(v) for v in vector] for vector in labels]
    else:
        features["labels"] = labels.astype("int64").tolist()
    return datasets.Dataset.from_dict(features)


def cache_dir() -> Path:
    return Path(os.environ.get("FINETEXT_CACHE_DIR") or Path.home() / ".cache" / "finetext") / "tokenized"


def cache_key(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int, padding: str) -> str:
    """A digest of everything the encoded split depends on: rows, tokenizer, settings, finetext version."""
    digest = hashlib.sha256(f"{__version__}|{max_length}|{padding}|{type(tokenizer).__name__}".encode())
    digest.update(tokenizer_definition(tokenizer).encode())
    columns = [c for c in ("text", "text_pair", "label") if c in df.columns]
    frame = df[columns].copy()
    frame["label"] = frame["label"].map(repr)  # label lists (multi-label) are not hashable as they are
    digest.update(",".join(columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64).tobytes())
    return digest.hexdigest()[:32]


def tokenizer_definition(tokenizer: PreTrainedTokenizerBase) -> str:
    """The fast tokenizer's definition (vocabulary, normaliser, pre-tokeniser, post-processor) as JSON; slow
    ones fall back to their vocabulary. The truncation and padding state is left out: each call sets it
    (it is in the key as max_length and padding), so it differs before and after the first call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return repr(sorted(tokenizer.get_vocab().items()))
    definition = json.loads(backend.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return json.dumps(definition, sort_keys=True)


def _store(encoded: datasets.Dataset, folder: Path) -> None:
    """Staged and renamed into place (finetext.storage): a reader never sees a half-written entry. Failing to
    cache (read-only home, full disk) only costs the next run a tokenization."""
    if folder.is_dir():  # another process of a data-parallel run stored the same entry meanwhile
        return
    try:
        with staged_folder(folder) as staging, library_bars_off():
            encoded.save_to_disk(str(staging))
    except OSError as exc:
        log.warning("could not cache the tokenized split in %s: %s", folder.parent, exc)
