"""`finetext audit` on a real, unmodified training set: the rows most likely mislabelled, printed for reading.

    .venv/bin/python bench/audit_top.py mrpc sst5                      # embeddings, 5 folds, top 20
    .venv/bin/python bench/audit_top.py sst5 --method train --folds 3 --epochs 1

Each dataset's whole train split (../shared/data) is audited; printed: the audit's summary line (rows flagged,
estimated error rate, out-of-fold accuracy, time) and the top N rows with their row id, given and suggested label
and score, for a person to judge. The audits stay in WORKDIR/<dataset>-<method>/.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

import pandas as pd
from common import data_dir, print_machine

import finetext

MAX_LENGTH = {"mrpc": 128, "sst5": 64, "sst2": 64, "ag_news": 128}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(MAX_LENGTH))
    parser.add_argument("--method", default="embeddings", choices=("embeddings", "train"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=float, default=1.0, help="--method train: epochs of each fold run")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--workdir", default="/tmp/finetext-audit-top")
    args = parser.parse_args()
    print_machine()
    for dataset in args.datasets:
        out = Path(args.workdir) / f"{dataset}-{args.method}"
        started = time.perf_counter()
        result = finetext.audit({"dataset": dataset, "data_dir": data_dir(), "max_length": MAX_LENGTH[dataset],
                                 "epochs": args.epochs, "output_dir": str(out), "quiet": True},
                                folds=args.folds, method=args.method, overwrite=True)
        s = result.summary
        print(f"\n## {dataset}: {result.rows:,} rows, {args.method}, {args.folds} folds: {result.flagged:,} flagged, "
              f"estimated {result.estimated_issues:,} ({100 * result.estimated_issues / result.rows:.1f}%), "
              f"out-of-fold accuracy {100 * s['out_of_fold_accuracy']:.2f}, {time.perf_counter() - started:.0f} s")
        issues = pd.read_csv(out / "label_issues.csv").head(args.top)
        for row in issues.to_dict("records"):
            text = row["text"] + (f"  ||  {row['text_pair']}" if "text_pair" in row else "")
            print(f"{row['rank']:>3}. row {row['row_id']:>5}  given {row['given_label']!s:<14} suggested "
                  f"{row['suggested_label']!s:<14} score {row['score']:.4f}")
            print(textwrap.indent(textwrap.fill(text, 110), "       "))


if __name__ == "__main__":
    main()
