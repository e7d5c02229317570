"""What each speed feature is worth: finetext's defaults, then the same run with one feature changed.

    .venv/bin/python bench/speed_features.py                    # IMDB, 400 reviews, max_length 512, batch 8
    .venv/bin/python bench/speed_features.py --variants torch_compile --train-samples 800
    .venv/bin/python bench/speed_features.py --tokenization      # the tokenization cache, IMDB train (25,000)

Every run trains in its own child process (bench/engines.py's runner), one after the other, on the same
rows, seed and hyper-parameters; only the named setting differs from the defaults. Printed per run:
training samples/s and real tokens/s over training time without evaluation (the history's
train_seconds), the ratio to the defaults, validation accuracy after the epoch, and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import time

from common import data_dir, print_machine
from engines import run_engine

# Each variant turns one of finetext's speed defaults off (or the optional compile on).
VARIANTS = {
    "defaults": {},
    "group_by_length=false": {"group_by_length": False},
    "attention_dropout=0.1": {"attention_dropout": 0.1},
    "precision=fp32": {"precision": "fp32"},
    "engine=native": {"engine": "native"},
    "torch_compile": {"torch_compile": True},
}


def training_features(args: argparse.Namespace) -> None:
    values = {"dataset": args.dataset, "data_dir": data_dir(), "train_samples": args.train_samples,
              "eval_samples": args.eval_samples, "test_samples": 1, "max_length": args.max_length,
              "batch_size": args.batch_size, "epochs": 1, "seed": 42, "quiet": True, "cache_tokenized": False}
    names = args.variants.split(",")
    print(f"{args.dataset}: {args.train_samples} training rows, max_length {args.max_length}, batch "
          f"{args.batch_size}, 1 epoch; {os.cpu_count()} CPUs", flush=True)
    rows = ["| run | samples/s | real tokens/s | x defaults | val acc | peak RSS MB |",
            "| --- | --- | --- | --- | --- | --- |"]
    base = None
    for name in names:
        config = {**values, **VARIANTS[name]}
        run = run_engine(config.pop("engine", "trainer"), config)
        metrics = run["metrics"]
        seconds = metrics["history"][-1]["train_seconds"]
        samples = metrics["data"]["train"] * metrics["train"]["epochs_completed"]
        speed = samples / seconds
        tokens = metrics["train"]["train_tokens_per_second"] * metrics["train"]["train_runtime_s"] / seconds
        base = base or speed
        rows.append(f"| {name} | {speed:.2f} | {tokens:.0f} | {speed / base:.2f} | "
                    f"{100 * metrics['history'][-1]['validation']['accuracy']:.2f} | {run['peak_rss_mb']:.0f} |")
        print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))


def tokenization_cache(args: argparse.Namespace) -> None:
    """Tokenize a whole split without the cache, then twice with it (the first fills it, the second hits)."""
    import tempfile

    from transformers import AutoTokenizer

    from finetext.config import DataConfig, build
    from finetext.data.sources import load_labelled_data
    from finetext.data.tokenize import tokenize_split
    from finetext.models.pretrained import packaged_model_dir

    data = load_labelled_data(build(DataConfig, {"dataset": args.dataset, "data_dir": data_dir(),
                                                 "max_length": args.max_length}), 42)
    train = data.splits["train"]
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir())
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FINETEXT_CACHE_DIR"] = cache
        for label, use_cache in (("no cache", False), ("cache miss (tokenize + store)", True),
                                 ("cache hit", True)):
            started = time.perf_counter()
            encoded = tokenize_split(train, tokenizer, args.max_length, "dynamic", cache=use_cache)
            print(f"{label}: {time.perf_counter() - started:.2f} s for {len(encoded)} rows", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="imdb")
    parser.add_argument("--train-samples", type=int, default=400)
    parser.add_argument("--eval-samples", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", default="defaults,group_by_length=false,attention_dropout=0.1,precision=fp32",
                        help=f"comma-separated, from {', '.join(VARIANTS)}; the first is the baseline")
    parser.add_argument("--tokenization", action="store_true", help="measure the tokenization cache instead")
    args = parser.parse_args()
    print_machine(args)
    if args.tokenization:
        tokenization_cache(args)
    else:
        training_features(args)


if __name__ == "__main__":
    main()
