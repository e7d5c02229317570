"""pooling: cls against mean, per strategy, on seeded subsets of MRPC, SST-2 and IMDB (the packaged MiniLM).

    .venv/bin/python bench/pooling.py                     # the table in docs/results.md
    .venv/bin/python bench/pooling.py --runs mrpc:head --train-samples 200     # a quick look

Each run is `finetext.train` with the dataset's defaults and the same seed, changing only --pooling (and the
strategy); one run after the other in this process. Printed: one row per run (validation and test scores, training
seconds, whole-run seconds). Results are appended to OUT/pooling.jsonl; a rerun skips runs already there.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from common import append_row, data_dir, print_machine, read_rows

# (dataset, strategy) -> the subset and settings of its runs; the same for both poolings
SETTINGS = {
    "mrpc": {"dataset": "glue/mrpc", "train_samples": 1000, "epochs": 2},
    "sst2": {"dataset": "sst2", "train_samples": 2000, "epochs": 1, "test_samples": None},
    "imdb": {"dataset": "imdb", "train_samples": 1000, "eval_samples": 500, "test_samples": 1000, "epochs": 2},
}
DEFAULT_RUNS = "mrpc:head,mrpc:lora,mrpc:full,sst2:head,sst2:full,imdb:head"


def run(dataset: str, strategy: str, pooling: str, out: Path, train_samples: int | None) -> dict:
    import finetext

    settings = {k: v for k, v in SETTINGS[dataset].items() if v is not None}
    if train_samples:
        settings["train_samples"] = train_samples
    started = time.perf_counter()
    result = finetext.train({**settings, "data_dir": data_dir(), "strategy": strategy, "pooling": pooling,
                             "output_dir": str(out / f"{dataset}-{strategy}-{pooling}"), "quiet": True,
                             "report": False, "overwrite_output_dir": True})
    metrics = result.metrics
    test = metrics.get("test") or {}
    return {"dataset": dataset, "strategy": strategy, "pooling": pooling,
            "val_accuracy": round(100 * metrics["final"]["validation"]["accuracy"], 2),
            "val_f1": round(100 * metrics["final"]["validation"]["f1"], 2),
            "test_accuracy": round(100 * test["accuracy"], 2) if test else None,
            "test_f1": round(100 * test["f1"], 2) if test else None,
            "train_s": metrics["train"]["train_runtime_s"], "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="dataset:strategy,... (datasets: mrpc, sst2, imdb)")
    parser.add_argument("--train-samples", type=int, default=None, help="override every run's training subset")
    parser.add_argument("--out", default="outputs/bench-pooling")
    args = parser.parse_args()
    print_machine(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "pooling.jsonl"
    done = read_rows(results)
    logging.getLogger("finetext").setLevel(logging.ERROR)
    for item in args.runs.split(","):
        dataset, strategy = item.split(":")
        for pooling in ("cls", "mean"):
            if any((r["dataset"], r["strategy"], r["pooling"]) == (dataset, strategy, pooling) for r in done):
                continue
            append_row(results, run(dataset, strategy, pooling, out, args.train_samples), done)
    columns = ["dataset", "strategy", "pooling", "val_accuracy", "val_f1", "test_accuracy", "test_f1", "train_s",
               "wall_s"]
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    for row in done:
        print("| " + " | ".join("" if row[c] is None else str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
