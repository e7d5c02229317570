"""Reading one table from a CSV, TSV, JSON, JSONL or Parquet file, with clear errors."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pandas as pd

from finetext.errors import FinetextError

EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "test_unlabeled"),
}


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path).expanduser()
    if not path.exists():
        raise FinetextError(f"file not found: {path}.", "Check the path.")
    if path.is_dir():
        raise FinetextError(f"{path} is a directory, a file was expected.", "Use --dataset DIR for a folder.")
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise FinetextError(f"cannot read {path}: unsupported file type '{suffix}'.",
                            f"Use one of {', '.join(EXTENSIONS)}.")
    try:
        return _read(path, suffix)
    except UnicodeDecodeError:
        raise FinetextError(f"{path} is not valid UTF-8 text.", "Re-save it with UTF-8 encoding.") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise FinetextError(f"cannot read {path} as {suffix[1:].upper()}: {reason}.",
                            "Check the file's format.") from None


def _read(path: Path, suffix: str) -> pd.DataFrame:
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".tsv"):
        # keep_default_na=False: a text such as "NA" or "null" stays text; only empty cells are missing.
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8",
                           keep_default_na=False, na_values=[""])
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True, encoding="utf-8", dtype=False)
    text = path.read_text(encoding="utf-8")
    # A .json file holds either an array of records or (as often) one record per line.
    lines = text.lstrip().startswith("{") and "\n" in text.strip()
    return pd.read_json(StringIO(text), lines=lines, dtype=False)


def find_split_files(folder: Path) -> dict[str, Path]:
    """The train/validation/test files of a folder, by name (train.csv, dev.jsonl, test.parquet, ...)."""
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            matches = [folder / f"{alias}{ext}" for ext in EXTENSIONS if (folder / f"{alias}{ext}").is_file()]
            if matches:
                found[split] = matches[0]
                break
    return found
