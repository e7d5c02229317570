"""full: every weight trains (the default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetext.models.strategies.base import Strategy

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig


def train_everything(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    return model


STRATEGY = Strategy(name="full", description="every weight", learning_rate=5e-5, apply=train_everything)
