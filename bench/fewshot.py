"""Few labels: finetext's fewshot strategy, finetext's defaults (full fine-tuning) and the setfit package, on the
same draws of N examples per class, the same body (the packaged all-MiniLM-L6-v2) and the same scored rows.

    .venv/bin/python bench/fewshot.py                                   # SST-2, SST-5, AG News; N 8/16/64; 5 draws
    .venv/bin/python bench/fewshot.py --datasets sst5 --sizes 8 --draws 2 --scored 300    # a quick look

Per dataset the scored rows are fixed for every draw: SST-2 its validation split (872 sentences: its test split
has no labels), SST-5 2,000 test sentences, AG News 2,000 test articles (AG News here has only its test split:
draws come from the other 5,600). Draw d (seed d) takes N training examples per class and, for finetext, N more per
class as its validation split (a few-shot user has no more; setfit uses none). Each method runs in this process,
one after the other; its wall time covers loading the model, training and scoring the rows. Needs setfit
(`pip install -e ".[bench]"`; setfit 1.2 runs on transformers 5). Results go to OUT/fewshot.jsonl, one line per
run; a rerun skips runs already there, so an interrupted bench continues. The table is printed at the end (and
by --table-only).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import pandas as pd
from common import append_row, data_dir, print_machine, read_rows

METHODS = ("fewshot", "full", "full_cls", "setfit")
"""full: finetext's defaults (strategy full, pooling auto = mean for MiniLM); full_cls: the same with --pooling cls
(finetext's defaults before mean pooling)."""
PUBLISHED = {  # SetFit paper (Tunstall et al. 2022), Table 2, N=8: SetFit (paraphrase-mpnet-base-v2, 110M) vs
    ("sst5", 8): "SetFit 43.6, RoBERTa-large fine-tuning 33.5",  # fine-tuning RoBERTa-large (355M)
    ("ag_news", 8): "SetFit 82.9, RoBERTa-large fine-tuning 81.7",
}


def splits(name: str, root: Path, scored: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pool to draw from, scored rows)."""
    if name == "sst2":
        return pd.read_parquet(root / "sst2/train.parquet"), pd.read_parquet(root / "sst2/validation.parquet")
    if name == "sst5":
        test = pd.read_parquet(root / "sst5/test.parquet")
        return pd.read_parquet(root / "sst5/train.parquet"), test.sample(min(scored, len(test)), random_state=0)
    test = pd.read_parquet(root / "ag_news/test.parquet")
    rows = test.sample(scored, random_state=0)
    return test.drop(rows.index), rows


def draw(pool: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pool.groupby("label").sample(n, random_state=seed)
    validation = pool.drop(train.index).groupby("label").sample(n, random_state=seed + 1000)
    return train.reset_index(drop=True), validation.reset_index(drop=True)


def run_finetext(method: str, files: dict[str, Path], out: Path, seed: int) -> float:
    import finetext

    strategy, _, pooling = method.partition("_")
    result = finetext.train({"train_file": str(files["train"]), "validation_file": str(files["validation"]),
                             "test_file": str(files["scored"]), "strategy": strategy, "pooling": pooling or "auto",
                             "output_dir": str(out), "seed": seed, "quiet": True, "report": False,
                             "overwrite_output_dir": True})
    return result.metrics["test"]["accuracy"]


def run_setfit(train: pd.DataFrame, scored: pd.DataFrame, seed: int, out: Path) -> float:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from finetext.models.pretrained import packaged_model_dir

    model = SetFitModel.from_pretrained(str(packaged_model_dir()))
    trainer = Trainer(model=model, args=TrainingArguments(seed=seed, show_progress_bar=False,
                                                                   output_dir=str(out)),
                      train_dataset=Dataset.from_pandas(train[["text", "label"]]))
    trainer.train()
    predicted = model.predict(scored["text"].tolist(), as_numpy=True)
    return float((predicted == scored["label"].to_numpy()).mean())


def measure(method: str, train: pd.DataFrame, files: dict[str, Path], scored: pd.DataFrame, out: Path,
            seed: int) -> dict:
    started = time.perf_counter()
    accuracy = (run_setfit(train, scored, seed, out / "setfit") if method == "setfit"
                else run_finetext(method, files, out / method, seed))
    return {"accuracy": round(100 * accuracy, 2), "seconds": round(time.perf_counter() - started, 1)}


def table(rows: list[dict]) -> str:
    lines = ["| dataset | N per class | method | accuracy (mean +- std) | draws | wall time per run (s) | "
             "published (N=8, larger bodies) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["dataset"], r["n"], r["method"]) for r in rows},
                  key=lambda k: (k[0], k[1], METHODS.index(k[2])))
    for dataset, n, method in keys:
        runs = [r for r in rows if (r["dataset"], r["n"], r["method"]) == (dataset, n, method)]
        scores = [r["accuracy"] for r in runs]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {dataset} | {n} | {method} | {statistics.mean(scores):.1f} +- {spread:.1f} | {len(runs)} | "
                     f"{statistics.mean(r['seconds'] for r in runs):.0f} | "
                     f"{PUBLISHED.get((dataset, n), '') if method == 'setfit' else ''} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="sst2,sst5,ag_news")
    parser.add_argument("--sizes", default="8,16,64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--scored", type=int, default=2000)
    parser.add_argument("--methods", default="fewshot,full,setfit", help=f"any of {', '.join(METHODS)}")
    parser.add_argument("--out", default="outputs/bench-fewshot")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    print_machine(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "fewshot.jsonl"
    done = read_rows(results)
    logging.getLogger("finetext").setLevel(logging.ERROR)
    for dataset in [] if args.table_only else args.datasets.split(","):
        pool, scored = splits(dataset, Path(data_dir()), args.scored)
        for n in map(int, args.sizes.split(",")):
            for seed in range(args.draws):
                train, validation = draw(pool, n, seed)
                files = {"train": out / "train.parquet", "validation": out / "validation.parquet",
                         "scored": out / "scored.parquet"}
                for frame, path in ((train, files["train"]), (validation, files["validation"]),
                                    (scored, files["scored"])):
                    frame[["text", "label"]].to_parquet(path)
                for method in args.methods.split(","):
                    key = {"dataset": dataset, "n": n, "draw": seed, "method": method}
                    if any(all(r[k] == v for k, v in key.items()) for r in done):
                        continue
                    append_row(results, {**key, **measure(method, train, files, scored, out, seed)}, done)
    print(table(done))


if __name__ == "__main__":
    main()
