"""Engine parity: train one config with both engines over several seeds and compare validation F1.

    .venv/bin/python bench/parity.py examples/mrpc.yaml --seeds 1 2 3 --epochs 3
    .venv/bin/python bench/parity.py examples/mrpc.yaml --engines trainer keras --seeds 1 2 3 --epochs 3
    KERAS_BACKEND=tensorflow python bench/parity.py examples/mrpc.yaml --engines trainer keras --seeds 1 --epochs 3

Runs one after another (the machine has 2 cores) and prints a Markdown table: one row per run (engine with its
Keras backend, seed, best validation F1 and accuracy, training time and throughput, the precision it trained in),
then each engine's mean and the difference. The keras engine's backend is KERAS_BACKEND's (default torch): one
process loads Keras with one backend, so each backend is its own invocation.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml
from common import print_machine

import finetext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="example YAML file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--engines", nargs="+", default=["trainer", "native"])
    parser.add_argument("--epochs", type=float, help="override the config's epochs (same for every run)")
    parser.add_argument("--output-root", default="outputs/parity")
    args = parser.parse_args()
    print_machine(args)
    overrides = {"epochs": args.epochs} if args.epochs else {}
    rows = ["| engine | seed | val F1 | val acc | train s | samples/s | precision |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    f1s: dict[str, list[float]] = {engine: [] for engine in args.engines}
    for seed in args.seeds:
        for engine in args.engines:
            out = Path(args.output_root) / f"{engine}-seed{seed}"
            result = finetext.train(args.config, engine=engine, seed=seed, output_dir=str(out),
                                    overwrite_output_dir=True, quiet=True, **overrides)
            val, train = result.metrics["final"]["validation"], result.metrics["train"]
            f1s[engine].append(100 * val["f1"])
            resolved = yaml.safe_load((out / "finetext.yaml").read_text())["training"]
            name = f"{engine} ({resolved['keras_backend']})" if resolved.get("keras_backend") else engine
            rows.append(f"| {name} | {seed} | {100 * val['f1']:.2f} | {100 * val['accuracy']:.2f} | "
                        f"{train['train_runtime_s']:.0f} | {train['train_samples_per_second']:.1f} | "
                        f"{resolved['precision']} |")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(rows) + "\n")
    for engine, values in f1s.items():
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"{engine}: mean validation F1 {statistics.mean(values):.2f}{spread} over seeds {args.seeds}")
    if len(f1s) == 2:
        a, b = (statistics.mean(v) for v in f1s.values())
        print(f"difference: {abs(a - b):.2f} F1 points")


if __name__ == "__main__":
    main()
