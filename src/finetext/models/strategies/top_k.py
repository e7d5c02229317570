"""top_k: the last k encoder layers train, with what follows them in the base model and the head.

Besides the last k blocks, every base parameter registered after them trains (BERT's pooler, GPT-2's final
LayerNorm), because those sit between the top layer and the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetext.errors import FinetextError
from finetext.models.strategies.base import Strategy, refuse_random_weights

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig


def freeze_all_but_top(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    """Train the last cfg.top_k encoder layers, what follows them in the base model, and the head."""
    from finetext.models.strategies.layers import encoder_layers, head_parameter_names, set_trainable

    k = cfg.top_k
    stack_name, layers = encoder_layers(model)
    if not 1 <= k <= len(layers):
        raise FinetextError(f"--top-k {k} is out of range: the model has {len(layers)} encoder layers.",
                            f"Choose 1 to {len(layers)} (or --strategy full).")
    prefix = model.base_model_prefix
    first_trained = f"{prefix}.{stack_name}.{len(layers) - k}."
    base_names = [n for n, _ in model.named_parameters() if n.startswith(f"{prefix}.")]
    start = next(i for i, n in enumerate(base_names) if n.startswith(first_trained))
    set_trainable(model, set(base_names[start:]) | head_parameter_names(model))
    return model


STRATEGY = Strategy(name="top_k", description="the last top_k encoder layers plus the head", learning_rate=5e-5,
                    apply=freeze_all_but_top, refuse=refuse_random_weights, check_model=freeze_all_but_top,
                    card_settings=lambda cfg: f"top {cfg.top_k} layers")
