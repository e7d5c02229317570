"""The engines against the Trainer engine: same model, data, seed and hyper-parameters, in one run.

    .venv/bin/python bench/engines.py                       # IMDB subset, default model, 1 epoch
    .venv/bin/python bench/engines.py --dataset sst2 --train-samples 4000 --max-length 64
    python bench/engines.py --engines trainer keras:torch keras:tensorflow   # where finetext[tensorflow] is installed

An engine is a registered name, or keras:BACKEND for the keras engine on that Keras backend.
Each engine trains in its own child process, one after the other (the machine has 2 cores, so nothing else
may run meanwhile), `--repeats` times in alternating order. Printed per run: training samples/s, real
(non-padding) tokens/s, the training time (evaluations included, as the Trainer counts it), validation
accuracy, and the peak resident memory of the whole child process; then the native/trainer ratio of the
medians (each engine against the first one named).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from common import data_dir, print_machine, run_child


def child(args: argparse.Namespace) -> None:
    import finetext

    result = finetext.train(json.loads(args.child))
    Path(args.report).write_text(json.dumps(result.metrics))


def run_engine(engine: str, values: dict) -> dict:
    """Train in a child process; return its metrics and its peak RSS."""
    name, _, backend = engine.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        config = {**values, "engine": name, "output_dir": str(Path(tmp) / "run")}
        if backend:
            config["keras_backend"] = backend
        metrics, peak_rss_mb = run_child(__file__, ["--child", json.dumps(config)], engine)
    return {"metrics": metrics, "peak_rss_mb": peak_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="imdb")
    parser.add_argument("--model", default=None, help="default: finetext's default model")
    parser.add_argument("--train-samples", type=int, default=480)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", nargs="+", default=["trainer", "native"],
                        help="the first is the baseline of the ratios; keras:torch / keras:tensorflow for Keras")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    if args.child:
        return child(args)

    values = {"dataset": args.dataset, "train_samples": args.train_samples, "eval_samples": args.eval_samples,
              "test_samples": 1, "max_length": args.max_length, "batch_size": args.batch_size,
              "epochs": args.epochs, "precision": args.precision, "seed": 42, "quiet": True,
              "data_dir": data_dir()}
    if args.model:
        values["model"] = args.model
    print(f"{args.dataset}: {args.train_samples} training examples, max_length {args.max_length}, batch "
          f"{args.batch_size}, {args.epochs} epoch(s), {args.precision}, {os.cpu_count()} CPUs", flush=True)
    rows = ["| engine | samples/s | real tokens/s | train s | val acc | peak RSS MB |",
            "| --- | --- | --- | --- | --- | --- |"]
    runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
    for repeat in range(args.repeats):
        for engine in (args.engines if repeat % 2 == 0 else args.engines[::-1]):
            run = run_engine(engine, values)
            runs[engine].append(run)
            train = run["metrics"]["train"]
            rows.append(f"| {engine} | {train['train_samples_per_second']:.2f} | "
                        f"{train['train_tokens_per_second']:.0f} | {train['train_runtime_s']:.1f} | "
                        f"{100 * run['metrics']['final']['validation']['accuracy']:.2f} | {run['peak_rss_mb']:.0f} |")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))

    def median(engine: str, key: str) -> float:
        return statistics.median(r["metrics"]["train"][key] for r in runs[engine])

    base = args.engines[0]
    for engine in args.engines[1:]:
        for key in ("train_samples_per_second", "train_tokens_per_second"):
            print(f"{engine} / {base} {key}: {median(engine, key) / median(base, key):.3f}")
        rss = [statistics.median(r["peak_rss_mb"] for r in runs[e]) for e in (engine, base)]
        print(f"{engine} / {base} peak RSS: {rss[0] / rss[1]:.3f}")


if __name__ == "__main__":
    main()
