"""What a study leaves behind, as typed records: one per trial, and the summary tune.html and trials.csv show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TrialRecord:
    """One trial of the study, as Optuna stored it."""

    number: int
    state: str
    """complete, pruned, failed or running."""
    params: dict[str, Any]
    """The sampled settings: config field -> value."""
    score: float | None
    """The trial's score on the search split (metric_for_best_model); None unless complete."""
    intermediate: dict[int, float] = field(default_factory=dict)
    """Evaluation index (evaluations_per_epoch per epoch, counted from 1) -> score, as reported for pruning;
    a pruned trial's last entry is where it stopped."""
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    """Why a failed trial failed (one line)."""

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


@dataclass(frozen=True)
class TuneSummary:
    """Everything tune.html and the command's last lines report about a study."""

    study_name: str
    storage: str
    """The storage URL with any password masked."""
    metric: str
    """metric_for_best_model: the score every trial is ranked by."""
    maximize: bool
    search_split: str
    """Where trials were scored, in words, e.g. 'validation (408 rows)' or '1,000 rows carved from train'."""
    held_back_split: str | None
    """The split no trial was scored on, whose figures `final_scores` are: 'validation' or 'test'; None
    when the study ran no final model (--final none)."""
    space: list[str]
    """The search space, one line per parameter (e.g. 'learning_rate: log-uniform 1e-05 .. 2e-04')."""
    trials: list[TrialRecord]
    best: TrialRecord | None
    importances: dict[str, float]
    """Parameter -> importance (Optuna's default evaluator, PED-ANOVA in Optuna 5), largest first; empty with
    fewer than two complete trials."""
    final_scores: dict[str, float] | None = None
    """The final model's scores on the held-back split (accuracy, f1, ... as metrics.json writes them)."""
    final_model_dir: str | None = None
    wall_seconds: float = 0.0
    """This worker's time from start to finish, final run included."""
    started: datetime | None = None
    """When the study's first trial started (for the history chart's time axis)."""

    def counts(self) -> dict[str, int]:
        """Trials by state."""
        counted: dict[str, int] = {}
        for trial in self.trials:
            counted[trial.state] = counted.get(trial.state, 0) + 1
        return counted
