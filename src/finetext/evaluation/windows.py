"""Long documents read as windows (long_text chunk): the one place where the windows' probabilities become the
document's.

Every path that scores windows goes through aggregate_windows: in-training evaluation (both engines, through
training.objective), final evaluation, `finetext evaluate` and `predict`, the server and the ONNX backend (through
inference.predict). It hands back document *logits* built so that the code that turns logits into probabilities
(softmax for single-label, sigmoid for multi-label: predictions, reports, mistakes, the loss) gives exactly the
aggregated probabilities: log p for single-label, log(p / (1 - p)) for multi-label.

It lives in evaluation (numpy only) rather than inference because training's engines use it too, and training sits
below inference.
"""

from __future__ import annotations

import numpy as np

from finetext.evaluation.metrics import sigmoid, softmax

AGGREGATIONS = ("mean", "max")
PROBABILITY_FLOOR = 1e-12
"""Aggregated probabilities are kept within [floor, 1 - floor] before the log, so document logits stay finite (a
window can round a probability to exactly 0 or 1 in float32); the shift is far below float32's resolution of p."""


def aggregate_windows(logits: np.ndarray, documents: np.ndarray | list[int], multi_label: bool, aggregation: str,
                      num_documents: int | None = None) -> np.ndarray:
    """Document logits (num_documents x labels, float32) from window logits (windows x labels).

    ``documents`` gives each window's document, 0 to num_documents - 1 (default: the largest + 1); every document
    needs at least one window. 'mean' averages the windows' probabilities; 'max' takes each label's largest, and
    for single-label rescales them to sum to 1, so the document's probabilities are still a distribution."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"window aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}")
    documents = np.asarray(documents, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    if num_documents is None:
        num_documents = int(documents.max()) + 1 if len(documents) else 0
    counts = np.bincount(documents, minlength=num_documents)
    if len(counts) != num_documents or (counts == 0).any():
        raise ValueError("every document needs at least one window, and no window may name another document")
    probabilities = sigmoid(logits) if multi_label else softmax(logits)
    shape = (num_documents, logits.shape[-1])
    if aggregation == "mean":
        combined = np.zeros(shape)
        np.add.at(combined, documents, probabilities)
        combined /= counts[:, None]
    else:
        combined = np.full(shape, -np.inf)
        np.maximum.at(combined, documents, probabilities)
        if not multi_label:
            combined /= combined.sum(axis=-1, keepdims=True)
    return document_logits(combined, multi_label)


def document_logits(probabilities: np.ndarray, multi_label: bool) -> np.ndarray:
    """Logits whose softmax (single-label) or sigmoid (multi-label) is ``probabilities``."""
    p = np.clip(probabilities, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    logits = np.log(p) - np.log1p(-p) if multi_label else np.log(p)
    return logits.astype(np.float32)


def per_document(logits: np.ndarray, labels: np.ndarray, documents: np.ndarray, multi_label: bool,
                 aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Window logits and labels (each window carries its document's) as one row per document, in the order of the
    document numbers. ``documents`` may name any subset of documents, in any order."""
    documents = np.asarray(documents, dtype=np.int64)
    names, first, dense = np.unique(documents, return_index=True, return_inverse=True)
    return aggregate_windows(logits, dense, multi_label, aggregation, len(names)), np.asarray(labels)[first]
