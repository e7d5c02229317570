"""Which parameters train: the registry of strategies, and applying one to a loaded model.

A strategy is one module in this package holding a ``STRATEGY`` (see base.Strategy: its name, what trains, its
default learning rate, how it is applied and what it refuses), registered once in STRATEGIES below. Config
(choices, checks, learning rates), the CLI, `compare`, the model card and the docs read this registry; no other
place lists the names. Importing it loads no ML library: the strategies import torch and peft when applied.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from finetext.models.strategies import fewshot, full, head, lora, top_k
from finetext.models.strategies.base import Strategy

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig

log = logging.getLogger("finetext")

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (full.STRATEGY, head.STRATEGY, top_k.STRATEGY, lora.STRATEGY,
                                                      fewshot.STRATEGY)}
"""Every strategy by name, in the order compare runs them and the docs list them."""


def apply_strategy(model: PreTrainedModel, cfg: ModelConfig) -> nn.Module:
    """Freeze or wrap the model for cfg.strategy; log how many parameters will train."""
    model = STRATEGIES[cfg.strategy].apply(model, cfg)
    if cfg.freeze_embeddings:  # head and lora have frozen them already
        model.get_input_embeddings().weight.requires_grad_(False)
    counts = parameter_counts(model)
    log.info("strategy %s: %s of %s parameters train (%.2f%%)", cfg.strategy, f"{counts['trainable']:,}",
             f"{counts['total']:,}", counts["trainable_percent"])
    return model


def parameter_counts(model: nn.Module) -> dict:
    """Trainable and total parameters. peft keeps a frozen copy of the head beside the trained one
    (`original_module`); it is not counted, so a LoRA total is the model's plus its adapters."""
    total = sum(p.numel() for name, p in model.named_parameters() if ".original_module." not in name)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "trainable_percent": round(100 * trainable / total, 4)}
