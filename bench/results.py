"""Train each given example config in turn and print the figures that docs/results.md reports.

    .venv/bin/python bench/results.py examples/mrpc.yaml examples/sst2.yaml examples/imdb.yaml

Runs one after another (never in parallel: the machine has 2 cores) and prints one Markdown row per run:
validation and test accuracy/F1, training time and the whole command's wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import print_machine

import finetext


def percent(report: dict | None, key: str) -> str:
    return f"{100 * report[key]:.2f}" if report else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="example YAML files")
    parser.add_argument("--output-root", default="outputs/results", help="one run directory per config here")
    args = parser.parse_args()
    print_machine(args)
    rows = ["| config | train / val / test examples | val acc | val F1 | test acc | test F1 | train s | total s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for config in args.configs:
        out = Path(args.output_root) / Path(config).stem
        started = time.perf_counter()
        result = finetext.train(config, output_dir=str(out), overwrite_output_dir=True)
        total = time.perf_counter() - started
        m = result.metrics
        val, test = m["final"]["validation"], m.get("test")
        sizes = f"{m['data'].get('train')} / {m['data'].get('validation')} / {test['num_examples'] if test else '-'}"
        rows.append(f"| {config} | {sizes} | {percent(val, 'accuracy')} | {percent(val, 'f1')} | "
                    f"{percent(test, 'accuracy')} | {percent(test, 'f1')} | {m['train']['wall_time_s']:.0f} | "
                    f"{total:.0f} |")
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
