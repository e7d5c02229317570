"""Hyper-parameter search: `Trainer.hyperparameter_search` (Optuna) against `finetext tune`, in one run.

    .venv/bin/python bench/tune_vs_trainer.py                  # SST-2: 2,000 sentences, 8 minutes a side
    .venv/bin/python bench/tune_vs_trainer.py --train-samples 64 --eval-samples 32 --budget-minutes 1 --trials 2

Both sides search the same space (learning rate log-uniform 1.25e-5 .. 2e-4, 1 to 3 epochs, batch 8/16/32,
warm-up ratio 0 .. 0.2, weight decay 0 .. 0.1) for the best accuracy on the same scoring rows, training the same
model (finetext's packaged all-MiniLM-L6-v2, max_length 64) on the same training rows, with the same Optuna
sampler (TPE, seed 42, finetext's number of random start-up trials), a median pruner, the same trial cap and the
same time budget (Optuna's timeout: no trial starts after it, a running one finishes). The parent writes the data
once (OUT/data: train.parquet, search.parquet, test.parquet, columns text,label with label names); each side then
runs in its own child process, one after the other, and its clock starts when that process is started: imports,
model loading and tokenization count.

- trainer:  what the Hugging Face tutorial does: AutoTokenizer, `datasets` tokenized once, DataCollatorWithPadding,
            a Trainer with `model_init`, eval_strategy="epoch", and `trainer.hyperparameter_search(backend="optuna")`
            with a SQLite storage the study is read back from afterwards.
- finetext: `finetext.tune(..., search_split="validation", final="none")`: trials scored on the scoring rows
            (finetext insists on a labelled test split to hold back: a disjoint slice of the same validation file,
            which no trial sees), no final model (only the search is compared).

Printed: per side the best accuracy, trials complete/pruned/failed, the child's wall time and when its final best
was first reached; then one verdict line. Written: OUT/tune_vs_trainer.json (also every trial, and the best score
so far after each completed trial, in seconds since the child started) and OUT/tune_vs_trainer.png (best score so
far against minutes, both sides).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime
from pathlib import Path

from common import data_dir, print_machine, run_child

SEED = 42
MAX_LENGTH = 64
SIDES = ("trainer", "finetext")
DATA = "data"
LR_LOW, LR_HIGH = 1.25e-5, 2.0e-4
EPOCHS_LOW, EPOCHS_HIGH = 1, 3
BATCH_SIZES = [8, 16, 32]
WARMUP_HIGH, WEIGHT_DECAY_HIGH = 0.2, 0.1
# Parameters in the same order on both sides, so the seeded sampler draws the same start-up trials for each.
FINETEXT_SPACE = {
    "learning_rate": {"low": LR_LOW, "high": LR_HIGH, "log": True},
    "epochs": {"low": EPOCHS_LOW, "high": EPOCHS_HIGH},
    "batch_size": BATCH_SIZES,
    "warmup": {"low": 0.0, "high": WARMUP_HIGH},
    "weight_decay": {"low": 0.0, "high": WEIGHT_DECAY_HIGH},
}
# The Trainer reports to Optuna once an epoch (eval_strategy="epoch": eval_steps cannot follow the batch size a
# trial samples), keyed by global step; finetext twice an epoch, keyed by evaluation index. Both pruners start
# after two finished trials and may prune from the end of the first epoch on.
TRAINER_PRUNER = {"n_startup_trials": 2, "n_warmup_steps": 1}
PRUNING_NOTE = ("pruning: Trainer evaluates once an epoch (eval_strategy='epoch') and reports by global step, so "
                "its median pruner only compares trials whose step counts coincide; finetext evaluates twice an "
                "epoch and reports by evaluation index; both prune from the end of epoch 1 after 2 finished trials")


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the space: finetext's rule (Optuna's default, 10, from 30 trials on)."""
    return min(10, max(3, trials // 3))


# ---------------------------------------------------------------------------------------------- data


def write_data(args: argparse.Namespace, folder: Path) -> dict[str, int]:
    """Seeded subsets, written once so that both sides read identical rows: train from train.parquet, the
    scoring rows and (disjoint from them) the held-back test rows finetext requires from validation.parquet."""
    import pandas as pd

    source = Path(args.data_dir) / args.dataset
    train, validation = (pd.read_parquet(source / f"{split}.parquet") for split in ("train", "validation"))
    names_file = source / "label_names.json"
    names = json.loads(names_file.read_text()) if names_file.is_file() else None

    def named(frame: pd.DataFrame) -> pd.DataFrame:
        text = "text" if "text" in frame.columns else "sentence"
        labels = frame["label"].map(lambda i: names[int(i)]) if names else frame["label"].astype(str)
        return pd.DataFrame({"text": frame[text].to_numpy(), "label": labels.to_numpy()})

    if args.train_samples > len(train) or args.eval_samples >= len(validation):
        raise SystemExit(f"{args.dataset} has {len(train)} training and {len(validation)} validation rows: "
                         f"--train-samples {args.train_samples} / --eval-samples {args.eval_samples} do not fit "
                         "(validation must also leave rows for the held-back test split)")
    shuffled = validation.sample(frac=1.0, random_state=SEED)
    splits = {"train": train.sample(n=args.train_samples, random_state=SEED),
              "search": shuffled.iloc[:args.eval_samples],
              "test": shuffled.iloc[args.eval_samples:2 * args.eval_samples]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, frame in splits.items():
        named(frame).to_parquet(folder / f"{split}.parquet", index=False)
    label_names = names or sorted(named(train)["label"].unique().tolist())
    (folder / "label_names.json").write_text(json.dumps(label_names))
    (folder / "search_space.yaml").write_text(
        "\n".join(f"{name}: {json.dumps(value)}" for name, value in FINETEXT_SPACE.items()) + "\n")  # JSON is YAML
    return {split: len(frame) for split, frame in splits.items()}


# ---------------------------------------------------------------------------------------------- children


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def run_trainer_side(args: argparse.Namespace) -> dict:
    """The search as the Hugging Face tutorial writes it."""
    import datasets
    import numpy as np
    import optuna
    import pandas as pd
    import transformers
    from sklearn.metrics import accuracy_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from finetext.models.pretrained import packaged_model_dir

    transformers.logging.set_verbosity_error()  # the same "newly initialized weights" warning every trial
    datasets.disable_progress_bars()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(args.out) / DATA
    names = json.loads((folder / "label_names.json").read_text())
    label2id = {name: i for i, name in enumerate(names)}
    model_path = str(packaged_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def encode(split: str) -> datasets.Dataset:
        frame = pd.read_parquet(folder / f"{split}.parquet")
        ds = datasets.Dataset.from_dict({"text": frame["text"].tolist(),
                                         "label": [label2id[label] for label in frame["label"]]})
        return ds.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH), batched=True,
                      remove_columns=["text"])

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id)

    def hp_space(trial: optuna.Trial) -> dict:
        return {"learning_rate": trial.suggest_float("learning_rate", LR_LOW, LR_HIGH, log=True),
                "num_train_epochs": trial.suggest_int("num_train_epochs", EPOCHS_LOW, EPOCHS_HIGH),
                "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", BATCH_SIZES),
                # transformers 5 has no warmup_ratio: warmup_steps below 1 is the ratio of the training steps
                "warmup_steps": trial.suggest_float("warmup_steps", 0.0, WARMUP_HIGH),
                "weight_decay": trial.suggest_float("weight_decay", 0.0, WEIGHT_DECAY_HIGH)}

    def accuracy(eval_pred) -> dict:
        logits, labels = eval_pred
        return {"accuracy": float(accuracy_score(labels, np.argmax(logits, axis=-1)))}

    run_dir = Path(args.out) / "trainer"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    training_args = TrainingArguments(
        output_dir=str(run_dir / "run"), eval_strategy="epoch", save_strategy="no", report_to=[], seed=SEED,
        # the Trainer casts each sampled value to the type of the field's current value: 0.0, not the default int
        # 0, or every sampled warm-up ratio would become int(ratio) = 0
        warmup_steps=0.0,
        per_device_eval_batch_size=64,  # finetext's eval_batch_size: evaluation speed only, no effect on scores
        disable_tqdm=True)
    trainer = Trainer(args=training_args, model_init=model_init, train_dataset=encode("train"),
                      eval_dataset=encode("search"), data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=accuracy)
    storage = f"sqlite:///{run_dir / 'trainer.db'}"
    trainer.hyperparameter_search(
        direction="maximize", backend="optuna", hp_space=hp_space, compute_objective=lambda m: m["eval_accuracy"],
        n_trials=args.trials, timeout=args.budget_minutes * 60, study_name="trainer", storage=storage,
        sampler=optuna.samplers.TPESampler(seed=SEED, n_startup_trials=startup_trials(args.trials)),
        pruner=optuna.pruners.MedianPruner(**TRAINER_PRUNER))
    study = optuna.load_study(study_name="trainer", storage=storage)
    states = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
              optuna.trial.TrialState.FAIL: "failed"}
    return {"device": str(trainer.args.device),
            "trials": [{"number": t.number, "state": states.get(t.state, t.state.name.lower()),
                        "score": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                        "finished": iso(t.datetime_complete), "params": t.params} for t in study.get_trials()]}


def run_finetext_side(args: argparse.Namespace) -> dict:
    import finetext
    from finetext.models.pretrained import packaged_model_dir

    folder = Path(args.out) / DATA
    result = finetext.tune(
        {"train_file": str(folder / "train.parquet"), "validation_file": str(folder / "search.parquet"),
         "test_file": str(folder / "test.parquet"), "text_column": "text", "label_column": "label",
         "label_names": json.loads((folder / "label_names.json").read_text()), "model": str(packaged_model_dir()),
         "max_length": MAX_LENGTH, "metric_for_best_model": "accuracy", "seed": SEED,
         # best (finetext's default): a trial keeps, and is scored by, the best of its evaluations; last: scored on
         # its last evaluation, as a Trainer trial is
         "load_best_model_at_end": args.finetext_keeps == "best",
         "output_dir": str(Path(args.out) / "finetext"), "overwrite_output_dir": True, "quiet": True},
        trials=args.trials, timeout=f"{args.budget_minutes * 60:g}s", search_space=str(folder / "search_space.yaml"),
        search_split="validation", final="none")
    import torch

    return {"device": "cuda" if torch.cuda.is_available() else "cpu",
            "trials": [{"number": t.number, "state": t.state, "score": t.score, "finished": iso(t.finished),
                        "params": t.params} for t in result.summary.trials]}


# ---------------------------------------------------------------------------------------------- parent


def run_side(side: str, argv: list[str]) -> dict:
    """One side in its own process; every time in its figures is counted from the moment it was started."""
    started = datetime.now()  # naive local time, as Optuna stores a trial's start and end
    clock = time.monotonic()
    report, peak_rss_mb = run_child(__file__, [*argv, "--side", side], side)
    wall = time.monotonic() - clock
    trials = sorted(report["trials"], key=lambda t: t["finished"] or "~")
    for trial in trials:
        trial["finished_s"] = None if trial["finished"] is None else round(
            (datetime.fromisoformat(trial["finished"]) - started).total_seconds(), 1)
    history, best = [], None
    for trial in trials:
        if trial["state"] == "complete" and trial["score"] is not None:
            best = trial["score"] if best is None else max(best, trial["score"])
            history.append((trial["finished_s"], best))
    counts = {state: sum(t["state"] == state for t in trials) for state in ("complete", "pruned", "failed")}
    return {"best_score": best, "trials": counts, "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb),
            "best_reached_s": first_reaching(history, best), "history": history, "device": report["device"],
            "trial_list": trials}


def first_reaching(history: list[tuple[float, float]], score: float | None) -> float | None:
    """Seconds until the best score so far first reached score (None: never)."""
    if score is None:
        return None
    return next((seconds for seconds, best in history if best >= score), None)


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def score(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def verdict(results: dict[str, dict]) -> str:
    finetext, trainer = results["finetext"], results["trainer"]
    if finetext["best_score"] is not None and trainer["best_score"] is not None \
            and finetext["best_score"] >= trainer["best_score"]:
        what, at = "the Trainer's best", first_reaching(finetext["history"], trainer["best_score"])
    else:
        what, at = "its best", finetext["best_reached_s"]
    reached = trainer["best_reached_s"]
    won = what != "its best" and at is not None and reached is not None and at < reached
    return (f"finetext best {score(finetext['best_score'])} vs Trainer best {score(trainer['best_score'])}; "
            f"finetext reached {what} at {seconds(at)} vs Trainer's best at {seconds(reached)} "
            f"(equal or better in less time: {'yes' if won else 'no'})")


def table(results: dict[str, dict]) -> str:
    rows = ["| side | best accuracy | complete | pruned | failed | best reached at | wall | peak RSS MB | device |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for side, r in results.items():
        rows.append(f"| {side} | {score(r['best_score'])} | {r['trials']['complete']} | {r['trials']['pruned']} | "
                    f"{r['trials']['failed']} | {seconds(r['best_reached_s'])} | {r['wall_seconds']:.0f} s | "
                    f"{r['peak_rss_mb']} | {r['device']} |")
    return "\n".join(rows)


def chart(results: dict[str, dict], budget_minutes: float, path: Path) -> None:
    """The best score so far against minutes since each side's process started: a step line per side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for side, r in results.items():
        if not r["history"]:
            continue
        xs = [s / 60 for s, _ in r["history"]] + [r["wall_seconds"] / 60]
        ys = [b for _, b in r["history"]] + [r["history"][-1][1]]
        ax.step(xs, ys, where="post", label=f"{side} (best {r['best_score']:.4f})")
        ax.plot(xs[:-1], ys[:-1], "o", color=ax.lines[-1].get_color(), markersize=4)
    ax.set_xlim(0, 1.05 * max(budget_minutes, *(r["wall_seconds"] / 60 for r in results.values())))
    ax.axvline(budget_minutes, color="grey", linestyle="--", linewidth=1, label="time budget")
    ax.set_xlabel("minutes since the side's process started")
    ax.set_ylabel("best accuracy so far")
    ax.set_title("Trainer.hyperparameter_search (Optuna) vs finetext tune")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=data_dir(), help="holds DATASET/train.parquet and validation.parquet")
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--eval-samples", type=int, default=500, help="scoring rows (and as many held-back test rows)")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="each side's Optuna timeout")
    parser.add_argument("--trials", type=int, default=30, help="each side's trial cap")
    parser.add_argument("--out", default="outputs/bench/tune_vs_trainer")
    parser.add_argument("--finetext-keeps", choices=("best", "last"), default="best",
                        help="finetext's trials keep their best evaluation (its default) or their last (as the "
                        "Trainer's trials are scored)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    args.out = str(Path(args.out).resolve())
    if args.side:
        report = run_trainer_side(args) if args.side == "trainer" else run_finetext_side(args)
        Path(args.report).write_text(json.dumps(report))
        return

    out = Path(args.out)
    rows = write_data(args, out / DATA)
    print(f"{args.dataset}: {rows['train']} training rows, {rows['search']} scoring rows ({rows['test']} held back "
          f"for finetext), max_length {MAX_LENGTH}; {args.trials} trials or {args.budget_minutes:g} minutes a side, "
          f"TPE seed {SEED} ({startup_trials(args.trials)} random start-up trials), median pruner; finetext "
          f"trials keep their {args.finetext_keeps} evaluation", flush=True)
    argv = ["--data-dir", args.data_dir, "--dataset", args.dataset, "--trials", str(args.trials),
            "--budget-minutes", str(args.budget_minutes), "--out", args.out, "--finetext-keeps", args.finetext_keeps]
    results = {}
    for side in SIDES:
        results[side] = run_side(side, argv)
        print(f"{side}: best {score(results[side]['best_score'])}, {results[side]['trials']}, "
              f"{results[side]['wall_seconds']:.0f} s", flush=True)
    settings = {"finetext_keeps": args.finetext_keeps, "dataset": args.dataset, "rows": rows,
                "max_length": MAX_LENGTH, "trials": args.trials,
                "budget_minutes": args.budget_minutes, "seed": SEED, "space": FINETEXT_SPACE,
                "startup_trials": startup_trials(args.trials), "pruning": PRUNING_NOTE}
    line = verdict(results)
    (out / "tune_vs_trainer.json").write_text(json.dumps({"settings": settings, **results, "verdict": line},
                                                         indent=2))
    chart(results, args.budget_minutes, out / "tune_vs_trainer.png")
    print("\n" + table(results) + "\n")
    print(PRUNING_NOTE)
    print(line)
    print(f"written: {out / 'tune_vs_trainer.json'}, {out / 'tune_vs_trainer.png'}")


if __name__ == "__main__":
    main()
