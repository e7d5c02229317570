"""fewshot: SetFit's method for a few labelled examples per class, on finetext's mean-pooled model: contrastive
training of the body on pairs of examples, then a logistic-regression head (training/fewshot.py does both; it
replaces the engine's loop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetext.errors import FinetextError
from finetext.models.strategies.base import Strategy, refuse_random_weights

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig


def check_mean_pooled(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    """The body must be the mean-pooled model (models/mean_pooling.py): its embeddings are what is trained."""
    from finetext.models.mean_pooling import is_mean_pooled

    if not is_mean_pooled(model.config):
        raise FinetextError("--strategy fewshot trains sentence embeddings and needs --pooling mean.",
                            "Drop --pooling cls (fewshot mean-pools any encoder).")
    return model


STRATEGY = Strategy(name="fewshot", description="SetFit's method: contrastive training of the mean-pooled body on "
                    "pairs of examples, then a logistic-regression head", learning_rate=2e-5,
                    apply=check_mean_pooled, refuse=refuse_random_weights, check_model=None,
                    fit="finetext.training.fewshot:fit_fewshot",
                    card_settings=lambda cfg: f"pairs: at most {cfg.fewshot_pairs} positive + {cfg.fewshot_pairs} "
                    "negative per example; logistic-regression head", default_epochs=1.0, in_compare_default=False)
