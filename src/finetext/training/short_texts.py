"""Short texts: bigger batches and frozen word embeddings, where a step's fixed costs would dominate.

A step on 16 sentences of 13 tokens (SST-2) spends more time on work that does not grow with the tokens (the
optimizer over all 22.7M parameters, half of them MiniLM's word-embedding matrix, whose dense gradient is computed
and stepped in full for the few hundred rows a batch uses) than on the tokens themselves. So when a batch of
batch_size examples holds fewer real tokens than batch_tokens, finetext (full and top_k strategies of a pretrained
model) takes 2x or 4x as many examples per batch (as many as stay within batch_tokens), multiplies the learning rate
by the square root of that factor (the square-root rule for Adam), and freezes the word embeddings unless
freeze_embeddings was set. Batches stay length-grouped and shuffled as before; the factor is fixed for the whole run,
so checkpoints and --resume work unchanged, and the resolved config (finetext.yaml) records the grown batch size
and learning rate with batch_tokens 0. Measured on SST-2 in docs/performance.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import datasets

from finetext.config import TrainConfig

log = logging.getLogger("finetext")

MAX_GROWTH = 4
STRATEGIES = ("full", "top_k")
"""Strategies that train the word embeddings' layer stack; head and lora freeze them already, fewshot trains on
sentence pairs in its own loop."""


@dataclass(frozen=True)
class ShortTextPlan:
    mean_tokens: float
    """Mean real tokens of a training example."""
    growth: int
    """Factor on batch_size (1: unchanged)."""
    freeze_embeddings: bool

    def applies(self) -> bool:
        return self.growth > 1 or self.freeze_embeddings


def plan_for(cfg: TrainConfig, train: datasets.Dataset) -> ShortTextPlan:
    lengths = [len(ids) for ids in train["input_ids"]]
    mean = sum(lengths) / max(1, len(lengths))
    budget = cfg.training.batch_tokens
    eligible = (budget and cfg.model.strategy in STRATEGIES and not cfg.model.is_scratch()
                and cfg.training.batch_size * mean < budget)
    if not eligible:
        return ShortTextPlan(mean, 1, False)
    growth = 1
    while growth < MAX_GROWTH and cfg.training.batch_size * growth * 2 * mean <= budget:
        growth *= 2
    return ShortTextPlan(mean, growth, cfg.model.freeze_embeddings is None)


def apply_plan(cfg: TrainConfig, plan: ShortTextPlan, model) -> TrainConfig:
    """cfg with the grown batch and learning rate and the embeddings' setting; model's embeddings frozen."""
    if not plan.applies():
        return cfg
    # batch_tokens 0 in the resolved config: the plan is applied once, and a run started again from its
    # finetext.yaml, or resumed, trains with exactly these settings.
    training = replace(cfg.training, batch_tokens=0)
    if plan.growth > 1:
        training = replace(training, batch_size=training.batch_size * plan.growth,
                           learning_rate=training.learning_rate * math.sqrt(plan.growth))
    model_cfg = cfg.model
    if plan.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
        model_cfg = replace(model_cfg, freeze_embeddings=True)
    log.info("short texts: %d examples of %.1f tokens make %.0f tokens per batch, under batch_tokens %d: batch size "
             "%d, learning rate %.3g%s", cfg.training.batch_size, plan.mean_tokens,
             cfg.training.batch_size * plan.mean_tokens, cfg.training.batch_tokens, training.batch_size,
             training.learning_rate, ", word embeddings frozen" if plan.freeze_embeddings else "")
    return replace(cfg, training=training, model=model_cfg)
