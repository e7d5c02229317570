"""What both engines hand back, and the one rule that picks the best evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedModel

from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry


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
