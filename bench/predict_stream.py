"""Streaming `finetext predict --input`: peak memory and texts/s as the input grows, and 2 processes against 1.

    .venv/bin/python bench/predict_stream.py                                   # trains a small scratch model first
    .venv/bin/python bench/predict_stream.py --model-dir outputs/demo --sizes 10000 --whole-rows 0 --scaling-rows 0

Inputs: SST-2's train sentences (67,349) repeated to 10k, 100k and 1M rows, written as Parquet to a temporary
folder. Each run is `finetext predict MODEL --input IN --output OUT.parquet --quiet --backend pytorch` in a fresh
child process (the backend pinned: `auto` would switch long runs to onnxruntime where that measured faster, and
the sizes would not compare); wall-clock seconds include starting Python and loading the model, so the table
also gives the steady rate between two sizes. Peak RSS is wait4's ru_maxrss: the largest single process (under
torchrun, the largest worker). One run predicts 1M rows as a single chunk (`--chunk-rows 1000000`: the whole
table in memory at once, as before streaming). Scaling, on 1M rows: one process on all cores (the default), one
process on one thread, and `torchrun --nproc-per-node 2` with one thread each.

The model defaults to a small `--model scratch` one trained here (GloVe 50d, 2 layers of width 64: thousands of
texts/s on 2 cores; MiniLM would take about an hour for 1M rows): the point is how memory and throughput scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, print_machine

BIN = Path(sys.executable).parent


def train_small_model(folder: Path, sst2: Path) -> Path:
    """A scratch GloVe transformer on 5,000 SST-2 sentences, one epoch (about a minute on 2 cores)."""
    out = folder / "scratch-sst2"
    subprocess.run([str(BIN / "finetext"), "train", "--dataset", "sst2", "--data-dir", str(sst2.parent.parent),
                    "--model", "scratch", "--train-samples", "5000", "--eval-samples", "500", "--epochs", "1",
                    "--max-length", "64", "--output-dir", str(out), "--quiet"], check=True)
    return out


def make_input(sentences: list[str], rows: int, path: Path) -> Path:
    import pandas as pd

    if not path.exists():
        repeats = -(-rows // len(sentences))
        pd.DataFrame({"id": range(rows), "text": (sentences * repeats)[:rows]}).to_parquet(path, index=False)
    return path


def run(argv: list[str], threads: int | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh child process."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"failed (status {status}): {' '.join(argv)}")
    return seconds, usage.ru_maxrss / 1024


def predict_argv(model: Path, source: Path, out: Path, extra: list[str]) -> list[str]:
    return ["-m", "finetext", "predict", str(model), "--input", str(source), "--output", str(out), "--quiet",
            "--backend", "pytorch", *extra]


def measure(name: str, launcher: list[str], argv: list[str], rows: int, threads: int | None) -> dict:
    seconds, rss = run([*launcher, *argv], threads)
    row = {"run": name, "rows": rows, "seconds": round(seconds, 1), "texts_per_s": round(rows / seconds),
           "peak_rss_mb": round(rss)}
    print(json.dumps(row), flush=True)
    return row


def print_table(rows: list[dict]) -> None:
    print("\n| run | rows | wall s | texts/s (wall) | steady texts/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    previous = None
    for row in rows:
        steady = ""
        if previous and previous["run"] == row["run"] and row["rows"] > previous["rows"]:
            steady = f"{(row['rows'] - previous['rows']) / (row['seconds'] - previous['seconds']):,.0f}"
        print(f"| {row['run']} | {row['rows']:,} | {row['seconds']} | {row['texts_per_s']:,} | {steady} | "
              f"{row['peak_rss_mb']:,} |")
        previous = row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a trained artifact (default: train a small scratch model)")
    parser.add_argument("--sst2", type=Path, default=Path(data_dir()) / "sst2" / "train.parquet")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="input rows, comma-separated")
    parser.add_argument("--chunk-rows", type=int, help="--chunk-rows for every run (default: finetext's)")
    parser.add_argument("--scaling-rows", type=int, default=1_000_000, help="rows of the 1 vs 2 process runs (0: none)")
    parser.add_argument("--whole-rows", type=int, default=1_000_000,
                        help="rows of a run with --chunk-rows as large (the whole table held at once; 0: none)")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    print_machine()
    print(f"load before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = args.model_dir or train_small_model(work, args.sst2)
        import pandas as pd

        sentences = pd.read_parquet(args.sst2)["text"].tolist()
        extra = ["--chunk-rows", str(args.chunk_rows)] if args.chunk_rows else []
        python = [sys.executable]
        rows = []
        for size in map(int, args.sizes.split(",")):
            source = make_input(sentences, size, work / f"sst2-{size}.parquet")
            rows.append(measure("1 process", python, predict_argv(model, source, work / "out.parquet", extra), size,
                                None))
        if args.whole_rows:
            size = args.whole_rows
            source = make_input(sentences, size, work / f"sst2-{size}.parquet")
            argv = predict_argv(model, source, work / "whole.parquet", ["--chunk-rows", str(size)])
            rows.append(measure("1 process, one chunk of all rows", python, argv, size, None))
        if args.scaling_rows:
            size = args.scaling_rows
            source = make_input(sentences, size, work / f"sst2-{size}.parquet")
            argv = predict_argv(model, source, work / "scaled.parquet", extra)
            torchrun = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", "29541"]
            rows.append(measure("1 process, 1 thread", python, argv, size, 1))
            rows.append(measure("2 processes (torchrun), 1 thread each", torchrun, argv, size, 1))
    print(f"load after: {os.getloadavg()}")
    print_table(rows)


if __name__ == "__main__":
    main()
