"""What training minimises and how a model is scored: the loss (class-weighted, single- or multi-label) and
the validation metrics, shared by both engines so they optimise and report the same thing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from finetext.config import DataConfig
from finetext.errors import FinetextError
from finetext.evaluation.metrics import scalar_metrics
from finetext.evaluation.windows import per_document

log = logging.getLogger("finetext")


@dataclass
class Objective:
    label_names: list[str]
    multi_label: bool = False
    threshold: float = DataConfig.threshold
    class_weights: list[float] | None = None
    """Per class (single-label) or per label positive weight (multi-label); None: unweighted."""
    window_aggregation: str | None = None
    """long_text chunk: how validation windows are combined into documents before scoring (mean or max); None
    when every row is a document."""
    _weight: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    """class_weights as a tensor on the logits' device, made on first use rather than on every batch."""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        weight = self.weight_on(logits.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)
        return F.cross_entropy(logits, labels, weight=weight)

    def weight_on(self, device: torch.device) -> torch.Tensor | None:
        if self.class_weights and (self._weight is None or self._weight.device != device):
            self._weight = torch.tensor(self.class_weights, dtype=torch.float32, device=device)
        return self._weight

    def metrics(self, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return scalar_metrics(logits, labels, self.num_labels, self.multi_label, self.threshold)

    def validation_scores(self, logits: np.ndarray, labels: np.ndarray,
                          documents: np.ndarray | None = None) -> dict[str, float]:
        """Loss, metrics and example count of an evaluation, the same for every engine. With documents (each
        row's document, long_text chunk) the rows are windows: they are combined per document first
        (evaluation.windows), so the loss, the metrics and num_examples are the documents'."""
        if documents is not None and self.window_aggregation is not None:
            logits, labels = per_document(logits, labels, documents, self.multi_label, self.window_aggregation)
        loss = self.loss(torch.from_numpy(np.asarray(logits)), torch.from_numpy(np.asarray(labels))).item()
        return {"loss": loss, **self.metrics(logits, labels), "num_examples": len(labels)}


def resolve_class_weights(spec: str | list[float] | dict[str, float] | None, train_labels: np.ndarray,
                          label_names: list[str], multi_label: bool) -> list[float] | None:
    """The configured class weights as one number per label, in label-id order."""
    if spec is None:
        return None
    k = len(label_names)
    if spec == "balanced":
        weights = _balanced(train_labels, k, multi_label)
    elif isinstance(spec, dict):
        unknown = sorted(set(spec) - set(label_names))
        if unknown:
            raise FinetextError(f"class_weights names unknown label(s): {', '.join(unknown)}.",
                                f"The labels are: {', '.join(label_names)}.")
        weights = [float(spec.get(name, 1.0)) for name in label_names]
    else:
        if len(spec) != k:
            raise FinetextError(f"class_weights has {len(spec)} value(s) but there are {k} labels "
                                f"({', '.join(label_names)}).", "Give one weight per label, in this order.")
        weights = [float(w) for w in spec]
    log.info("class weights: %s", ", ".join(f"{n} {w:.3f}" for n, w in zip(label_names, weights, strict=True)))
    return weights


def _balanced(labels: np.ndarray, k: int, multi_label: bool) -> list[float]:
    if multi_label:  # positive weight per label: negatives / positives, as BCEWithLogitsLoss's pos_weight
        positives = labels.sum(axis=0)
        negatives = len(labels) - positives
        # a label that is never (or always) positive keeps weight 1: 0 or infinity would not train it
        return [float(n / p) if p and n else 1.0 for n, p in zip(negatives, positives, strict=True)]
    present = np.unique(labels)
    balanced = compute_class_weight("balanced", classes=present, y=labels)  # n / (n_classes * count)
    weights = dict(zip(present.tolist(), balanced.tolist(), strict=True))
    return [float(weights.get(i, 1.0)) for i in range(k)]  # a class absent from train keeps weight 1
