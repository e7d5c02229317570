"""Training speed: the tutorial recipe, the best-configured Trainer and finetext's defaults, in one run.

    .venv/bin/python bench/speed_train.py                      # IMDB, 1,000 reviews, max_length 512, batch 8
    .venv/bin/python bench/speed_train.py --configs trainer_best,finetext --train-samples 400

Every configuration trains the same model (finetext's default, all-MiniLM-L6-v2) on the same rows (read by
finetext's loader with the same seed), with the same hyper-parameters (batch 8, learning rate 5e-5, 10%
warm-up, weight decay 0.01, 1 epoch, seed 42), each in its own child process, one after the other:

- tutorial:        HF Trainer, every example padded to max_length, random batches, fp32 (the HF course);
- trainer_dynamic: HF Trainer, dynamic padding + train_sampling_strategy="group_by_length", fp32;
- trainer_best:    trainer_dynamic in the precision that is faster on this machine for this model and shape
                   (bf16 autocast as `bf16=True, use_cpu=True`, or fp32), as finetext's calibration measures it
                   in this script before the runs (printed; --trainer-precision to force one);
- finetext:        `finetext.train` with its defaults (only the data, batch size and schedule given);
- finetext_before: the defaults finetext had before issue 18: precision from CPU flags (bf16 with AVX512-BF16 or
                   AMX from 1,024 tokens per batch), no short-text batches (batch_tokens 0), embeddings trained.

All evaluate the same validation rows every --eval-steps x 8 training examples (finetext's grown batches: every
--eval-steps x 8 / its batch size steps). Printed per configuration: training
samples/s and real (non-padding) tokens/s, both over training time with evaluations excluded; the
training time to the first evaluation at --target-accuracy; the last evaluation's accuracy; the child's
peak RSS; ratios to the tutorial recipe and to the best Trainer; and model FLOPs utilisation: useful
training FLOPs (6 x non-embedding parameters x real tokens, plus 12 x layers x width x length^2 per
example for attention) per second, divided by the matmul peak this script measures first for the
precision the configuration trains in.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import data_dir, print_calibration, print_machine, run_child

CONFIGS = ("tutorial", "trainer_dynamic", "trainer_best", "finetext", "finetext_before")
BATCH_SIZE, LEARNING_RATE, WARMUP, WEIGHT_DECAY, SEED = 8, 5e-5, 0.1, 0.01, 42


def data_values(args: argparse.Namespace) -> dict:
    return {"dataset": args.dataset, "data_dir": data_dir(), "train_samples": args.train_samples,
            "eval_samples": args.eval_samples, "test_samples": 1, "max_length": args.max_length}


def load_rows(args: argparse.Namespace):
    """The exact rows finetext trains and validates on, so the Trainer recipes see the same data."""
    from finetext.config import DataConfig, build
    from finetext.data.sources import load_labelled_data

    data = load_labelled_data(build(DataConfig, data_values(args)), SEED)
    return data.splits["train"], data.splits["validation"], data.label_names


# ---------------------------------------------------------------------------------------------- children


def run_trainer_recipe(name: str, args: argparse.Namespace) -> dict:
    """The recipe as a careful user writes it with transformers alone."""
    import datasets
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from finetext.models.pretrained import packaged_model_dir
    from finetext.training.trainer_engine import TrainingClock

    train, validation, names = load_rows(args)
    path = str(packaged_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    padding = "max_length" if name == "tutorial" else False

    def encode(frame):
        ds = datasets.Dataset.from_dict({"text": frame["text"].tolist(), "label": frame["label"].tolist()})
        return ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=args.max_length, padding=padding),
                      batched=True, remove_columns=["text"])

    train_ds, val_ds = encode(train), encode(validation)
    set_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names))
    clock = TrainingClock()
    accuracies: dict[int, float] = {}

    def accuracy(eval_pred):
        logits, labels = eval_pred
        return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}

    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=BATCH_SIZE, per_device_eval_batch_size=64,
            learning_rate=LEARNING_RATE, warmup_steps=WARMUP, weight_decay=WEIGHT_DECAY, num_train_epochs=1,
            max_steps=args.tutorial_steps if name == "tutorial" and args.tutorial_steps else -1,
            eval_strategy="steps", eval_steps=args.eval_steps, save_strategy="no", seed=SEED, report_to="none",
            bf16=name == "trainer_best" and args.trainer_precision == "bf16", use_cpu=True, logging_steps=10_000,
            disable_tqdm=True,
            train_sampling_strategy="random" if name == "tutorial" else "group_by_length")
        trainer = Trainer(model=model, args=training_args, train_dataset=train_ds, eval_dataset=val_ds,
                          data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy,
                          callbacks=[clock])
        trainer.train()
        if trainer.state.global_step not in clock.at_step:  # a last evaluation where the steps ran out
            trainer.evaluate()
    for entry in trainer.state.log_history:
        if "eval_accuracy" in entry:
            accuracies[entry["step"]] = entry["eval_accuracy"]
    return {"evaluations": [{"step": s, "train_seconds": clock.at_step[s], "accuracy": accuracies[s]}
                            for s in sorted(accuracies)],
            "rows": len(train_ds), "batch_size": BATCH_SIZE,
            "precision": args.trainer_precision if name == "trainer_best" else "fp32"}


def run_finetext(args: argparse.Namespace, before: bool = False) -> dict:
    import yaml

    import finetext

    with tempfile.TemporaryDirectory() as tmp:
        output_dir = args.keep_model if args.keep_model and not before else str(Path(tmp) / "run")
        values = {**data_values(args), "batch_size": BATCH_SIZE, "epochs": 1, "learning_rate": LEARNING_RATE,
                  "warmup": WARMUP, "weight_decay": WEIGHT_DECAY, "seed": SEED, "eval_strategy": "steps",
                  "eval_steps": max(1, args.eval_steps // growth(args)), "quiet": True, "output_dir": output_dir,
                  "overwrite_output_dir": True, "cache_tokenized": False}  # tokenization is outside the timed part
        if before:
            values.update(batch_tokens=0, freeze_embeddings=False, precision=flag_rule_precision(args),
                          eval_steps=args.eval_steps, fused_optimizer=True, torch_compile=False)
        result = finetext.train(values)
        saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())
    training = saved["training"]
    resolved = {k: training[k] for k in ("batch_size", "learning_rate", "precision", "threads", "fused_optimizer",
                                         "torch_compile")}
    return {"evaluations": [{"step": h["step"], "train_seconds": h["train_seconds"],
                             "accuracy": h["validation"]["accuracy"]} for h in result.metrics["history"]],
            "rows": result.metrics["data"]["train"], "precision": training["precision"],  # auto, resolved
            "batch_size": training["batch_size"],
            "resolved": {**resolved, "freeze_embeddings": saved["model"]["freeze_embeddings"]}}


def growth(args: argparse.Namespace) -> int:
    """The factor finetext's short-text rule puts on batch size 8 for these rows (1 for long texts)."""
    import datasets

    from finetext.config import config_from_flat
    from finetext.training.short_texts import plan_for

    rows = datasets.Dataset.from_dict({"input_ids": [[0] * int(n) for n in workload(args)["lengths"]]})
    return plan_for(config_from_flat({**data_values(args), "batch_size": BATCH_SIZE}), rows).growth


def flag_rule_precision(args: argparse.Namespace) -> str:
    """finetext's precision 'auto' before issue 18: bf16 where the CPU reports AVX512-BF16 or AMX, from 1,024
    tokens per batch, for models at least 384 wide (MiniLM is); else fp32."""
    import torch

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native and workload(args)["lengths"].mean() * BATCH_SIZE >= 1024 else "fp32"


def measured_precision(args: argparse.Namespace) -> str:
    """The precision finetext's calibration finds faster for MiniLM training at these rows' batch shape, with the
    Trainer's attention dropout (0.1)."""
    from transformers import AutoModelForSequenceClassification

    from finetext.hardware.calibrate import Workload, choose_precision, split_choice
    from finetext.models.pretrained import packaged_model_dir

    model = AutoModelForSequenceClassification.from_pretrained(packaged_model_dir(), num_labels=2,
                                                               attention_probs_dropout_prob=0.1)
    tokens = workload(args)["lengths"].mean() * BATCH_SIZE
    choice = choose_precision(model, Workload("train", BATCH_SIZE, tokens, 10**6, args.max_length))
    print(f"trainer_best precision: {choice.line()}", flush=True)
    return split_choice(choice.value)[0]  # with attention dropout 0.1 the Trainer runs SDPA's math kernel anyway


# ---------------------------------------------------------------------------------------------- parent


def workload(args: argparse.Namespace) -> dict:
    """Real tokens and useful training FLOPs of one pass over the training rows (finetext's tokenizer)."""
    import numpy as np
    from transformers import AutoConfig, AutoTokenizer

    from finetext.models.pretrained import packaged_model_dir

    train, _, _ = load_rows(args)
    path = packaged_model_dir()
    tokenizer, config = AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path)
    lengths = np.array([len(ids) for ids in tokenizer(train["text"].tolist(), truncation=True,
                                                       max_length=args.max_length)["input_ids"]], dtype=np.float64)
    d, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * d * d + 2 * d * config.intermediate_size  # Q, K, V, output; the two feed-forward matrices
    non_embedding = layers * per_layer + d * d + d * config.num_labels  # + pooler, classifier (approximately)
    flops = 6 * non_embedding * lengths + 12 * layers * d * lengths**2
    return {"lengths": lengths, "flops": flops}


def summarise(name: str, run: dict, work: dict, peaks: dict, target: float) -> dict:
    last = run["evaluations"][-1]
    samples, seconds = min(last["step"] * run["batch_size"], run["rows"]), last["train_seconds"]
    # The tutorial may stop early (--tutorial-steps): its rows are random, so the mean row stands in.
    fraction = samples / len(work["lengths"])
    tokens, flops = work["lengths"].sum() * fraction, work["flops"].sum() * fraction
    reached = next((e["train_seconds"] for e in run["evaluations"] if e["accuracy"] >= target), None)
    return {"config": name, "precision": run["precision"], "samples_per_s": samples / seconds,
            "tokens_per_s": tokens / seconds, "time_to_target_s": reached, "accuracy": last["accuracy"],
            "steps": last["step"], "peak_rss_mb": run["peak_rss_mb"],
            "mfu": flops / seconds / peaks[run["precision"]], "evaluations": run["evaluations"],
            **({"resolved": run["resolved"]} if "resolved" in run else {})}


def print_table(rows: list[dict], target: float) -> None:
    base = {r["config"]: r for r in rows}
    tutorial, best = base.get("tutorial"), base.get("trainer_best")
    print(f"\n| config | precision | samples/s | real tokens/s | x tutorial | x trainer_best | "
          f"s to {100 * target:.0f}% | final acc | steps | peak RSS MB | MFU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        x_tut = f"{r['samples_per_s'] / tutorial['samples_per_s']:.1f}" if tutorial else "-"
        x_best = f"{r['samples_per_s'] / best['samples_per_s']:.2f}" if best else "-"
        reached = f"{r['time_to_target_s']:.0f}" if r["time_to_target_s"] is not None else "not reached"
        print(f"| {r['config']} | {r['precision']} | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | {x_tut} | "
              f"{x_best} | {reached} | {100 * r['accuracy']:.2f} | {r['steps']} | {r['peak_rss_mb']:.0f} | "
              f"{100 * r['mfu']:.1f}% |")
    for r in rows:
        if "resolved" in r:
            print(f"{r['config']} trained with: " + ", ".join(f"{k} {v}" for k, v in r["resolved"].items()))
    print("\nevaluations (step: training seconds, accuracy):")
    for r in rows:
        print(f"  {r['config']}: " + ", ".join(f"{e['step']}: {e['train_seconds']:.0f} s {100 * e['accuracy']:.1f}%"
                                              for e in r["evaluations"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="imdb")
    parser.add_argument("--train-samples", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--target-accuracy", type=float, default=0.80)
    parser.add_argument("--tutorial-steps", type=int, default=None,
                        help="stop the tutorial recipe after this many steps (its speed only; default: all)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--keep-model", help="keep finetext's model in this directory (for speed_predict.py)")
    parser.add_argument("--trainer-precision", choices=("measured", "fp32", "bf16"), default="measured",
                        help="trainer_best's precision (default: the faster one as measured first)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    if args.child:
        result = (run_finetext(args, before=args.child == "finetext_before") if args.child.startswith("finetext")
                  else run_trainer_recipe(args.child, args))
        Path(args.report).write_text(json.dumps(result))
        return
    names = args.configs.split(",")
    unknown = set(names) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown config(s) {', '.join(sorted(unknown))}; choose from {', '.join(CONFIGS)}")
    import torch

    from finetext.hardware.peaks import matmul_gflops

    os.environ["FINETEXT_CACHE_DIR"] = tempfile.mkdtemp(prefix="speed-train-cache-")  # measured in this run

    peaks = {p: matmul_gflops(p) * 1e9 for p in ("fp32", "bf16")}
    if args.trainer_precision == "measured" and "trainer_best" in names:
        args.trainer_precision = measured_precision(args)
    work = workload(args)
    print(f"{args.dataset}: {args.train_samples} training rows (mean {work['lengths'].mean():.0f} tokens, "
          f"{work['lengths'].min():.0f}-{work['lengths'].max():.0f}), {args.eval_samples} validation rows, "
          f"max_length {args.max_length}, batch {BATCH_SIZE}, 1 epoch; {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} "
          f"GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    argv = [f"--{key.replace('_', '-')}={value}" for key, value in vars(args).items()
            if key not in ("json", "child", "report", "configs") and value is not None]
    rows = []
    for name in names:
        report, peak_rss_mb = run_child(__file__, [*argv, "--child", name], name)
        run = {**report, "peak_rss_mb": peak_rss_mb}
        rows.append(summarise(name, run, work, peaks, args.target_accuracy))
        print(f"{name}: {rows[-1]['samples_per_s']:.2f} samples/s, accuracy {rows[-1]['accuracy']:.4f}", flush=True)
    print_table(rows, args.target_accuracy)
    print_calibration()
    if args.json:
        Path(args.json).write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
