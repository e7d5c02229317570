"""How long IMDB reviews are in the scratch model's words, and how many words its vocabulary misses: the
figures behind max_length 256 in the scratch recipe (docs/results.md, issue 5).

    .venv/bin/python bench/imdb_lengths.py                 # ../shared/data/imdb/train.parquet, 100,000 words
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from common import print_machine

from finetext.models.glove import build_tokenizer, load_word_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/imdb/train.parquet")
    parser.add_argument("--vocab-size", type=int, default=100_000)
    args = parser.parse_args()
    print_machine(args)
    tokenizer = build_tokenizer(load_word_vectors(None, args.vocab_size).words, max_length=100_000)
    ids = tokenizer(pd.read_parquet(args.data)["text"].tolist())["input_ids"]
    lengths = np.array([len(row) for row in ids])
    unknown = sum(row.count(tokenizer.unk_token_id) for row in ids) / lengths.sum()
    print(f"{len(lengths):,} reviews: mean {lengths.mean():.0f} words, median {np.median(lengths):.0f}; "
          + ", ".join(f"{100 * (lengths > n).mean():.0f}% longer than {n}" for n in (256, 300, 512))
          + f"; {100 * unknown:.2f}% of words outside the {args.vocab_size:,}-word vocabulary")


if __name__ == "__main__":
    main()
