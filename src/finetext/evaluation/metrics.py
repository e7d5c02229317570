"""Classification metrics from scikit-learn (evaluate.load needs the Hub).

Single-label: accuracy, F1 (binary for two classes, macro otherwise), precision, recall, MCC.
Multi-label: subset accuracy (every label of an example right), micro F1/precision/recall as ``f1``/
``precision``/``recall`` (plus ``f1_macro``), Hamming loss, and MCC over all (example, label) decisions.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    matthews_corrcoef,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
)

from finetext.config import DataConfig
from finetext.evaluation.run_metrics import MULTI_LABEL_AVERAGE, ConfusionMatrix, SplitScores


def quiet(metric_function):
    """scikit-learn warns when a metric is undefined on a small or one-sided evaluation ("A single label was
    found", UndefinedMetricWarning, MCC's 0/0): the scores below say what they are (zero_division=0, MCC 0), so
    the warning is noise to the user of a training run."""
    @functools.wraps(metric_function)
    def without_warnings(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # UndefinedMetricWarning is one
            warnings.simplefilter("ignore", RuntimeWarning)
            return metric_function(*args, **kwargs)

    return without_warnings


def f1_average(num_labels: int) -> str:
    """Binary F1 (of the positive class, id 1) for two classes, macro otherwise, as GLUE reports."""
    return "binary" if num_labels == 2 else "macro"


@quiet
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


@quiet
def multilabel_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Scalar metrics of 0/1 label matrices (examples x labels)."""
    labels, predictions = labels.astype(int), predictions.astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),  # exact match of the whole label set
        "f1": float(f1_score(labels, predictions, average="micro", zero_division=0)),
        "precision": float(precision_score(labels, predictions, average="micro", zero_division=0)),
        "recall": float(recall_score(labels, predictions, average="micro", zero_division=0)),
        "mcc": float(matthews_corrcoef(labels.ravel(), predictions.ravel())),
        "f1_macro": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "hamming_loss": float(hamming_loss(labels, predictions)),
    }


def predictions_of(logits: np.ndarray, multi_label: bool, threshold: float = DataConfig.threshold) -> np.ndarray:
    """Class ids (argmax), or multi-label 0/1 decisions (sigmoid >= threshold)."""
    if multi_label:
        return (sigmoid(logits) >= threshold).astype(int)
    return logits.argmax(axis=-1)


def scalar_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int, multi_label: bool = False,
                   threshold: float = DataConfig.threshold) -> dict[str, float]:
    predictions = predictions_of(logits, multi_label, threshold)
    if multi_label:
        return multilabel_metrics(labels, predictions)
    return classification_metrics(labels, predictions, num_labels)


def report_from_logits(logits: np.ndarray, labels: np.ndarray, label_names: list[str], multi_label: bool = False,
                       threshold: float = DataConfig.threshold) -> SplitScores:
    if not multi_label:
        return full_report(labels, logits.argmax(axis=-1), label_names)
    predictions = predictions_of(logits, True, threshold)
    # One 2x2 matrix per label: [[true negatives, false positives], [false negatives, true positives]].
    matrices = multilabel_confusion_matrix(labels.astype(int), predictions).tolist()
    return SplitScores(**multilabel_metrics(labels, predictions), f1_average=MULTI_LABEL_AVERAGE,
                       threshold=threshold, num_examples=int(len(labels)),
                       confusion_matrix=ConfusionMatrix(list(label_names), matrices))


def full_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> SplitScores:
    """Scalar metrics plus the confusion matrix (rows: true label, columns: predicted) and support."""
    num_labels = len(label_names)
    matrix = confusion_matrix(labels, predictions, labels=list(range(num_labels))).tolist()
    return SplitScores(**classification_metrics(labels, predictions, num_labels), f1_average=f1_average(num_labels),
                       num_examples=int(len(labels)), confusion_matrix=ConfusionMatrix(list(label_names), matrix))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def per_class_scores(matrix: list[list[int]] | np.ndarray, label_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support of each class from a single-label confusion matrix (rows: true,
    columns: predicted), as scikit-learn computes them with zero_division=0."""
    cm = np.asarray(matrix, dtype=np.int64)
    true_positives = np.diag(cm)
    return [_scores(name, int(tp), int(predicted - tp), int(support - tp))
            for name, tp, predicted, support in zip(label_names, true_positives, cm.sum(axis=0), cm.sum(axis=1),
                                                    strict=True)]


def per_label_scores(matrices: list[list[list[int]]] | np.ndarray, label_names: list[str]) -> list[dict]:
    """The same per label from multi-label 2x2 matrices [[tn, fp], [fn, tp]]."""
    cms = np.asarray(matrices, dtype=np.int64)
    return [_scores(name, int(cm[1, 1]), int(cm[0, 1]), int(cm[1, 0]))
            for name, cm in zip(label_names, cms, strict=True)]


def _scores(name: str, tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"label": name, "precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
