"""Score a classifier on a labelled split: run it (inference), then compute the report from the logits
(evaluation.metrics, which knows nothing of models)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finetext.data.sources import label_array
from finetext.evaluation.metrics import report_from_logits
from finetext.evaluation.run_metrics import SplitScores
from finetext.inference.classifier import Classifier
from finetext.inference.predict import predict_logits


@dataclass
class SplitEvaluation:
    """What `finetext evaluate` found: which split of which data, the kind of model, and its scores."""

    split: str
    source: str
    multi_label: bool
    scores: SplitScores

    def to_dict(self) -> dict:
        """What finetext.evaluate returns and --output writes: the split and source beside the scores."""
        return {"split": self.split, "source": self.source, **self.scores.to_dict()}


def evaluate_with_logits(clf: Classifier, df: pd.DataFrame, batch_size: int, progress: bool,
                         desc: str = "evaluate") -> tuple[SplitScores, np.ndarray]:
    """Full metrics report (with confusion matrix) of clf on a clean split (columns text, text_pair, label),
    and the logits it came from (one row per example, in df's order)."""
    pairs = df["text_pair"].tolist() if "text_pair" in df.columns else None
    logits = predict_logits(clf, df["text"].tolist(), pairs, batch_size, progress, desc)
    report = report_from_logits(logits, label_array(df["label"]), clf.label_names, clf.multi_label, clf.threshold)
    return report, logits
