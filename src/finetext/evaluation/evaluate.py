"""Score a trained classifier on a labelled split."""

from __future__ import annotations

import pandas as pd

from finetext.evaluation.metrics import full_report
from finetext.inference.predict import Classifier, predict_logits


def evaluate_frame(clf: Classifier, df: pd.DataFrame, batch_size: int, progress: bool,
                   desc: str = "evaluate") -> dict:
    """Full metrics report (with confusion matrix) of clf on a clean split (columns text, text_pair, label)."""
    pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
    logits = predict_logits(clf, df["text"].tolist(), pairs, batch_size, progress, desc)
    return full_report(df["label"].to_numpy(), logits.argmax(axis=-1), clf.label_names)
