"""Prediction parts: each chunk's output table written as a file of its own, in the output's format, and the
parts joined in order into the output file, one part in memory at a time.

The join gives the bytes ``data.files.write_table`` gives for the whole table: CSV/TSV and JSONL parts are the
chunk's rows as that writer writes them (CSV/TSV without the header, which the join writes once), JSON parts the
records inside the array's brackets. Parquet parts become one row group each; their schemas differ only where a
chunk has no value at all in a column (Arrow's null type), which the join widens to the column's type.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from finetext.data.files import FORMATS
from finetext.errors import FinetextError

JSON_OPEN, JSON_CLOSE, JSON_SEPARATOR = b"[\n", b"\n]", b",\n"
TABLE_FORMATS = {table_format.name: table_format for table_format in FORMATS}


@dataclass(frozen=True)
class PartFormat:
    """How one output format (data.files.FORMATS' name) is written a chunk at a time."""

    write: Callable[[pd.DataFrame, Path], None]
    """Write one chunk's output table to a (staged) path."""
    join: Callable[[list[Path], list[str], Path], None]
    """Join the parts, in order, into the (staged) output path; the output's columns are given for a header."""


def _write_delimited(frame: pd.DataFrame, path: Path, separator: str) -> None:
    path.write_bytes(frame.to_csv(index=False, header=False, sep=separator).encode("utf-8"))


def _join_delimited(parts: list[Path], columns: list[str], out: Path, separator: str) -> None:
    with out.open("wb") as handle:
        handle.write(pd.DataFrame(columns=columns).to_csv(index=False, sep=separator).encode("utf-8"))
        _copy(parts, handle)


def _write_json(frame: pd.DataFrame, path: Path) -> None:
    TABLE_FORMATS["JSON"].write(frame, path)  # the whole-table writer's bytes, without the array's brackets
    path.write_bytes(path.read_bytes()[len(JSON_OPEN):-len(JSON_CLOSE)])


def _join_json(parts: list[Path], columns: list[str], out: Path) -> None:
    with out.open("wb") as handle:
        handle.write(JSON_OPEN)
        for index, part in enumerate(parts):
            if index:
                handle.write(JSON_SEPARATOR)
            _copy([part], handle)
        handle.write(JSON_CLOSE)


def _join_bytes(parts: list[Path], columns: list[str], out: Path) -> None:
    with out.open("wb") as handle:
        _copy(parts, handle)


def _copy(parts: list[Path], handle) -> None:
    for part in parts:
        with part.open("rb") as source:
            shutil.copyfileobj(source, handle)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _parquet_errors():
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _join_parquet(parts: list[Path], columns: list[str], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(part) for part in parts]
    # pandas' metadata (index, dtypes) from a part that has a value in every column, where there is one
    typed = next((s for s in schemas if not any(pa.types.is_null(f.type) for f in s)), schemas[0])
    with _parquet_errors():
        schema = pa.unify_schemas(schemas).with_metadata(typed.metadata)
    with pq.ParquetWriter(out, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).cast(schema))


@contextmanager
def _parquet_errors() -> Iterator[None]:
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise FinetextError(f"a column cannot be written to Parquet: {' '.join(str(exc).split())[:200]}.",
                            "Give it one type (numbers or text), or write CSV or JSONL with --output.") from None


PARTS: dict[str, PartFormat] = {
    "CSV": PartFormat(partial(_write_delimited, separator=","), partial(_join_delimited, separator=",")),
    "TSV": PartFormat(partial(_write_delimited, separator="\t"), partial(_join_delimited, separator="\t")),
    "JSON": PartFormat(_write_json, _join_json),
    "JSONL": PartFormat(TABLE_FORMATS["JSONL"].write, _join_bytes),  # lines: a part is the whole writer's output
    "PARQUET": PartFormat(_write_parquet, _join_parquet),
}
