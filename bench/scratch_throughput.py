"""Training throughput of the scratch GloVe transformer, against fine-tuning the default pretrained model on
the same reviews in the same process (docs/results.md, "Scratch GloVe transformer").

    .venv/bin/python bench/scratch_throughput.py            # IMDB reviews, 256 words/tokens, batch 32

Each setting is one `finetext.train` run of one epoch on a seeded IMDB subset, run in turn with nothing else
running (2 cores). Prints training samples/s and real (non-padding) tokens/s as finetext measures them
(metrics.json, training loop only), and each setting's ratio to the pretrained baseline.
"""

from __future__ import annotations

import argparse
import tempfile

from common import print_machine

import finetext

SETTINGS = {
    "all-MiniLM-L6-v2, full (baseline)": {"train_samples": 512},
    "scratch, default (2 layers x 64, 4 heads)": {"model": "scratch"},
    "scratch, native engine": {"model": "scratch", "engine": "native"},
    "scratch, frozen GloVe embeddings": {"model": "scratch", "freeze_embeddings": True},
    "scratch, 2 layers x 128": {"model": "scratch", "scratch_width": 128},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="training reviews per scratch setting")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print_machine(args)
    rows = ["| setting | reviews | samples/s | tokens/s | vs baseline |", "| --- | --- | --- | --- | --- |"]
    baseline = None
    for name, overrides in SETTINGS.items():
        with tempfile.TemporaryDirectory() as out:
            values = {"dataset": "imdb", "output_dir": out, "train_samples": args.samples, "eval_samples": 64,
                      "test_samples": 64, "epochs": 1, "max_length": args.max_length, "batch_size": args.batch_size,
                      "quiet": True, **overrides}
            train = finetext.train(values).metrics["train"]
        speed = train["train_samples_per_second"]
        baseline = baseline or speed
        rows.append(f"| {name} | {values['train_samples']} | {speed:.1f} | {train['train_tokens_per_second']:,.0f} "
                    f"| x{speed / baseline:.1f} |")
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
