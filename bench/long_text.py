"""Long documents: truncated against chunked (overlapping windows, probabilities combined per document).

    .venv/bin/python bench/long_text.py                         # IMDB: truncate 256/512 vs chunk 256/512
    .venv/bin/python bench/long_text.py --train-samples 200 --test-samples 200 --settings truncate:128,chunk:128

Every setting trains the same model on the same documents (same seed, same subset, same validation carve) and is
scored on the same test documents (default: IMDB's whole test split, 25,000 reviews), each in its own child process,
one after the other. The training budget is the same number of epochs over the same documents (`--budget epochs`:
a chunked run takes more optimizer steps, one per batch of windows) or the same number of optimizer steps
(`--budget steps`: a chunked run gets epochs x documents / windows epochs). Printed per setting: training windows,
optimizer steps, training time, the child's whole wall time (test scoring included), validation and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import data_dir, print_machine, run_child

DEFAULT_SETTINGS = "truncate:256,truncate:512,chunk:256,chunk:512"


def child(args: argparse.Namespace) -> None:
    import finetext

    result = finetext.train(json.loads(args.child))
    Path(args.report).write_text(json.dumps(result.metrics))


def parse_settings(text: str) -> list[tuple[str, int]]:
    settings = []
    for item in text.split(","):
        mode, _, length = item.strip().partition(":")
        if mode not in ("truncate", "chunk") or not length.isdigit():
            raise SystemExit(f"bad setting '{item}': use truncate:N or chunk:N")
        settings.append((mode, int(length)))
    return settings


def training_windows(values: dict) -> tuple[int, int]:
    """Training documents and the windows a chunked run trains on, computed as the run will (same data, subset,
    tokenizer, stride and cap), for --budget steps."""
    from finetext.config import DataConfig, ModelConfig
    from finetext.data.sources import load_labelled_data
    from finetext.data.tokenize import encode_windows, kept_windows
    from finetext.models.factory import resolve_model_config
    from finetext.models.pretrained import load_tokenizer

    data_fields = {k: v for k, v in values.items() if k in DataConfig.__dataclass_fields__}
    data_cfg = DataConfig(**data_fields)
    data = load_labelled_data(data_cfg, values["seed"])
    model_cfg = resolve_model_config(ModelConfig(**({"model": values["model"]} if "model" in values else {})))
    tokenizer = load_tokenizer(model_cfg)  # pretrained models (a scratch model's vocabulary is built by its run)
    texts = data.splits["train"]["text"].tolist()
    _, documents = encode_windows(tokenizer, texts, data_cfg.max_length, data_cfg.stride)
    return len(texts), len(kept_windows(documents, data_cfg.train_windows_per_document))


def row(name: str, metrics: dict, total_s: float) -> str:
    train, data, test = metrics["train"], metrics["data"], metrics.get("test")
    windows = (data.get("windows") or {}).get("train", data["train"])
    test_cells = f"{100 * test['accuracy']:.2f} | {test['num_examples']}" if test else "- | 0"
    return (f"| {name} | {windows} | {train['global_steps']} | {train['train_runtime_s']:.0f} | {total_s:.0f} | "
            f"{100 * metrics['final']['validation']['accuracy']:.2f} | {test_cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="imdb")
    parser.add_argument("--data-dir", default=data_dir())
    parser.add_argument("--model", default=None, help="default: finetext's default model")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help=f"comma-separated mode:max_length (default {DEFAULT_SETTINGS})")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--test-samples", type=int, default=None, help="default: the whole test split")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--windows-per-document", default="8", help="train_windows_per_document ('none': all)")
    parser.add_argument("--aggregation", default="mean", choices=("mean", "max"))
    parser.add_argument("--budget", default="epochs", choices=("epochs", "steps"),
                        help="what the settings share: epochs over the same documents, or optimizer steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    if args.child:
        return child(args)

    base = {"dataset": args.dataset, "data_dir": args.data_dir, "train_samples": args.train_samples,
            "eval_samples": args.eval_samples, "test_samples": args.test_samples, "batch_size": args.batch_size,
            "epochs": args.epochs, "seed": 42, "quiet": True, "report": False}
    if args.model:
        base["model"] = args.model
    cap = None if args.windows_per_document.lower() == "none" else int(args.windows_per_document)
    print(f"{args.dataset}: {args.train_samples} training documents, {args.test_samples or 'all'} test documents, "
          f"{args.epochs} epoch(s), batch {args.batch_size}, same {args.budget}; chunk: stride {args.stride}, "
          f"at most {cap or 'all'} training windows per document, {args.aggregation}", flush=True)
    rows = ["| setting | train windows | steps | train s | total s | val acc | test acc | test docs |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, length in parse_settings(args.settings):
        values = {**base, "max_length": length, "long_text": mode}
        if mode == "chunk":
            values.update(stride=args.stride, train_windows_per_document=cap, window_aggregation=args.aggregation)
            if args.budget == "steps":
                documents, windows = training_windows(values)
                values["epochs"] = args.epochs * documents / windows
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            metrics, _ = run_child(__file__, ["--child", json.dumps({**values, "output_dir": f"{tmp}/run"})],
                                   f"{mode}:{length}")
        rows.append(row(f"{mode} {length}", metrics, time.perf_counter() - started))
        print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
