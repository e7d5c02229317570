"""Turn a DataConfig into clean labelled splits: known names, local files, label mapping, splits, subsets.

Every split comes out as a DataFrame with the columns ``text``, optionally ``text_pair``, and ``label``:
an int id into ``label_names`` (multi-label: a 0/1 float vector over ``label_names``); -1 only in a test
split that carries no labels at all.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from finetext.config import DataConfig
from finetext.data.exclusion import SOURCE_ROW, exclude_listed_rows
from finetext.data.files import SPLIT_ALIASES, find_split_files, read_table
from finetext.errors import FinetextError
from finetext.hub import hub_unreachable_reason, quiet_hub_logs

log = logging.getLogger("finetext")

DATA_DIR_ENV = "FINETEXT_DATA_DIR"

UNLABELLED = -1


@dataclass(frozen=True)
class KnownDataset:
    """A dataset finetext knows by name: its folder under the data dir and where it lives on the Hub."""

    folder: str
    hub_path: str
    hub_config: str | None = None


KNOWN_DATASETS = {
    "imdb": KnownDataset("imdb", "stanfordnlp/imdb"),
    "sst2": KnownDataset("sst2", "nyu-mll/glue", "sst2"),
    "glue/sst2": KnownDataset("sst2", "nyu-mll/glue", "sst2"),
    "mrpc": KnownDataset("mrpc", "nyu-mll/glue", "mrpc"),
    "glue/mrpc": KnownDataset("mrpc", "nyu-mll/glue", "mrpc"),
    "ag_news": KnownDataset("ag_news", "fancyzhx/ag_news"),
    "yelp_review_full": KnownDataset("yelp_review_full", "Yelp/yelp_review_full"),
    "sst5": KnownDataset("sst5", "SetFit/sst5"),
}

TEXT_COLUMN_GUESSES = ("text", "sentence", "sentence1", "review", "content", "question1")
PAIR_COLUMN_GUESSES = {"sentence1": "sentence2", "question1": "question2"}
LABEL_COLUMN_GUESSES = ("label", "labels")


@dataclass
class LabelledData:
    """Clean splits plus what they mean: label names and the columns they were read from."""

    splits: dict[str, pd.DataFrame]
    label_names: list[str]
    text_column: str
    text_pair_column: str | None
    label_column: str
    source: str
    multi_label: bool = False
    source_rows: dict[str, np.ndarray] = field(default_factory=dict)
    """Split -> each row's 0-based position in the table it was read from (before bad rows were dropped, rows
    excluded, validation carved or subsets taken): finetext audit's row ids, which --exclude-rows reads."""

    def has_pairs(self) -> bool:
        return self.text_pair_column is not None

    def is_labelled(self, split: str) -> bool:
        return split in self.splits and not is_unlabelled(self.splits[split]["label"])


def is_unlabelled(labels: pd.Series) -> bool:
    """A split whose labels are all the UNLABELLED marker (scalars; labelled multi-label rows hold vectors)."""
    first = labels.iloc[0]
    return not is_label_set(first) and _is_integer(labels) and bool((labels == UNLABELLED).all())


# ----------------------------------------------------------------------------------------------------------
# Where the raw tables come from


def read_raw_splits(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str] | None, str]:
    """Raw tables per split, label names if the source declares them, and a description of the source."""
    if cfg.dataset and (cfg.train_file or cfg.validation_file or cfg.test_file):
        raise FinetextError("--dataset and --train-file/--validation-file/--test-file were both given.",
                            "Use one way to name the data.")
    if cfg.dataset:
        return _read_dataset(cfg)
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    tables = {split: read_table(path) for split, path in files.items() if path}
    if not tables:
        raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
    first = next(p for p in files.values() if p)
    return tables, _label_names_beside(Path(first).parent), ", ".join(str(p) for p in files.values() if p)


def _read_dataset(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str] | None, str]:
    name = cfg.dataset
    assert name is not None
    path = Path(name).expanduser()
    if path.is_file():
        return {"train": read_table(path)}, _label_names_beside(path.parent), str(path)
    if path.is_dir():
        return _read_directory(path), _label_names_beside(path), str(path)
    known = KNOWN_DATASETS.get(name.lower())
    if known is None:
        raise FinetextError(
            f"dataset '{name}' is neither a file, a directory, nor a known name.",
            f"Known names: {', '.join(sorted(KNOWN_DATASETS))}; or pass a path.",
        )
    data_dir = cfg.data_dir or os.environ.get(DATA_DIR_ENV)
    if data_dir and (Path(data_dir) / known.folder).is_dir():
        folder = Path(data_dir) / known.folder
        return _read_directory(folder), _label_names_beside(folder), str(folder)
    return _read_hub(name, known, data_dir)


def _read_directory(folder: Path) -> dict[str, pd.DataFrame]:
    files = find_split_files(folder)
    if not files:
        raise FinetextError(
            f"no split files in {folder}.",
            f"Name them {'/'.join(SPLIT_ALIASES)} with a .csv/.tsv/.json/.jsonl/.parquet extension.",
        )
    return {split: read_table(path) for split, path in files.items()}


def _label_names_beside(folder: Path) -> list[str] | None:
    path = folder / "label_names.json"
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinetextError(f"{path} is not valid JSON: {exc}.") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FinetextError(f"{path} must hold a JSON list of label names in id order.")
    return names


def _read_hub(name: str, known: KnownDataset, data_dir: str | None) -> tuple[
        dict[str, pd.DataFrame], list[str] | None, str]:
    import datasets

    datasets.disable_progress_bars()
    quiet_hub_logs()
    where = f"{data_dir}/{known.folder}" if data_dir else f"a data dir (--data-dir or ${DATA_DIR_ENV})"
    try:
        if reason := hub_unreachable_reason():
            raise ConnectionError(reason)
        loaded = datasets.load_dataset(known.hub_path, known.hub_config)
    except Exception as exc:  # noqa: BLE001 - any Hub failure means the same thing to the user
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FinetextError(
            f"dataset '{name}' is not in {where} and could not be loaded from the Hugging Face Hub "
            f"({known.hub_path}): {reason[:200]}",
            f"Offline, put its split files in <data-dir>/{known.folder}/ or pass --train-file.",
        ) from None
    splits = {split: loaded[split].to_pandas() for split in ("train", "validation", "test") if split in loaded}
    features = loaded["train"].features
    label_feature = next((features[c] for c in LABEL_COLUMN_GUESSES if c in features), None)
    names = list(label_feature.names) if hasattr(label_feature, "names") else None
    return splits, names, f"hub:{known.hub_path}" + (f"/{known.hub_config}" if known.hub_config else "")


# ----------------------------------------------------------------------------------------------------------
# From raw tables to clean, labelled splits


def load_labelled_data(cfg: DataConfig, seed: int, label_names: list[str] | None = None,
                       carve: bool = True) -> LabelledData:
    """Read, check and normalise every split; carve validation if needed (and ``carve``); take the seeded subsets;
    leave out the exclude_rows rows (from train, and from validation when it was carved from train).

    ``label_names`` fixes the label mapping (an existing model's); otherwise it comes from the config,
    the data's own label_names.json / Hub features, or the sorted labels of train. ``carve=False`` keeps every
    training row in train (finetext audit makes its own folds).
    """
    raw, declared_names, source = read_raw_splits(cfg)
    text_col, pair_col, label_col = _resolve_columns(cfg, raw)
    splits = {split: _clean_split(split, df, text_col, pair_col, label_col, cfg.bad_rows, cfg.label_separator)
              for split, df in raw.items()}
    multi = detect_multi_label(cfg, splits)
    if multi:
        splits = {split: df.assign(label=label_lists(df["label"], cfg.label_separator))
                  if not is_unlabelled(df["label"]) else df for split, df in splits.items()}
    names = label_names or cfg.label_names or declared_names
    if names is None:
        if "train" not in splits:
            raise FinetextError("cannot infer label names without a train split.",
                                "Pass --label-names or a train file.")
        train_labels = splits["train"]["label"]
        names = infer_label_names(train_labels.explode().dropna().infer_objects() if multi else train_labels)
    encode = _encode_label_sets if multi else _encode_labels
    splits = {split: encode(split, df, names) for split, df in splits.items()}
    if label_names is None and not multi:  # training (an existing model's mapping comes with label_names)
        _refuse_single_class(splits, names)
    _warn_missing_classes(splits, names)
    carved = carve and "train" in splits and "validation" not in splits
    if carved:
        splits["train"], splits["validation"] = carve_validation(splits["train"], cfg.validation_fraction, seed)
        log.info("no validation split: carved %d stratified examples from train (seed %d)",
                 len(splits["validation"]), seed)
    limits = {"train": cfg.train_samples, "validation": cfg.eval_samples, "test": cfg.test_samples}
    splits = {split: take_subset(df, limits.get(split), seed) for split, df in splits.items()}
    if cfg.exclude_rows and "train" in splits:  # after the subsets: an audit of train_samples rows names rows of them
        from_train = ("train", "validation") if carved else ("train",)
        splits |= exclude_listed_rows({s: splits[s] for s in from_train}, len(raw["train"]), cfg.exclude_rows,
                                      cfg.exclude_top)
    rows = {split: df[SOURCE_ROW].to_numpy() for split, df in splits.items()}
    splits = {split: df.drop(columns=SOURCE_ROW) for split, df in splits.items()}
    return LabelledData(splits, list(names), text_col, pair_col, label_col, source, multi, rows)


def _resolve_columns(cfg: DataConfig, raw: dict[str, pd.DataFrame]) -> tuple[str, str | None, str]:
    columns = list(next(iter(raw.values())).columns)
    text_col = cfg.text_column or next((c for c in TEXT_COLUMN_GUESSES if c in columns), "text")
    pair_col = cfg.text_pair_column
    if pair_col is None and cfg.text_column is None and text_col in PAIR_COLUMN_GUESSES:
        guess = PAIR_COLUMN_GUESSES[text_col]
        pair_col = guess if guess in columns else None
    label_col = cfg.label_column or next((c for c in LABEL_COLUMN_GUESSES if c in columns), "label")
    for split, df in raw.items():
        needed = [text_col, pair_col] + ([label_col] if split != "test" else [])
        for column in filter(None, needed):
            if column not in df.columns:
                raise FinetextError(
                    f"column '{column}' not found in the {split} data; available: {', '.join(map(str, df.columns))}.",
                    "Choose one with --text-column / --text-pair-column / --label-column.",
                )
    return text_col, pair_col, label_col


def _clean_split(split: str, df: pd.DataFrame, text_col: str, pair_col: str | None, label_col: str,
                 bad_rows: str, label_separator: str | None = None) -> pd.DataFrame:
    out = pd.DataFrame({"text": df[text_col]})
    if pair_col:
        out["text_pair"] = df[pair_col]
    out["label"] = df[label_col] if label_col in df.columns else UNLABELLED
    out[SOURCE_ROW] = np.arange(len(df), dtype=np.int64)
    if label_separator and label_col in df.columns:  # an empty cell is an empty label set, not a missing label
        all_empty = split == "test" and out["label"].isna().all()  # but a test file may carry no labels at all
        out["label"] = UNLABELLED if all_empty else out["label"].fillna("")
    if len(out) == 0:
        raise FinetextError(f"the {split} split is empty.", "Check the file.")
    text_cols = ["text", "text_pair"] if pair_col else ["text"]
    empty_text = pd.Series(False, index=out.index)
    for column in text_cols:
        empty_text |= out[column].isna() | (out[column].astype(str).str.strip() == "")
    missing_label = out["label"].isna()
    bad = empty_text | missing_label
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        problem = (f"{int(bad.sum())} of {len(out)} rows in the {split} data have empty or missing text "
                   f"({int(empty_text.sum())}) or a missing label ({int(missing_label.sum())}); "
                   f"first at row {first}.")
        if bad_rows == "fail":
            raise FinetextError(problem, "Fix those rows, or pass --bad-rows drop to skip them.")
        log.warning("%s Dropped (--bad-rows drop).", problem)
        out = out[~bad]
        if len(out) == 0:
            raise FinetextError(f"every row of the {split} data was dropped as bad.", "Check the columns.")
    for column in text_cols:
        out[column] = out[column].astype(str)
    return out.reset_index(drop=True)


def is_label_set(value) -> bool:
    """A multi-label row's label: a list of labels, or after encoding a 0/1 vector."""
    return isinstance(value, (list, tuple, np.ndarray))


def label_array(labels: pd.Series) -> np.ndarray:
    """Class ids as a vector, or multi-label 0/1 vectors as an (examples x labels) matrix."""
    return np.stack(labels.to_numpy()) if is_label_set(labels.iloc[0]) else labels.to_numpy()


def detect_multi_label(cfg: DataConfig, splits: dict[str, pd.DataFrame]) -> bool:
    if cfg.multi_label is not None:
        return cfg.multi_label
    if cfg.label_separator:
        return True
    return any(df["label"].map(is_label_set).any() for df in splits.values())


def label_lists(labels: pd.Series, separator: str | None) -> pd.Series:
    """Every label as a list: lists stay, strings are split on the separator, a scalar becomes [scalar]."""
    def as_list(value) -> list:
        if is_label_set(value):
            return list(value)
        if separator and isinstance(value, str):
            return [part.strip() for part in value.split(separator) if part.strip()]
        return [value]

    return labels.map(as_list)


def _encode_label_sets(split: str, df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Label lists -> 0/1 float vectors over names (the targets of a per-label binary cross-entropy)."""
    if split == "test" and is_unlabelled(df["label"]):
        return df
    exploded = df["label"].explode().dropna().infer_objects()
    ids = label_ids(exploded, names) if len(exploded) else exploded
    _refuse_unknown(split, exploded[ids.isna()], names, "occurrences")
    vectors = np.zeros((len(df), len(names)), dtype=np.float32)
    rows = np.asarray(ids.index, dtype=np.int64)
    vectors[rows, ids.to_numpy(dtype=np.int64)] = 1.0
    return df.assign(label=list(vectors))


def infer_label_names(labels: pd.Series) -> list[str]:
    """Sorted unique labels of train; integer labels 0..K-1 keep their order."""
    values = labels[labels != UNLABELLED] if _is_integer(labels) else labels
    if _is_integer(values):
        unique = sorted({int(v) for v in values})
        return [str(v) for v in unique]
    return sorted({str(v) for v in values})


def _is_integer(labels: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(labels):
        return False
    if pd.api.types.is_integer_dtype(labels):
        return True
    if pd.api.types.is_float_dtype(labels):
        return bool((labels.dropna() % 1 == 0).all())
    return False


def _encode_labels(split: str, df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    labels = df["label"]
    if split == "test" and is_unlabelled(labels):
        return df.assign(label=UNLABELLED)  # an unlabelled test split, e.g. GLUE's
    ids = label_ids(labels, names)
    _refuse_unknown(split, labels[ids.isna()], names, "rows")
    return df.assign(label=ids.astype("int64"))


def _refuse_single_class(splits: dict[str, pd.DataFrame], names: list[str]) -> None:
    """A classifier needs two classes: with one label name transformers builds a 1-output model and treats
    it as regression; with one class present in train the model learns to always answer it."""
    if "train" not in splits:
        return
    present = sorted(set(splits["train"]["label"]))
    if len(names) < 2 or len(present) < 2:
        found = names[present[0]] if present else names[0]
        raise FinetextError(f"the training data has a single class ('{found}'): a classifier needs examples of at "
                            "least two.", "Add examples of the other classes to the training data.")


def _refuse_unknown(split: str, unknown: pd.Series, names: list[str], counted: str) -> None:
    if len(unknown):
        shown = ", ".join(repr(v) for v in sorted({str(v) for v in unknown})[:5])
        raise FinetextError(
            f"the {split} data has label(s) {shown} ({len(unknown)} {counted}) that are not among the "
            f"{len(names)} training labels ({', '.join(names[:10])}).",
            "Fix the labels, or give the full list with --label-names.",
        )


def label_ids(labels: pd.Series, names: list[str]) -> pd.Series:
    """Label -> id; NaN where a label is unknown.

    Integer labels index declared names (["neg", "pos"]); when the names are themselves numbers
    (inferred from integer labels, e.g. star ratings 1..5) and for string labels, labels map by name.
    """
    if _is_integer(labels):
        ints = labels.astype("int64")
        if not all(name.lstrip("-").isdigit() for name in names):
            return ints.where((ints >= 0) & (ints < len(names)))
        keys = ints.astype(str)
    else:
        keys = labels.astype(str)
    return keys.map({name: i for i, name in enumerate(names)})


def _warn_missing_classes(splits: dict[str, pd.DataFrame], names: list[str]) -> None:
    if "train" not in splits:
        return
    labels = splits["train"]["label"]
    if is_label_set(labels.iloc[0]):
        absent = [int(i) for i in np.flatnonzero(label_array(labels).sum(axis=0) == 0)]
    else:
        absent = sorted(set(range(len(names))) - set(labels))
    if absent:
        log.warning("train has no example of label(s) %s; the model cannot learn them",
                    ", ".join(names[i] for i in absent))


def carve_validation(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded validation split from train, stratified by label when every class has two examples."""
    if is_label_set(train["label"].iloc[0]):  # label sets: no stratification
        kept, held = train_test_split(train, test_size=fraction, random_state=seed)
        return kept.reset_index(drop=True), held.reset_index(drop=True)
    counts = train["label"].value_counts()
    stratify = train["label"] if counts.min() >= 2 else None
    if stratify is None:
        log.warning("a class has a single training example: the carved validation split is not stratified")
    try:
        kept, held = train_test_split(train, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # too few rows for one per class in the held-out part
        kept, held = train_test_split(train, test_size=fraction, random_state=seed)
    return kept.reset_index(drop=True), held.reset_index(drop=True)


def take_subset(df: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """The first ``limit`` rows after a seeded shuffle, like the tutorials' shuffle(seed).select(range(N))."""
    if limit is None or limit >= len(df):
        return df
    return df.sample(n=limit, random_state=seed).reset_index(drop=True)


def resolved_data_config(cfg: DataConfig, data: LabelledData) -> DataConfig:
    """The config with the columns and label names that were actually used, for the saved artifact."""
    return replace(cfg, text_column=data.text_column, text_pair_column=data.text_pair_column,
                   label_column=data.label_column, label_names=list(data.label_names), multi_label=data.multi_label)


def as_named(frame: pd.DataFrame, data: LabelledData) -> pd.DataFrame:
    """Label ids (or 0/1 vectors) back to label names, so the files read back with the same mapping."""
    names = data.label_names
    if data.multi_label:
        labels = frame["label"].map(lambda row: [names[i] for i, on in enumerate(row) if on])
    else:
        labels = frame["label"].map(lambda i: names[int(i)])
    columns = ["text", "text_pair"] if data.has_pairs() else ["text"]
    return frame[columns].assign(label=labels.astype(object))


def files_overrides(data: LabelledData, train_file: Path, validation_file: Path) -> dict[str, Any]:
    """Flat config values that point a run at a train and a validation file written with as_named (tune's trials,
    audit's folds): the same columns, label names and kind of labels, nothing else filtered."""
    return {"dataset": None, "data_dir": None, "train_file": str(train_file), "validation_file": str(validation_file),
            "test_file": None, "text_column": "text", "text_pair_column": "text_pair" if data.has_pairs() else None,
            "label_column": "label", "label_names": list(data.label_names), "multi_label": data.multi_label,
            "label_separator": None, "train_samples": None, "eval_samples": None, "test_samples": None,
            "exclude_rows": None, "exclude_top": None}
