"""Tokenization of clean splits into model inputs, single texts or sentence pairs, truncated or as overlapping
windows (long_text chunk); cached on disk."""

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
from finetext.errors import FinetextError
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


def encode_windows(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, stride: int,
                   padding: str = "dynamic") -> tuple[dict[str, list], list[int]]:
    """Each text as overlapping windows of at most max_length tokens (special tokens included), consecutive
    windows of a text sharing stride tokens; a text that fits is one window. Returns the windows' features and
    each window's document (its index in texts), windows in document order."""
    check_stride(tokenizer, max_length, stride)
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        padding="max_length" if padding == "max_length" else False,
    )
    features = {key: value for key, value in encoded.items() if key != "overflow_to_sample_mapping"}
    return features, list(encoded["overflow_to_sample_mapping"])


def check_stride(tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int) -> None:
    """Windows need a fast tokenizer, and a stride below the tokens a window holds besides its special ones (the
    tokenizers library panics otherwise)."""
    if not getattr(tokenizer, "is_fast", False):
        raise FinetextError(f"long_text chunk needs a fast tokenizer (tokenizer.json); "
                            f"{type(tokenizer).__name__} is not one.", "Use --long-text truncate with this model.")
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if stride >= room:
        raise FinetextError(f"stride ({stride}) must be smaller than max_length ({max_length}) minus the tokenizer's "
                            f"{max_length - room} special tokens, i.e. at most {room - 1}.",
                            f"Use e.g. --stride {max(0, room // 4)}, or a larger --max-length.")


def kept_windows(documents: list[int] | np.ndarray, per_document: int | None) -> np.ndarray:
    """Indices of the windows training keeps: at most per_document of each document, evenly spaced from its first
    window to its last (both kept when per_document >= 2); all of them when per_document is None."""
    documents = np.asarray(documents, dtype=np.int64)
    if per_document is None:
        return np.arange(len(documents))
    starts = np.flatnonzero(np.r_[True, documents[1:] != documents[:-1]]) if len(documents) else np.array([], int)
    ends = np.r_[starts[1:], len(documents)]
    kept = [start + np.unique(np.round(np.linspace(0, end - start - 1, min(per_document, end - start))).astype(int))
            for start, end in zip(starts, ends, strict=True)]
    return np.concatenate(kept) if kept else np.array([], dtype=np.int64)


def tokenize_split(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int,
                   padding: str, cache: bool = False, stride: int | None = None,
                   windows_per_document: int | None = None) -> datasets.Dataset:
    """A datasets.Dataset with input_ids, attention_mask (token_type_ids) and labels.

    With stride (long_text chunk), one row per window instead, each with its document's labels and a
    ``document`` column (the row of df it comes from); windows_per_document caps the windows kept per document
    (kept_windows). With cache, a split tokenized before with the same tokenizer and settings is read back from
    disk (memory-mapped) instead of being tokenized again."""
    chunking = (stride, windows_per_document) if stride is not None else None
    if not cache:
        return _tokenize(df, tokenizer, max_length, padding, chunking)
    folder = cache_dir() / cache_key(df, tokenizer, max_length, padding, chunking)
    if (folder / "dataset_info.json").is_file():
        try:
            with library_bars_off():
                return datasets.load_from_disk(str(folder))
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry is rebuilt, never fatal
            log.warning("tokenization cache entry %s is unreadable (%s); tokenizing again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    encoded = _tokenize(df, tokenizer, max_length, padding, chunking)
    _store(encoded, folder)
    return encoded


def cache_row_subsets(df: pd.DataFrame, subsets: list[np.ndarray], tokenizer: PreTrainedTokenizerBase,
                      max_length: int, padding: str) -> None:
    """Tokenize df once and store each subset of its rows as the cache entry tokenize_split(df.iloc[rows]) would
    find, so runs over overlapping subsets of the same rows (finetext audit's folds) tokenize every row once."""
    encoded = None
    for rows in subsets:
        folder = cache_dir() / cache_key(df.iloc[rows], tokenizer, max_length, padding)
        if not (folder / "dataset_info.json").is_file():
            encoded = _tokenize(df, tokenizer, max_length, padding) if encoded is None else encoded
            _store(encoded.select(rows).flatten_indices(), folder)


def _tokenize(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int,
              padding: str, chunking: tuple[int, int | None] | None = None) -> datasets.Dataset:
    labels = df["label"]
    if len(labels) and is_label_set(labels.iloc[0]):  # multi-label: float 0/1 vectors for BCE
        label_values = [[float(v) for v in vector] for vector in labels]
    else:
        label_values = labels.astype("int64").tolist()
    if chunking is None:
        pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
        features = dict(encode(tokenizer, df["text"].tolist(), pairs, max_length, padding))
        features["labels"] = label_values
        return datasets.Dataset.from_dict(features)
    if "text_pair" in df.columns:
        raise FinetextError("long_text chunk splits single texts into windows, but this data has sentence pairs.",
                            "Use --long-text truncate for sentence pairs.")
    stride, per_document = chunking
    features, documents = encode_windows(tokenizer, df["text"].tolist(), max_length, stride, padding)
    keep = kept_windows(documents, per_document)
    features = {key: [values[i] for i in keep] for key, values in features.items()}
    features["labels"] = [label_values[documents[i]] for i in keep]
    features["document"] = [documents[i] for i in keep]
    return datasets.Dataset.from_dict(features)


def cache_dir() -> Path:
    return Path(os.environ.get("FINETEXT_CACHE_DIR") or Path.home() / ".cache" / "finetext") / "tokenized"


def cache_key(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int, padding: str,
              chunking: tuple[int, int | None] | None = None) -> str:
    """A digest of everything the encoded split depends on: rows, tokenizer, settings (for windows: the stride and
    the windows kept per document), finetext version."""
    windows = "" if chunking is None else f"|chunk|{chunking[0]}|{chunking[1]}"
    digest = hashlib.sha256(f"{__version__}|{max_length}|{padding}{windows}|{type(tokenizer).__name__}".encode())
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
