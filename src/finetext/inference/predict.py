"""Batched prediction with any backend's Classifier: sort by length so each batch pads little, run the model,
restore the input order."""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from finetext.data.tokenize import encode, encode_windows
from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.evaluation.windows import aggregate_windows
from finetext.hardware.calibrate import Workload, attention_kernel, split_choice
from finetext.inference.classifier import Classifier
from finetext.inference.precision import inference_precision


@torch.inference_mode()
def predict_logits(clf: Classifier, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64,
                   progress: bool = True, desc: str = "predict", sort_by_length: bool = True) -> np.ndarray:
    """Logits for every text, in input order. Batches are length-sorted (longest first) to minimise padding;
    sort_by_length=False keeps the input order (for measuring what sorting gains).

    A classifier with long_text chunk runs every window of every text (batch_size windows a batch) and returns
    each text's document logits (evaluation.windows.aggregate_windows: their softmax or sigmoid is the combined
    probabilities of its windows)."""
    if pairs is not None and len(pairs) != len(texts):
        raise FinetextError(f"{len(texts)} texts but {len(pairs)} text pairs.")
    documents = None
    if clf.long_text == "chunk":
        if pairs is not None:
            raise FinetextError("this model reads long texts as windows (long_text chunk), which takes single texts, "
                                "but text pairs were given.", "Drop the second texts.")
        encoded, documents = encode_windows(clf.tokenizer, texts, clf.max_length, clf.stride)
    else:
        encoded = encode(clf.tokenizer, texts, pairs, clf.max_length)
    input_ids = encoded["input_ids"]
    order = (np.argsort([len(ids) for ids in input_ids], kind="stable")[::-1] if sort_by_length
             else np.arange(len(input_ids)))
    device = clf.model.device
    chosen = inference_precision(clf, prediction_workload(clf, [len(ids) for ids in input_ids], batch_size))
    precision, kernel = split_choice(chosen)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    logits = np.zeros((len(input_ids), clf.model.config.num_labels), dtype=np.float32)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
        index = order[start:start + batch_size]
        batch = clf.tokenizer.pad({k: [encoded[k][i] for i in index] for k in keys}, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        with attention_kernel(kernel), autocast:
            logits[index] = clf.model(**batch).logits.float().cpu().numpy()
    if documents is not None:
        return aggregate_windows(logits, documents, clf.multi_label, clf.window_aggregation, len(texts))
    return logits


def prediction_workload(clf: Classifier, lengths: list[int], batch_size: int) -> Workload:
    """The batches predicting inputs of these token lengths makes (what precision auto is measured on)."""
    batch = min(batch_size, max(1, len(lengths)))
    mean = sum(lengths) / max(1, len(lengths))
    return Workload("inference", batch, mean * batch, math.ceil(len(lengths) / batch_size), clf.max_length)


def predictions_from_logits(logits: np.ndarray, label_names: list[str], multi_label: bool,
                            threshold: float) -> list[dict]:
    """One record per text: the most probable label, its probability, and the probability of every label.

    Multi-label records also list ``labels``: every label whose probability reaches the threshold."""
    probabilities = sigmoid(logits) if multi_label else softmax(logits)
    best = probabilities.argmax(axis=-1)
    records = []
    for b, p in zip(best, probabilities, strict=True):
        record = {"label": label_names[int(b)], "score": float(p[b]),
                  "probabilities": {name: float(value) for name, value in zip(label_names, p, strict=True)}}
        if multi_label:
            record["labels"] = [name for name, value in zip(label_names, p, strict=True) if value >= threshold]
        records.append(record)
    return records
