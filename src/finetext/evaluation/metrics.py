"""Classification metrics from scikit-learn (evaluate.load needs the Hub)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)


def f1_average(num_labels: int) -> str:
    """Binary F1 (of the positive class, id 1) for two classes, macro otherwise, as GLUE reports."""
    return "binary" if num_labels == 2 else "macro"


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, float]:
    """Scalar metrics: accuracy, F1, precision, recall, MCC."""
    average = f1_average(num_labels)
    kwargs = {"average": average, "zero_division": 0}
    if average != "binary":
        kwargs["labels"] = list(range(num_labels))
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, **kwargs)),
        "precision": float(precision_score(labels, predictions, **kwargs)),
        "recall": float(recall_score(labels, predictions, **kwargs)),
        "mcc": float(matthews_corrcoef(labels, predictions)),
    }


def full_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict:
    """Scalar metrics plus the confusion matrix (rows: true label, columns: predicted) and support."""
    num_labels = len(label_names)
    report: dict = classification_metrics(labels, predictions, num_labels)
    report["f1_average"] = f1_average(num_labels)
    report["num_examples"] = int(len(labels))
    report["confusion_matrix"] = {
        "labels": list(label_names),
        "matrix": confusion_matrix(labels, predictions, labels=list(range(num_labels))).tolist(),
    }
    return report


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
