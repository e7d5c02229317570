"""head: only the new classifier trains; the pretrained model stays frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetext.models.strategies.base import Strategy, refuse_random_weights

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig


def freeze_all_but_head(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    from finetext.models.strategies.layers import head_parameter_names, set_trainable

    set_trainable(model, head_parameter_names(model))
    return model


STRATEGY = Strategy(name="head", description="only the new classifier (the pretrained model frozen)",
                    learning_rate=1e-3, apply=freeze_all_but_head, refuse=refuse_random_weights)
