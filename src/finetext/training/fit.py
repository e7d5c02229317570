"""What every engine is given (a prepared run) and hands back (a fit result), and the one rule that picks the
best evaluation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from finetext.artifacts import CHECKPOINTS
from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry, SplitScores

log = logging.getLogger("finetext")

EvaluationObserver = Callable[[HistoryEntry], None]
"""Called by the engine after each evaluation (finetext tune reports it to Optuna); what it raises ends training
and propagates out of the run (optuna.TrialPruned stops a hopeless trial)."""
LossLogObserver = Callable[[LossLogEntry], None]
"""Called by the engine at each loss-log window (every logging_steps): the experiment trackers' live curves."""

if TYPE_CHECKING:
    import datasets
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from finetext.config import TrainConfig
    from finetext.data.sources import LabelledData
    from finetext.training.objective import Objective


@dataclass(frozen=True)
class PreparedRun:
    """Everything TrainingRun.setup decided and built: what an engine trains, and what the run evaluates and
    saves afterwards."""

    config: TrainConfig
    """Resolved: the model's and data's own defaults filled in, epochs, learning rate and precision decided."""
    data: LabelledData
    tokenizer: PreTrainedTokenizerBase
    model: nn.Module
    """The loaded model with its strategy applied (frozen parameters, or wrapped in adapters)."""
    objective: Objective
    encoded_train: datasets.Dataset
    encoded_validation: datasets.Dataset
    parameters: dict
    """metrics.json's "parameters": the strategy and its trainable/total parameter counts."""
    output_dir: Path
    resume_from: Path | None
    """The checkpoint training continues from (--resume), or None for a fresh start."""
    on_evaluation: EvaluationObserver | None = None
    """Told every evaluation, on the main process, right after its log line."""
    on_loss_log: LossLogObserver | None = None
    """Told every loss-log window, on the main process, as it is recorded."""

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / CHECKPOINTS


@dataclass
class FitResult:
    """What an engine hands back: the model to keep, the per-evaluation history and throughput figures."""

    model: PreTrainedModel
    history: list[HistoryEntry] = field(default_factory=list)
    best: HistoryEntry | None = None
    stats: dict = field(default_factory=dict)
    loss_log: list[LossLogEntry] = field(default_factory=list)
    """Training loss every logging_steps."""


def is_better(value: float, best: float, metric: str) -> bool:
    """Strictly better, so ties keep the earlier evaluation (as the Trainer keeps its first best checkpoint)."""
    return value < best if metric == "loss" else value > best


def best_entry(history: list[HistoryEntry], metric: str) -> HistoryEntry | None:
    best = None
    for entry in history:
        if best is None or is_better(entry.validation.score(metric), best.validation.score(metric), metric):
            best = entry
    return best


def kept_entry(history: list[HistoryEntry], metric: str, load_best: bool) -> HistoryEntry | None:
    """The evaluation of the model a run keeps: the best one, or the last without load_best_model_at_end."""
    if load_best:
        return best_entry(history, metric)
    return history[-1] if history else None


def log_evaluation(epoch: float, step: int, scores: SplitScores) -> None:
    """One line per evaluation, the same from every engine."""
    log.info("epoch %.2f step %d: %s", epoch, step, "  ".join(f"{k} {v:.4f}" for k, v in scores.scalars().items()))
