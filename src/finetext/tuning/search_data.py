"""The data the trials see: a training set and the split they are scored on, never the held-back split.

The study loads the user's data once, chooses where trials are scored (a seeded, stratified split carved from
train, or validation), optionally subsamples train (--tune-samples), and writes both as Parquet files that every
trial's config points at. Each trial's finetext.yaml therefore says exactly what it trained on, and the held-back
split (test, or validation when test has no labels) is not among them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from finetext.config import TrainConfig
from finetext.data.files import write_table
from finetext.data.sources import (
    LabelledData,
    as_named,
    carve_validation,
    files_overrides,
    is_label_set,
    load_labelled_data,
)
from finetext.errors import FinetextError
from finetext.tuning.settings import TuneConfig

log = logging.getLogger("finetext")

SEARCH_DATA = "search-data"


@dataclass(frozen=True)
class SearchData:
    """Where trials train and are scored, and which split is held back for the final figures."""

    train_file: Path
    search_file: Path
    mode: str
    """'carve' or 'validation'."""
    description: str
    """Where trials are scored, in words (tune.html, the log)."""
    held_back: str
    """The split the final figures come from: 'test' when it has labels, else 'validation'."""
    train_rows: int
    search_rows: int
    full_train_rows: int
    """The final run's training examples (the user's train split)."""
    overrides: dict[str, Any]
    """Flat config values pointing a trial at these files."""
    fingerprint: str
    """A hash of both files' rows: every worker of one study must search the same data."""


def prepare_search_data(base: TrainConfig, tune: TuneConfig, out: Path) -> SearchData:
    data = load_labelled_data(base.data, base.training.seed)
    if "train" not in data.splits:
        raise FinetextError("the data has no train split.", "Pass --train-file or a dataset with train.")
    mode = search_mode(tune.search_split, data)
    seed = base.training.seed
    train = data.splits["train"]
    if mode == "carve":
        size = min(max(1, round(tune.search_fraction * len(train))), tune.search_eval_samples)
        if size >= len(train):
            raise FinetextError(f"train has {len(train)} rows: too few to carve a search split from.",
                                "Use --search-split validation, or more training data.")
        train, scored = carve_validation(train, size / len(train), seed)
        description = f"{len(scored):,} rows carved from train (seeded, stratified); validation held back"
    else:
        scored = data.splits["validation"]
        description = f"validation ({len(scored):,} rows); test held back"
    if tune.tune_samples and tune.tune_samples < len(train):
        train = stratified_subset(train, tune.tune_samples, seed)
        description += f"; trials train on {len(train):,} of the training rows"
    folder = out / SEARCH_DATA
    train_file = write_table(as_named(train, data), folder / "train.parquet")
    search_file = write_table(as_named(scored, data), folder / "search.parquet")
    held_back = "test" if data.is_labelled("test") else "validation"
    return SearchData(train_file, search_file, mode, description, held_back, len(train), len(scored),
                      len(data.splits["train"]), files_overrides(data, train_file, search_file),
                      fingerprint(train, scored))


def search_mode(requested: str, data: LabelledData) -> str:
    if requested == "auto":
        return "validation" if data.is_labelled("test") else "carve"
    if requested == "validation" and not data.is_labelled("test"):
        raise FinetextError("--search-split validation leaves nothing held back: the data has no labelled test split.",
                            "Use --search-split carve (or auto), or give a labelled --test-file.")
    return requested


def stratified_subset(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """rows examples of train, seeded, with the class proportions kept when every class can be."""
    single = not is_label_set(train["label"].iloc[0])
    stratify = train["label"] if single and train["label"].value_counts().min() >= 2 else None
    try:
        kept, _ = train_test_split(train, train_size=rows, random_state=seed, stratify=stratify)
    except ValueError:  # fewer rows than classes
        kept, _ = train_test_split(train, train_size=rows, random_state=seed)
    return kept.reset_index(drop=True)


def fingerprint(train: pd.DataFrame, scored: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in (train, scored):
        digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).values.tobytes())
    return digest.hexdigest()[:16]
