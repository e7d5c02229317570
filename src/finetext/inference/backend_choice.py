"""PyTorch or onnxruntime for a long prediction, whichever measured faster for this model on this machine.

Measuring needs the model in ONNX, and exporting it costs tens of seconds, so this is only considered for
predictions expected to take MIN_BACKEND_SECONDS or more in PyTorch, with precision 'auto' (fp32 asks for the
evaluation's exact numbers, which only PyTorch reproduces bit for bit; ONNX fp32 agrees within 1e-4 in
probability). The export goes to the cache ($FINETEXT_CACHE_DIR/onnx/, keyed by the model's files) and is made
once per model; the measurement is cached per machine, architecture and batch-size bucket like every other
hardware choice, and a cached "pytorch" costs nothing at all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
from torch import nn

from finetext.data.tokenize import encode
from finetext.hardware.calibrate import (
    TIMED_PASSES,
    Workload,
    decide,
    measuring,
    model_key,
    one_pass,
    random_batch,
)
from finetext.hardware.choices import Choice, cache_file, cached_choice, entry_key, tokens_bucket
from finetext.hardware.machine import current_machine
from finetext.inference.classifier import Classifier
from finetext.inference.precision import inference_precision

log = logging.getLogger("finetext")

MIN_BACKEND_SECONDS = 120.0
"""Predictions expected to take less than this in PyTorch keep PyTorch without measuring."""
LENGTH_SAMPLE = 256
"""Texts tokenized to estimate the mean length of an input."""


def faster_backend(clf: Classifier, model_dir: str | Path, workload: Workload) -> Classifier:
    """clf, or the same model loaded through onnxruntime where that measured faster for this workload."""
    if clf.backend != "pytorch" or clf.precision != "auto" or not isinstance(clf.model, nn.Module):
        return clf
    if importlib.util.find_spec("onnxruntime") is None or clf.long_text == "chunk":
        return clf
    machine = current_machine()
    key = entry_key(machine, "backend", model_key(clf.model), tokens_bucket(workload.tokens_per_batch), "inference")
    cached = cached_choice(key)
    if cached is not None and cached.value == "pytorch":
        return clf
    precision = inference_precision(clf, workload)
    pytorch_batch = pytorch_seconds(clf, workload, precision)
    if pytorch_batch * workload.passes < MIN_BACKEND_SECONDS:
        return clf
    onnx = onnx_copy(Path(model_dir))
    choice = decide("backend", clf.model, workload, lambda: measure(clf, onnx, workload, precision), "pytorch",
                    machine)
    log.info("inference %s", choice.line())
    return onnx if choice.value == "onnxruntime" else clf


def input_workload(clf: Classifier, texts: list[str], pairs: list[str] | None, batch_size: int) -> Workload:
    """The batches predicting texts will make, their mean length estimated on a sample."""
    step = max(1, len(texts) // LENGTH_SAMPLE)
    sample = encode(clf.tokenizer, texts[::step], pairs[::step] if pairs else None, clf.max_length)["input_ids"]
    mean = sum(len(ids) for ids in sample) / max(1, len(sample))
    batch = min(batch_size, max(1, len(texts)))
    return Workload("inference", batch, mean * batch, -(-len(texts) // batch_size), clf.max_length)


def pytorch_seconds(clf: Classifier, workload: Workload, precision: str) -> float:
    """Seconds per batch in PyTorch: the precision measurement's, or one timed batch."""
    key = entry_key(current_machine(), "precision", model_key(clf.model), tokens_bucket(workload.tokens_per_batch),
                    "inference")
    if (choice := cached_choice(key)) is not None and precision in choice.seconds:
        return choice.seconds[precision]
    with measuring(clf.model, "inference"):
        batch = random_batch(clf.model, *workload.shape())
        one_pass(clf.model, batch, precision, "inference")
        return one_pass(clf.model, batch, precision, "inference")


def serving_workload(clf: Classifier, batch_size: int = 8) -> Workload:
    """A server's: batches of a few texts, half as long as the model reads, for as long as it runs."""
    length = max(8, clf.max_length // 2)
    return Workload("inference", batch_size, batch_size * length, passes=10**6, max_length=clf.max_length)


def with_backend(clf: Classifier, model_dir: str | Path, backend: str, workload: Workload) -> Classifier:
    """clf through the backend asked for: 'auto' (the faster, see faster_backend), 'pytorch' (as loaded), or
    'onnxruntime' (an ONNX directory as loaded; a training directory's cached ONNX copy, exported if missing)."""
    if backend == "auto":
        return faster_backend(clf, model_dir, workload)
    if backend == "onnxruntime" and clf.backend != "onnxruntime":
        return onnx_copy(Path(model_dir))
    return clf


def onnx_copy(model_dir: Path) -> Classifier:
    """The model exported to ONNX in the cache (made now if missing), loaded through onnxruntime."""
    from finetext.inference.export import export_model
    from finetext.inference.loader import load_classifier_dir

    folder = cache_file().parent / "onnx" / fingerprint(model_dir)
    if not (folder / "model.onnx").is_file():
        started = time.perf_counter()
        export_model(model_dir, folder, overwrite=True)
        log.info("exported %s to ONNX for speed measurement in %.0f s (%s)", model_dir, time.perf_counter() - started,
                 folder)
    return load_classifier_dir(folder, backend="onnxruntime")


def fingerprint(model_dir: Path) -> str:
    """Changes whenever the model's files do (size, modification time, content of the small files)."""
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and path.suffix in (".safetensors", ".json", ".yaml"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def measure(clf: Classifier, onnx: Classifier, workload: Workload, precision: str) -> Choice:
    """Seconds per batch of each backend at the workload's shape, PyTorch in its chosen precision."""
    with measuring(clf.model, "inference"):
        batch = random_batch(clf.model, *workload.shape())
        one_pass(clf.model, batch, precision, "inference")
        pytorch = min(one_pass(clf.model, batch, precision, "inference") for _ in range(TIMED_PASSES))
        onnx.model(**batch)
        times = []
        for _ in range(TIMED_PASSES):
            started = time.perf_counter()
            np.asarray(onnx.model(**batch).logits)
            times.append(time.perf_counter() - started)
    seconds = {f"pytorch {precision}": pytorch, "onnxruntime": min(times)}
    value = "onnxruntime" if seconds["onnxruntime"] < pytorch else "pytorch"
    return Choice("backend", value, seconds, {}, workload.shape())
