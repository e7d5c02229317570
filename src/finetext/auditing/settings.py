"""The settings of `finetext audit` beside the training config: one docstring per field, the source of the CLI
flags and the docs. The training config (flags or a YAML file) says which data and model the folds use."""

from __future__ import annotations

from dataclasses import dataclass

from finetext.errors import FinetextError

METHODS = ("embeddings", "train")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


@dataclass
class AuditConfig:
    folds: int = 5
    """Cross-validation folds (stratified by label, seeded): each training example is scored by a model that never
    saw it. More folds train each model on more data, and cost more with --method train."""
    method: str = "embeddings"
    """How each fold's model is made. 'embeddings' (default): the pretrained model's mean-pooled text embeddings
    (sentence pairs: both texts' and their difference and product), computed once for every row and cached, and a
    logistic-regression head fitted per fold: the head strategy's classifier fitted exactly, so K folds cost one
    pass over the data. 'train': each fold is a finetext training run with the training flags (strategy, engine,
    epochs, ...) that predicts its held-out fold; slower, and able to find errors a frozen embedding cannot."""
    rank_by: str = "self_confidence"
    """cleanlab's label quality score that orders the rows (lower: more likely mislabelled): 'self_confidence'
    (the probability of the given label), 'normalized_margin' or 'confidence_weighted_entropy'."""
    filter_by: str = "prune_by_noise_rate"
    """cleanlab's rule for which rows are label issues: 'prune_by_noise_rate' (confident learning's default),
    'prune_by_class', 'both', 'confident_learning' or 'predicted_neq_given' (every out-of-fold mistake)."""
    keep_fold_models: bool = False
    """--method train: keep each fold's model in OUTPUT_DIR/folds/ (default: only its metrics.json)."""
    resume: bool = False
    """Continue an interrupted audit in OUTPUT_DIR: finished folds are kept, an interrupted fold run continues from
    its checkpoint."""
    overwrite: bool = False
    """Start over when OUTPUT_DIR holds an audit (finished or interrupted)."""

    def __post_init__(self) -> None:
        if not 2 <= self.folds <= 20:
            raise FinetextError(f"folds must be between 2 and 20, got {self.folds}.", "Use e.g. --folds 5.")
        for name, allowed in (("method", METHODS), ("rank_by", RANKINGS), ("filter_by", FILTERS)):
            if getattr(self, name) not in allowed:
                raise FinetextError(f"{name} must be one of {', '.join(allowed)}; got '{getattr(self, name)}'.")
        if self.resume and self.overwrite:
            raise FinetextError("--resume and --overwrite contradict each other.", "Pass one of them.")
