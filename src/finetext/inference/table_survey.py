"""A first pass over an input table, a chunk at a time, before anything is predicted: its rows, its columns, the
type each column has when pandas reads the whole file, and the empty texts.

Read alone, a chunk can give a column another type than the whole file does: whole numbers where a later chunk
has a decimal or a missing value (the whole file: floats), no missing value in a column of booleans (the whole
file: objects), numbers in a CSV column that holds text further down (the whole file: the text as written). The
survey finds the whole file's type of every column, and ``conform`` gives each chunk of the streaming pass that
type, so the output is the one the whole-file read gives. The empty texts are counted here so that a bad row
millions of rows in is refused before the first prediction, with the message the whole-file check gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pandas.api import types

from finetext.data.files import format_of, read_table_chunks

AS_TEXT = "text"
"""A column of a CSV/TSV file that mixes numbers and text: read as text, as the whole-file read keeps it."""
UNTYPED_FORMATS = {"CSV", "TSV"}
"""Formats whose cells carry no type (pandas guesses one per column from the values it sees)."""


@dataclass
class ColumnSeen:
    """What the survey saw of one column: the dtypes of the chunks where it has a value, and how many chunks
    have none (all missing, or no such key in any of the chunk's JSON lines)."""

    dtypes: set[str] = field(default_factory=set)
    empty_chunks: int = 0
    mixed: bool = False
    """Numbers and text (or other types) in one chunk's column (JSON)."""

    def families(self) -> set[str]:
        return {_family(dtype) for dtype in self.dtypes}

    def mixes_types(self, dtype: str | None) -> bool:
        """Whether the whole file's column holds values of several types (which Parquet cannot store)."""
        return self.mixed or (dtype == "object" and not self.families() <= {"bool", "object"})


@dataclass
class TextsSeen:
    """Rows of a candidate text column that the whole-file check refuses: missing or blank, or not text (a
    number); by count and first position."""

    blank: int = 0
    first_blank: int | None = None
    not_text: int = 0
    first_not_text: int | None = None

    def add_missing(self, count: int, offset: int) -> None:
        """A chunk without the column (JSON lines without the key)."""
        self.blank += count
        self.first_blank = offset if self.first_blank is None and count else self.first_blank

    def add(self, values: list, offset: int) -> None:
        for position, value in enumerate(values, start=offset):
            if isinstance(value, str) and value.strip():
                continue
            if isinstance(value, str) or value is None or pd.isna(value):
                self.add_missing(1, position)
            else:
                self.not_text += 1
                self.first_not_text = position if self.first_not_text is None else self.first_not_text


@dataclass(frozen=True)
class BadTexts:
    """Empty or missing texts of a column as the whole-file check counts them."""

    count: int
    first: int | None


@dataclass(frozen=True)
class Survey:
    path: Path
    chunk_rows: int
    rows: int
    columns: list[str]
    """In the whole file's order."""
    casts: dict[str, str]
    """Column -> the dtype every chunk's values are converted to (those a chunk alone may read otherwise)."""
    as_text: frozenset[str]
    """Columns read as text (CSV/TSV columns that mix numbers and text)."""
    texts: dict[str, BadTexts]
    """For each candidate text column present: its empty or missing texts."""
    mixed: list[str]
    """Columns whose values have several types (numbers and text: JSON), which Parquet cannot store."""

    @property
    def chunks(self) -> int:
        return -(-self.rows // self.chunk_rows)

    def chunk_size(self, index: int) -> int:
        return min(self.chunk_rows, self.rows - index * self.chunk_rows)


def survey_table(path: Path, chunk_rows: int, candidates: Iterable[str]) -> Survey:
    """Read path once, chunk by chunk (one in memory at a time); candidates: the columns that may be the text
    columns (their empty texts are counted)."""
    seen: dict[str, ColumnSeen] = {}
    texts = {name: TextsSeen() for name in candidates}
    rows = 0
    for index, chunk in enumerate(read_table_chunks(path, chunk_rows)):
        for name in chunk.columns:
            seen.setdefault(str(name), ColumnSeen(empty_chunks=index))  # a JSON key first seen in this chunk
        for name, column_seen in seen.items():
            _see_column(column_seen, chunk[name] if name in chunk.columns else None)
        for name, text_seen in texts.items():
            if name in chunk.columns:
                text_seen.add(chunk[name].tolist(), rows)
            else:
                text_seen.add_missing(len(chunk), rows)
        rows += len(chunk)
    untyped = format_of(path).name in UNTYPED_FORMATS
    plan = {name: whole_file_dtype(column_seen, untyped) for name, column_seen in seen.items()}
    as_text = frozenset(name for name, dtype in plan.items() if dtype == AS_TEXT)
    casts = {name: dtype for name, dtype in plan.items() if dtype not in (None, AS_TEXT)}
    bad = {name: _bad_texts(texts[name], name in as_text) for name in texts if name in seen}
    mixed = [name for name, column_seen in seen.items() if column_seen.mixes_types(plan[name])]
    return Survey(path, chunk_rows, rows, list(seen), casts, as_text, bad, mixed)


def _see_column(column_seen: ColumnSeen, values: pd.Series | None) -> None:
    if values is None or values.isna().all():
        column_seen.empty_chunks += 1
        return
    column_seen.dtypes.add(str(values.dtype))
    if values.dtype == object and types.infer_dtype(values, skipna=True) in ("mixed", "mixed-integer"):
        column_seen.mixed = True


def _bad_texts(seen: TextsSeen, read_as_text: bool) -> BadTexts:
    """Numbers are refused where the column is read as numbers; read as text they are texts."""
    if read_as_text:
        return BadTexts(seen.blank, seen.first_blank)
    firsts = [p for p in (seen.first_blank, seen.first_not_text) if p is not None]
    return BadTexts(seen.blank + seen.not_text, min(firsts, default=None))


def whole_file_dtype(seen: ColumnSeen, untyped: bool) -> str | None:
    """The dtype pandas gives the column reading the whole file, where a chunk may read it otherwise: None (every
    chunk reads it so), a dtype to convert chunks to, or AS_TEXT."""
    if not seen.dtypes or (len(seen.dtypes) == 1 and not seen.empty_chunks):
        return None
    families = seen.families()
    if families <= {"int", "float"}:
        return "float64"  # whole numbers with a decimal or a missing value elsewhere
    if families <= {"bool", "object"}:
        return "object"  # booleans with a missing value elsewhere
    if len(seen.dtypes) == 1:
        return next(iter(seen.dtypes))  # the chunks with no value get the type of the others
    return AS_TEXT if untyped else "object"


def _family(dtype: str) -> str:
    if types.is_bool_dtype(dtype):
        return "bool"
    if types.is_integer_dtype(dtype):
        return "int"
    if types.is_float_dtype(dtype):
        return "float"
    return "object" if dtype == "object" else dtype


def conformed_chunks(survey: Survey, wanted: set[int]) -> Iterator[tuple[int, pd.DataFrame]]:
    """(index, chunk) for the wanted chunks of the input, with the whole file's columns and types; the others
    are read past (and the file no further than the last wanted)."""
    if not wanted:
        return
    last = max(wanted)
    for index, chunk in enumerate(read_table_chunks(survey.path, survey.chunk_rows, survey.as_text)):
        if index in wanted:
            yield index, conform(chunk, survey)
        if index >= last:
            return


def conform(chunk: pd.DataFrame, survey: Survey) -> pd.DataFrame:
    if list(chunk.columns) != survey.columns:  # JSON lines need not all have the same keys
        chunk = chunk.reindex(columns=survey.columns)
    for name, dtype in survey.casts.items():
        if str(chunk[name].dtype) != dtype:
            chunk[name] = chunk[name].astype(dtype)
    return chunk
