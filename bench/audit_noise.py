"""`finetext audit` against labels flipped on purpose: how many of the flipped rows it finds, and what removing
the flagged rows does to accuracy on a clean test split.

    .venv/bin/python bench/audit_noise.py                         # SST-2 and AG News, 5% and 10% flipped
    .venv/bin/python bench/audit_noise.py --datasets sst2 --noise 0.1 --train-rows 1000 --no-retrain   # quick

Data (the full sets in ../shared/data):
- sst2:    a seeded 8,000-sentence subset of SST-2 train is audited; the clean test split is SST-2 validation (872).
- ag_news: the AG News test split (7,600, the only split shipped) split seeded and stratified into 6,000 rows to
           audit and 1,600 clean test rows.
For each noise level a seeded share of the audited rows gets a different label, drawn uniformly from the others;
those row ids are the truth. Every audit choice (--methods, METHOD:FOLDS) runs on the same noisy file and reports
the rows it flagged, precision and recall of the flagged set and of its top k rows (k = the number flipped, from
out_of_fold.parquet's score order), the out-of-fold accuracy and its wall time.

Then (unless --no-retrain) the default model trains with fixed settings (--epochs 2, its own 10% validation carved
from the training file) on: the clean labels, the noisy labels, and the noisy labels minus each audit's flagged rows
(`--exclude-rows label_issues.csv`; with --cleanings estimated, only its first N rows, N = the audit's estimate of
the mislabelled rows), each scored on the clean test split. Results are appended to
WORKDIR/results.jsonl as they come (a rerun skips what is there) and printed as Markdown tables at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import append_row, data_dir, print_machine, read_rows

import finetext

SEED = 0
MAX_LENGTH = {"sst2": 64, "ag_news": 128}


def prepare(dataset: str, root: Path, train_rows: int, out: Path) -> tuple[Path, Path, list[str]]:
    """The clean audited rows and the clean test rows, as Parquet files with label names."""
    from sklearn.model_selection import train_test_split

    names = json.loads((root / dataset / "label_names.json").read_text())
    if dataset == "sst2":
        train = pd.read_parquet(root / "sst2" / "train.parquet")
        train = train.sample(n=min(train_rows, len(train)), random_state=SEED).reset_index(drop=True)
        test = pd.read_parquet(root / "sst2" / "validation.parquet")
        train, test = (f.rename(columns={"sentence": "text"}) for f in (train, test))
    else:
        full = pd.read_parquet(root / "ag_news" / "test.parquet")
        train, test = train_test_split(full, train_size=min(train_rows, len(full) - 1600), test_size=1600,
                                       random_state=SEED, stratify=full["label"])
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame, name in ((train, "clean_train"), (test, "clean_test")):
        named = pd.DataFrame({"text": frame["text"].to_numpy(), "label": [names[int(i)] for i in frame["label"]]})
        paths.append(out / f"{name}.parquet")
        named.to_parquet(paths[-1], index=False)
    return paths[0], paths[1], names


def flip(clean: Path, names: list[str], share: float, out: Path) -> tuple[Path, set[int]]:
    """A copy of clean with a seeded share of the labels changed to another label; the changed row ids."""
    frame = pd.read_parquet(clean)
    rng = np.random.default_rng(SEED + int(share * 1000))
    rows = rng.choice(len(frame), size=round(share * len(frame)), replace=False)
    labels = frame["label"].to_numpy().copy()
    for row in rows:
        labels[row] = rng.choice([n for n in names if n != labels[row]])
    path = out / f"noisy_{int(share * 100)}.parquet"
    frame.assign(label=labels).to_parquet(path, index=False)
    return path, {int(r) for r in rows}


def scores(audit_dir: Path, flipped: set[int]) -> dict:
    issues = pd.read_csv(audit_dir / "label_issues.csv")
    every = pd.read_parquet(audit_dir / "out_of_fold.parquet").sort_values("score", kind="stable")
    flagged = set(issues["row_id"])
    top = set(every["row_id"].head(len(flipped)))
    found = len(flagged & flipped)
    return {"flagged": len(flagged), "precision": round(found / max(1, len(flagged)), 4),
            "recall": round(found / len(flipped), 4), "top_k_precision": round(len(top & flipped) / len(flipped), 4)}


def audit(noisy: Path, method: str, folds: int, dataset: str, out: Path) -> dict:
    started = time.perf_counter()
    result = finetext.audit({"train_file": str(noisy), "max_length": MAX_LENGTH[dataset], "epochs": 1,
                             "output_dir": str(out), "quiet": True}, folds=folds, method=method, overwrite=True)
    return {"seconds": round(time.perf_counter() - started, 1), "estimated": result.estimated_issues,
            "oof_accuracy": result.summary["out_of_fold_accuracy"]}


def audit_estimate(done: list[dict], dataset: str, share: float, choice: str) -> int:
    """The audit's estimated number of mislabelled rows (cleanlab's num_label_issues)."""
    return next(r["estimated"] for r in done if (r["dataset"], r["kind"], r["noise"], r["method"]) ==
                (dataset, "audit", share, choice))


def train(train_file: Path, test_file: Path, dataset: str, out: Path, exclude: Path | None = None,
          top: int | None = None) -> dict:
    started = time.perf_counter()
    result = finetext.train({"train_file": str(train_file), "test_file": str(test_file), "epochs": 2,
                             "max_length": MAX_LENGTH[dataset], "output_dir": str(out), "quiet": True,
                             "overwrite_output_dir": True, "report": False,
                             **({"exclude_rows": str(exclude), "exclude_top": top} if exclude else {})})
    test = result.metrics["test"]
    return {"test_accuracy": round(test["accuracy"], 4), "test_f1": round(test["f1"], 4),
            "train_rows": result.metrics["data"]["train"], "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "ag_news"], choices=sorted(MAX_LENGTH))
    parser.add_argument("--noise", nargs="+", type=float, default=[0.05, 0.10])
    parser.add_argument("--methods", nargs="+", default=["embeddings:5", "train:3"], help="METHOD:FOLDS")
    parser.add_argument("--train-rows", type=int, default=8000, help="rows audited (ag_news: at most 6,000)")
    parser.add_argument("--no-retrain", action="store_true", help="only the audits")
    parser.add_argument("--cleanings", nargs="+", default=["all"], choices=("all", "estimated"),
                        help="retrain without: every flagged row (all), or only the audit's estimated number of "
                             "mislabelled rows, most likely first (estimated)")
    parser.add_argument("--workdir", default="/tmp/finetext-audit-bench")
    args = parser.parse_args()
    print_machine()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "results.jsonl"
    done = read_rows(log)
    measured = {(r["dataset"], r["kind"], r.get("noise"), r.get("method")) for r in done}
    for dataset in args.datasets:
        base = work / dataset
        clean, test, names = prepare(dataset, Path(data_dir()), args.train_rows, base)
        if not args.no_retrain and (dataset, "train", 0.0, "clean") not in measured:
            append_row(log, {"dataset": dataset, "kind": "train", "noise": 0.0, "method": "clean",
                             **train(clean, test, dataset, base / "model-clean")}, done)
        for share in args.noise:
            noisy, flipped = flip(clean, names, share, base)
            if not args.no_retrain and (dataset, "train", share, "noisy") not in measured:
                append_row(log, {"dataset": dataset, "kind": "train", "noise": share, "method": "noisy",
                                 **train(noisy, test, dataset, base / f"model-noisy-{share}")}, done)
            for choice in args.methods:
                method, folds = choice.split(":")
                audit_dir = base / f"audit-{share}-{method}-{folds}"
                if (dataset, "audit", share, choice) not in measured:
                    row = audit(noisy, method, int(folds), dataset, audit_dir)
                    append_row(log, {"dataset": dataset, "kind": "audit", "noise": share, "method": choice,
                                     "flipped": len(flipped), "rows": len(pd.read_parquet(noisy)), **row,
                                     **scores(audit_dir, flipped)}, done)
                for cleaning in [] if args.no_retrain else args.cleanings:
                    name = f"cleaned {choice}" if cleaning == "all" else f"cleaned {choice}, top estimated"
                    if (dataset, "train", share, name) in measured:
                        continue
                    top = None if cleaning == "all" else audit_estimate(done, dataset, share, choice)
                    append_row(log, {"dataset": dataset, "kind": "train", "noise": share, "method": name,
                                     **train(noisy, test, dataset, base / f"model-{share}-{method}-{cleaning}",
                                             audit_dir / "label_issues.csv", top)}, done)
    print_tables(done)


def print_tables(rows: list[dict]) -> None:
    audits = [r for r in rows if r["kind"] == "audit"]
    print("\n| data | flipped | method:folds | flagged | precision | recall | top-k precision | out-of-fold acc | "
          "estimated | time |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in audits:
        print(f"| {r['dataset']} | {100 * r['noise']:.0f}% ({r['flipped']} of {r['rows']}) | {r['method']} | "
              f"{r['flagged']} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | "
              f"{100 * r['top_k_precision']:.1f} | {100 * r['oof_accuracy']:.2f} | {r['estimated']} | "
              f"{r['seconds']:.0f} s |")
    trains = [r for r in rows if r["kind"] == "train"]
    if trains:
        print("\n| data | labels | train rows | clean-test accuracy | F1 | time |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in trains:
            labels = "clean" if r["method"] == "clean" else f"{100 * r['noise']:.0f}% flipped, {r['method']}"
            print(f"| {r['dataset']} | {labels} | {r['train_rows']} | {100 * r['test_accuracy']:.2f} | "
                  f"{100 * r['test_f1']:.2f} | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
