"""--exclude-rows: leave listed training rows out (finetext audit's label_issues.csv, or any table with row ids).

Row ids are 0-based positions in the training table as read, before bad rows are dropped or anything else is
filtered, so one list stays valid for every later run on the same file. A list made from other data must not
silently remove the wrong rows: ids beyond the table are refused, and when the list carries a text column each
listed row's text must be the training data's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from finetext.data.files import read_table
from finetext.errors import FinetextError

log = logging.getLogger("finetext")

ROW_ID = "row_id"
SOURCE_ROW = "__source_row__"
"""A column each split carries while it is loaded: the row's position in its file (LabelledData.source_rows)."""


def read_row_list(path: str, top: int | None) -> pd.DataFrame:
    """The list's rows (the first ``top`` when given), checked: a row_id column of non-negative integers."""
    if not Path(path).expanduser().is_file():
        raise FinetextError(f"--exclude-rows file {path} does not exist.",
                            "Pass the label_issues.csv that finetext audit wrote (OUTPUT_DIR/label_issues.csv).")
    listed = read_table(str(Path(path).expanduser()))
    if ROW_ID not in listed.columns:
        raise FinetextError(f"--exclude-rows file {path} has no '{ROW_ID}' column (it has: "
                            f"{', '.join(map(str, listed.columns[:8]))}).",
                            "Give a table with a row_id column, such as finetext audit's label_issues.csv.")
    ids = pd.to_numeric(listed[ROW_ID], errors="coerce")
    if ids.isna().any() or (ids % 1 != 0).any() or (ids < 0).any():
        first = int(((ids.isna()) | (ids % 1 != 0) | (ids < 0)).to_numpy().nonzero()[0][0])
        raise FinetextError(f"--exclude-rows file {path}: row_id must hold non-negative whole numbers; row {first} "
                            f"holds {listed[ROW_ID].iloc[first]!r}.", "Fix that row or regenerate the list.")
    listed = listed.assign(**{ROW_ID: ids.astype("int64")})
    return listed.head(top) if top is not None else listed


def exclude_listed_rows(splits: dict[str, pd.DataFrame], file_rows: int, path: str,
                        top: int | None) -> dict[str, pd.DataFrame]:
    """The splits taken from the training file (rows with their SOURCE_ROW), without the listed rows.
    file_rows: the rows of the training file as read."""
    listed = read_row_list(path, top)
    beyond = listed[listed[ROW_ID] >= file_rows]
    if len(beyond):
        raise FinetextError(f"--exclude-rows {path} lists row {int(beyond[ROW_ID].iloc[0])}, but the training data has "
                            f"{file_rows} rows: the list was made from other data.",
                            "Run finetext audit on this training data and pass its label_issues.csv.")
    if "text" in listed.columns:
        check_texts_match(pd.concat(splits.values()), listed, path)
    excluded = set(listed[ROW_ID])
    kept = {split: frame[~frame[SOURCE_ROW].isin(excluded)].reset_index(drop=True) for split, frame in splits.items()}
    removed = {split: len(splits[split]) - len(frame) for split, frame in kept.items()}
    log.info("left out %s rows listed in %s%s", " and ".join(f"{n} {split}" for split, n in removed.items()), path,
             f" (its first {top})" if top is not None else "")
    return kept


def check_texts_match(rows: pd.DataFrame, listed: pd.DataFrame, path: str) -> None:
    """Each listed row's text must be the training row's: positions alone cannot tell two datasets apart."""
    texts = pd.Series(rows["text"].to_numpy(), index=rows[SOURCE_ROW].to_numpy())
    for position, (row, text) in enumerate(zip(listed[ROW_ID], listed["text"], strict=True)):
        if row in texts.index and str(texts[row]) != str(text):
            raise FinetextError(f"--exclude-rows {path}: its line {position + 1} (row_id {row}) has another text than "
                                f"row {row} of the training data: the list was made from other data.",
                                "Run finetext audit on this training data and pass its label_issues.csv.")
