"""Rebuild the test fixtures in tests/data from the full datasets in ../shared/data (seeded, reproducible).

    python tests/data/make_fixtures.py [--source ../shared/data]

Each fixture keeps its dataset's layout (<name>/<split>.parquet + label_names.json), so the tests and
`make demo` find it by name with --data-dir tests/data. Row counts are chosen for what the tests need
(e.g. tests/test_resume.py trains on 1,200 MRPC pairs) and kept well under 2 MB in all.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SEED = 0
# name -> {split file stem: rows}
ROWS = {
    "sst2": {"train": 2000, "validation": 400, "test_unlabeled": 200},  # also make demo's offline sample
    "mrpc": {"train": 1200, "validation": 200, "test": 300},
    "sst5": {"train": 400, "validation": 200, "test": 200},
    "imdb": {"train": 300, "test": 200},  # long texts: about 11% of reviews are over 512 tokens
    "ag_news": {"test": 400},
}
GLOVE_WORDS = 1000


def sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """A seeded sample, stratified by label (each class keeps its share), in the source's row order."""
    if rows >= len(frame):
        return frame
    if "label" not in frame or (frame["label"] == -1).all():
        return frame.sample(n=rows, random_state=SEED).sort_index()
    shares = frame["label"].value_counts(normalize=True)
    counts = (shares * rows).round().astype(int)
    counts.iloc[0] += rows - counts.sum()
    parts = [frame[frame["label"] == label].sample(n=int(n), random_state=SEED) for label, n in counts.items()]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def write(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default=str(HERE.parents[2] / "shared" / "data"))
    source = Path(parser.parse_args().source)
    for name, splits in ROWS.items():
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        for split, rows in splits.items():
            write(sample(pd.read_parquet(source / name / f"{split}.parquet"), rows), folder / f"{split}.parquet")
        shutil.copyfile(source / name / "label_names.json", folder / "label_names.json")
    glove = pq.read_table(source / "glove" / "glove.6B.50d.top100k.parquet").slice(0, GLOVE_WORDS)
    (HERE / "glove").mkdir(exist_ok=True)
    pq.write_table(glove, HERE / "glove" / "glove.6B.50d.top1k.parquet", compression="zstd")


if __name__ == "__main__":
    main()
