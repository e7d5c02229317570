"""Inference speed: `finetext predict` against `transformers.pipeline`, on the same texts and model.

    .venv/bin/python bench/speed_train.py --configs finetext --keep-model outputs/bench-imdb   # a model to use
    .venv/bin/python bench/speed_predict.py outputs/bench-imdb                 # 5,000 IMDB test reviews
    .venv/bin/python bench/speed_predict.py outputs/bench-imdb --texts 1000 --configs finetext_fp32,finetext_unsorted

Each configuration runs in its own child process, one after the other: it loads the model (not timed),
then classifies the texts (timed: tokenization, batching and the model). Printed per configuration:
texts/s, the ratio to the pipeline with its defaults, the child's peak RSS, accuracy on the texts' labels,
agreement of the predicted labels with PyTorch fp32, and the largest probability difference from it.

- pipeline:          transformers.pipeline("text-classification", DIR) with its default batch size (1);
                     truncation=True and the model's max_length, or long reviews fail;
- pipeline_b32:      the same with batch_size=32;
- finetext:          finetext's defaults: length-sorted batches of 32, precision and backend auto: measured
                     before the timed part in this run's empty cache (the seconds it took are printed; a second
                     run on the machine reads the cache);
- finetext_fp32:     --precision fp32 (the reference for agreement);
- finetext_bf16:     --precision bf16;
- finetext_unsorted: fp32 batches of 32 in input order (what sorting by length gains);
- onnx / onnx_int8:  `finetext export DIR --format onnx [--quantize int8]`, then finetext predict on it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import data_dir, print_calibration, print_machine, run_child

CONFIGS = ("pipeline", "pipeline_b32", "finetext", "finetext_fp32", "finetext_bf16", "finetext_unsorted", "onnx",
           "onnx_int8")
DEFAULT_CONFIGS = "finetext_fp32,pipeline,pipeline_b32,finetext,onnx_int8"


def load_texts(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    import pandas as pd

    folder = Path(data_dir())
    frame = pd.read_parquet(folder / args.dataset / f"{args.split}.parquet")
    frame = frame.sample(n=min(args.texts, len(frame)), random_state=0)
    return frame["text"].tolist(), frame["label"].astype(int).tolist()


def child(name: str, args: argparse.Namespace) -> dict:
    """Load (untimed), then predict every text (timed); probabilities in the model's label order."""
    from dataclasses import replace

    import numpy as np

    from finetext.evaluation.metrics import softmax
    from finetext.inference.loader import load_classifier_dir
    from finetext.inference.precision import inference_precision
    from finetext.inference.predict import predict_logits, prediction_workload

    texts, _ = load_texts(args)
    if name.startswith("pipeline"):
        from transformers import pipeline

        pipe = pipeline("text-classification", model=args.model_dir, device="cpu", top_k=None)
        labels = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]
        kwargs = {"batch_size": 32} if name == "pipeline_b32" else {}
        started = time.perf_counter()
        outputs = pipe(texts, truncation=True, max_length=args.max_length, **kwargs)
        seconds = time.perf_counter() - started
        probabilities = np.array([[{o["label"]: o["score"] for o in out}[label] for label in labels]
                                  for out in outputs])
    else:
        source = args.model_dir if not name.startswith("onnx") else export(args.model_dir, name)
        precision = {"finetext": "auto", "finetext_bf16": "bf16"}.get(name, "fp32")
        clf = replace(load_classifier_dir(source, precision=precision), max_length=args.max_length)
        calibration = 0.0
        if name == "finetext":  # its measured choices, made before the timed part (once per machine and model)
            clf, calibration = calibrated(clf, args.model_dir, texts)
        started = time.perf_counter()
        logits = predict_logits(clf, texts, batch_size=32, progress=False,
                                sort_by_length=name != "finetext_unsorted")
        seconds = time.perf_counter() - started
        probabilities = softmax(logits)
        backend = f"{clf.backend} {inference_precision(clf, prediction_workload(clf, lengths(clf, texts), 32))}"
        return {"seconds": seconds, "probabilities": probabilities.tolist(), "calibration_s": calibration,
                "ran": backend}
    return {"seconds": seconds, "probabilities": probabilities.tolist(), "ran": "pipeline fp32"}


def lengths(clf, texts: list[str]) -> list[int]:
    from finetext.data.tokenize import encode

    return [len(ids) for ids in encode(clf.tokenizer, texts, None, clf.max_length)["input_ids"]]


def calibrated(clf, model_dir: str, texts: list[str]):
    """finetext predict's own decisions for these texts: backend (PyTorch or onnxruntime) and precision, measured
    now in this run's empty cache; returns the classifier to run and the seconds the measuring took."""
    from finetext.inference.backend_choice import input_workload, with_backend
    from finetext.inference.precision import inference_precision
    from finetext.inference.predict import prediction_workload

    started = time.perf_counter()
    clf = with_backend(clf, model_dir, "auto", input_workload(clf, texts, None, 32))
    inference_precision(clf, prediction_workload(clf, lengths(clf, texts), 32))
    return clf, time.perf_counter() - started


def export(model_dir: str, name: str) -> str:
    """The exported copy, made once per model (outside the timed part) and reused by later runs."""
    from finetext.api import export as export_model

    out = export_dir(model_dir, name)
    if not (out / "model.onnx").is_file():
        export_model(model_dir, out, quantize="int8" if name == "onnx_int8" else None, overwrite=True)
    return str(out)


def export_dir(model_dir: str, name: str) -> Path:
    return Path(model_dir).with_name(Path(model_dir).name + ("-onnx-int8" if name == "onnx_int8" else "-onnx"))


def print_sizes(model_dir: str, names: list[str]) -> None:
    """Model file sizes: the PyTorch weights and each export this run used."""
    files = {"pytorch": Path(model_dir) / "model.safetensors"}
    files.update({name: export_dir(model_dir, name) / "model.onnx" for name in names if name.startswith("onnx")})
    print("model file sizes: " + ", ".join(f"{k} {f.stat().st_size / 1e6:.1f} MB" for k, f in files.items()))


def run_config(name: str, args: argparse.Namespace) -> dict:
    argv = [args.model_dir, f"--texts={args.texts}", f"--dataset={args.dataset}", f"--split={args.split}",
            f"--max-length={args.max_length}", "--child", name]
    report, peak_rss_mb = run_child(__file__, argv, name)
    return {**report, "peak_rss_mb": peak_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a finetext artifact (e.g. from bench/speed_train.py --keep-model)")
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--dataset", default="imdb")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-length", type=int, default=None, help="default: the artifact's max_length")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    if args.max_length is None:
        from finetext.artifacts import open_artifact

        saved = open_artifact(args.model_dir).config
        if saved is None:
            parser.error(f"{args.model_dir} has no finetext.yaml; pass --max-length")
        args.max_length = saved.data.max_length
    if args.child:
        Path(args.report).write_text(json.dumps(child(args.child, args)))
        return
    import numpy as np
    import torch

    names = args.configs.split(",")
    if set(names) - set(CONFIGS):
        raise SystemExit(f"unknown config(s); choose from {', '.join(CONFIGS)}")
    _, gold = load_texts(args)
    print(f"{args.texts} {args.dataset} {args.split} texts, max_length {args.max_length}; {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    os.environ["FINETEXT_CACHE_DIR"] = tempfile.mkdtemp(prefix="speed-predict-cache-")  # measured in this run
    runs = {}
    for name in names:
        runs[name] = run_config(name, args)
        print(f"{name}: {args.texts / runs[name]['seconds']:.1f} texts/s", flush=True)
    reference = np.array(runs.get("finetext_fp32", runs[names[0]])["probabilities"])
    base = runs.get("pipeline")
    print("\n| config | ran | texts/s | x pipeline (batch 1) | calibration s | peak RSS MB | accuracy | same label as "
          "fp32 | max prob diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, run in runs.items():
        p = np.array(run["probabilities"])
        speed = args.texts / run["seconds"]
        ratio = f"{speed / (args.texts / base['seconds']):.2f}" if base else "-"
        accuracy = (p.argmax(1) == np.array(gold)).mean()
        agree = (p.argmax(1) == reference.argmax(1)).mean()
        calibration = f"{run['calibration_s']:.1f}" if run.get("calibration_s") else "-"
        print(f"| {name} | {run['ran']} | {speed:.1f} | {ratio} | {calibration} | {run['peak_rss_mb']:.0f} | "
              f"{100 * accuracy:.2f} | "
              f"{100 * agree:.2f}% | {np.abs(p - reference).max():.4f} |")
    print_sizes(args.model_dir, names)
    print_calibration()


if __name__ == "__main__":
    main()
