"""The output finetext's own model classes return: logits, and a loss when labels are given."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers.modeling_outputs import SequenceClassifierOutput


def classification_output(logits: torch.Tensor, labels: torch.Tensor | None,
                          problem_type: str | None) -> SequenceClassifierOutput:
    """finetext's engines compute their own loss (class weights); this one serves plain PyTorch users."""
    loss = None
    if labels is not None:
        if problem_type == "multi_label_classification":
            loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        else:
            loss = F.cross_entropy(logits, labels)
    return SequenceClassifierOutput(loss=loss, logits=logits)
