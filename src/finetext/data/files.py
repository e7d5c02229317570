"""Tables in files: one registry of formats (CSV, TSV, JSON, JSONL, Parquet), read with clear errors and
written atomically.

Each format is one TableFormat entry in FORMATS: its name, its extensions, a reader and a writer. Everything
else (the extensions a data folder is searched for, predict's output file, the error texts) derives from
FORMATS, so a new format is one entry here (its reader and writer can live in a module of their own).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from io import StringIO
from pathlib import Path

import pandas as pd

from finetext.errors import FinetextError
from finetext.storage import staged_file

ChunkReader = Callable[[Path, int, frozenset[str]], Iterator[pd.DataFrame]]
"""``chunks(path, rows, as_text)``: the table in consecutive frames of ``rows`` rows (the last shorter), the
columns named in as_text read as text where the format stores no types (CSV/TSV)."""


@dataclass(frozen=True)
class TableFormat:
    """One file format: ``read(path)`` gives the whole table, ``write(frame, path)`` writes it whole (to a
    staged path: write_table makes it atomic). A reader whose format can hold two columns of the same name
    (CSV/TSV headers, Parquet schemas) refuses them (raise DuplicateColumns) rather than let one go unused;
    JSON's parser has already merged a repeated key (docs/decisions.md). ``chunks`` reads it a chunk at a time
    (read_table_chunks); None: the whole table is read and cut into chunks (JSON, one array)."""

    name: str  # as error messages call it
    extensions: tuple[str, ...]  # lower case, with the dot
    read: Callable[[Path], pd.DataFrame]
    write: Callable[[pd.DataFrame, Path], None]
    chunks: ChunkReader | None = None


class DuplicateColumns(ValueError):
    """A reader found two or more columns named ``name``, at 1-based ``positions``."""

    def __init__(self, name: str, positions: list[int]):
        super().__init__(name, positions)
        self.name, self.positions = name, positions


def _check_unique(names: list[str]) -> None:
    positions: dict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(names, start=1):
        positions[name].append(position)
    for name, found in positions.items():
        if len(found) > 1:
            raise DuplicateColumns(name, found)


def _read_delimited(path: Path, separator: str) -> pd.DataFrame:
    _check_header(path, separator)
    # keep_default_na=False: a text such as "NA" or "null" stays text; only empty cells are missing.
    return pd.read_csv(path, sep=separator, encoding="utf-8", keep_default_na=False, na_values=[""])


def _check_header(path: Path, separator: str) -> None:
    # pandas renames a repeated header ('label', 'label.1'), so the header is checked as written
    with open(path, encoding="utf-8-sig", newline="") as handle:
        _check_unique(next(csv.reader(handle, delimiter=separator), []))


def _delimited_chunks(path: Path, rows: int, as_text: frozenset[str], separator: str) -> Iterator[pd.DataFrame]:
    _check_header(path, separator)
    yield from pd.read_csv(path, sep=separator, encoding="utf-8", keep_default_na=False, na_values=[""],
                           chunksize=rows, dtype=dict.fromkeys(as_text, str))


def _write_delimited(frame: pd.DataFrame, path: Path, separator: str) -> None:
    path.write_bytes(frame.to_csv(index=False, sep=separator).encode("utf-8"))


def _read_json(path: Path) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8")
    # A .json file holds either an array of records or (as often) one record per line.
    lines = text.lstrip().startswith("{") and "\n" in text.strip()
    return pd.read_json(StringIO(text), lines=lines, dtype=False)


def _write_json(frame: pd.DataFrame, path: Path) -> None:
    path.write_bytes(frame.to_json(orient="records", force_ascii=False, indent=2).encode("utf-8"))


def _read_jsonl(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, encoding="utf-8", dtype=False)


def _jsonl_chunks(path: Path, rows: int, as_text: frozenset[str]) -> Iterator[pd.DataFrame]:
    with pd.read_json(path, lines=True, encoding="utf-8", dtype=False, chunksize=rows) as reader:
        yield from reader


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    path.write_bytes(frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8"))


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    _check_unique(pq.read_schema(path).names)  # the schema only: pyarrow would fail with a cryptic error
    return pd.read_parquet(path)


def _parquet_chunks(path: Path, rows: int, as_text: frozenset[str]) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pre_buffer would fetch every row group's columns at once (the whole file, compressed); a read buffer
    # streams the pages of the current row group instead.
    file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    _check_unique(file.schema_arrow.names)
    pending: list = []
    for batch in file.iter_batches(batch_size=rows):  # batches may end at row groups: re-cut to exactly rows
        pending.append(batch)
        while sum(b.num_rows for b in pending) >= rows:
            table = pa.Table.from_batches(pending, file.schema_arrow)
            yield table.slice(0, rows).to_pandas()
            pending = table.slice(rows).to_batches()
    if any(b.num_rows for b in pending):
        yield pa.Table.from_batches(pending, file.schema_arrow).to_pandas()


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


FORMATS = (
    TableFormat("CSV", (".csv",), partial(_read_delimited, separator=","), partial(_write_delimited, separator=","),
                partial(_delimited_chunks, separator=",")),
    TableFormat("TSV", (".tsv",), partial(_read_delimited, separator="\t"),
                partial(_write_delimited, separator="\t"), partial(_delimited_chunks, separator="\t")),
    TableFormat("JSON", (".json",), _read_json, _write_json),
    TableFormat("JSONL", (".jsonl",), _read_jsonl, _write_jsonl, _jsonl_chunks),
    TableFormat("PARQUET", (".parquet",), _read_parquet, _write_parquet, _parquet_chunks),
)
EXTENSIONS = tuple(extension for table_format in FORMATS for extension in table_format.extensions)
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "test_unlabeled"),
}


def format_of(path: Path) -> TableFormat | None:
    suffix = path.suffix.lower()
    return next((f for f in FORMATS if suffix in f.extensions), None)


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path).expanduser()
    table_format = readable_format(path)
    with _reading(path, table_format):
        return table_format.read(path)


def read_table_chunks(path: str | Path, rows: int, as_text: frozenset[str] = frozenset()) -> Iterator[pd.DataFrame]:
    """The table of path in consecutive frames of ``rows`` rows (index from 0 in each), holding one chunk at a
    time; JSON (one array) is read whole first. Columns in as_text are read as text where the file has no types."""
    path = Path(path).expanduser()
    table_format = readable_format(path)
    with _reading(path, table_format):
        if table_format.chunks is None:
            table = table_format.read(path)
            chunks: Iterator[pd.DataFrame] = (table.iloc[i:i + rows] for i in range(0, len(table), rows))
        else:
            chunks = table_format.chunks(path, rows, as_text)
        for chunk in chunks:
            yield chunk.reset_index(drop=True)


def readable_format(path: Path) -> TableFormat:
    """path's format, refusing a missing file, a folder and an unknown extension."""
    if not path.exists():
        raise FinetextError(f"file not found: {path}.", "Check the path.")
    if path.is_dir():
        raise FinetextError(f"{path} is a directory, a file was expected.", "Use --dataset DIR for a folder.")
    table_format = format_of(path)
    if table_format is None:
        raise FinetextError(f"cannot read {path}: unsupported file type '{path.suffix.lower()}'.",
                            f"Use one of {', '.join(EXTENSIONS)}.")
    return table_format


@contextmanager
def _reading(path: Path, table_format: TableFormat) -> Iterator[None]:
    """A reader's failures as one-line errors."""
    try:
        yield
    except DuplicateColumns as exc:
        raise _duplicate_columns_error(path, exc) from None
    except UnicodeDecodeError:
        raise FinetextError(f"{path} is not valid UTF-8 text.", "Re-save it with UTF-8 encoding.") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise FinetextError(f"cannot read {path} as {table_format.name}: {reason}.",
                            "Check the file's format.") from None


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write frame in the format of path's extension, atomically (finetext.storage): a process killed while
    writing leaves the previous file or the new one, never a truncated one."""
    path = Path(path).expanduser()
    table_format = format_of(path)
    if table_format is None:
        raise FinetextError(f"cannot write {path}: unsupported output type '{path.suffix.lower()}'.",
                            f"Use one of {', '.join(EXTENSIONS)}.")
    with staged_file(path) as tmp:
        table_format.write(frame, tmp)
    return path


def _duplicate_columns_error(path: Path, exc: DuplicateColumns) -> FinetextError:
    """Refused rather than read: pandas would keep one of the columns (renaming or dropping the other)."""
    *first, last = exc.positions
    if len(first) == 1:
        return FinetextError(f"{path} has two columns named '{exc.name}' (columns {first[0]} and {last}).",
                             "Rename one of them.")
    return FinetextError(f"{path} has {len(exc.positions)} columns named '{exc.name}' (columns "
                         f"{', '.join(map(str, first))} and {last}).", "Rename all but one of them.")


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
