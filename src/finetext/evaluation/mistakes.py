"""The most confident mistakes on an evaluated split: what the report shows and mistakes.json keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finetext.config import DataConfig
from finetext.data.sources import label_array
from finetext.evaluation.metrics import sigmoid, softmax

MAX_TEXT_CHARS = 2000


def confident_mistakes(frame: pd.DataFrame, logits: np.ndarray, label_names: list[str], multi_label: bool,
                       threshold: float = DataConfig.threshold, limit: int = 20) -> list[dict]:
    """The wrong predictions with the highest predicted probability, most confident first.

    ``frame`` is a clean split (text, optional text_pair, label) in the order of ``logits``. Each record has
    text (and text_pair), label (the true name), predicted, score (the probability of the wrong decision) and
    scores (every label's probability). Multi-label: an example is wrong when its predicted label set differs
    from the true one; label/predicted are lists of names and score is the confidence of its most confident
    wrong decision (p for a wrong yes, 1 - p for a wrong no)."""
    labels = label_array(frame["label"])
    if multi_label:
        probabilities = sigmoid(logits)
        wrong, scores = multilabel_errors(probabilities, labels.astype(int), threshold)
    else:
        probabilities = softmax(logits)
        predicted = probabilities.argmax(axis=-1)
        wrong = predicted != labels
        scores = probabilities.max(axis=-1)
    rows = np.flatnonzero(wrong)
    ranked = rows[np.argsort(-scores[rows], kind="stable")][:limit]  # stable: ties keep the split's order
    return [mistake_record(frame.iloc[i], probabilities[i], labels[i], float(scores[i]), label_names, multi_label,
                           threshold) for i in ranked]


def multilabel_errors(probabilities: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """Which examples have a wrong decision, and the confidence of each example's most confident wrong one."""
    decided = probabilities >= threshold
    errors = decided != truth.astype(bool)
    confidence = np.where(decided, probabilities, 1.0 - probabilities)
    return errors.any(axis=1), np.where(errors, confidence, 0.0).max(axis=1)


def mistake_record(row: pd.Series, probabilities: np.ndarray, truth, score: float, label_names: list[str],
                   multi_label: bool, threshold: float) -> dict:
    record = {"text": shorten(row["text"])}
    if "text_pair" in row.index:
        record["text_pair"] = shorten(row["text_pair"])
    if multi_label:
        record["label"] = [n for n, t in zip(label_names, truth, strict=True) if t]
        record["predicted"] = [n for n, p in zip(label_names, probabilities, strict=True) if p >= threshold]
    else:
        record["label"] = label_names[int(truth)]
        record["predicted"] = label_names[int(probabilities.argmax())]
    record["score"] = round(score, 5)
    record["scores"] = {n: round(float(p), 5) for n, p in zip(label_names, probabilities, strict=True)}
    return record


def shorten(text: str) -> str:
    """At most MAX_TEXT_CHARS characters, the last one an ellipsis when the text was cut."""
    text = str(text)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS - 1] + "…"
