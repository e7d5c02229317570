"""What finetext's own loops (native, keras) record as they train: the step, the training losses, the history of
evaluations, the loss log and the stopwatch's readings. Saved in every checkpoint as JSON; each loop adds its own
data position (training.native_engine.Progress) or derives it from the history (the keras engine)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry, SplitScores


@dataclass
class TrainingRecord:
    global_step: int = 0
    """Optimizer steps taken."""
    loss_sum: float = 0.0
    loss_count: int = 0
    """Training loss since the last evaluation: the sum of batch losses (averaged over processes), and
    the number of batches."""
    total_loss_sum: float = 0.0
    total_loss_count: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    """One entry per evaluation; the best entry and the patience count are derived from it."""
    window_loss_sum: float = 0.0
    window_loss_count: int = 0
    """Training loss since the last log line (every logging_steps)."""
    loss_log: list[LossLogEntry] = field(default_factory=list)
    """One entry per logging_steps: step, epoch, mean training loss of the window, learning rate."""
    train_seconds: float = 0.0
    """Wall time of all sessions of this run, resumed ones included (the stopwatch's elapsed time at the
    checkpoint)."""
    pause_seconds: float = 0.0
    """The part of it spent evaluating and writing checkpoints (its paused time; history entries report
    training time without it)."""

    def add_losses(self, loss_sum: float, batches: int) -> None:
        """Batch losses (their sum, and how many) into the evaluation's, the run's and the log window's tallies."""
        self.loss_sum += loss_sum
        self.total_loss_sum += loss_sum
        self.window_loss_sum += loss_sum
        self.loss_count += batches
        self.total_loss_count += batches
        self.window_loss_count += batches

    def log_window(self, updates_per_epoch: int, learning_rate: float) -> LossLogEntry:
        """Close the loss-log window at the current step: its mean loss, recorded and returned."""
        entry = LossLogEntry(step=self.global_step, epoch=round(self.global_step / updates_per_epoch, 3),
                             loss=round(self.window_loss_sum / max(1, self.window_loss_count), 5),
                             learning_rate=learning_rate)
        self.loss_log.append(entry)
        self.window_loss_sum, self.window_loss_count = 0.0, 0
        return entry

    def record_evaluation(self, updates_per_epoch: int, train_seconds: float,
                          validation: SplitScores) -> HistoryEntry:
        """An evaluation at the current step, with the mean training loss since the previous one."""
        entry = HistoryEntry(epoch=round(self.global_step / updates_per_epoch, 3), step=self.global_step,
                             train_loss=round(self.loss_sum / self.loss_count, 5) if self.loss_count else None,
                             train_seconds=round(train_seconds, 2), validation=validation)
        self.history.append(entry)
        self.loss_sum, self.loss_count = 0.0, 0
        return entry

    def mean_loss(self) -> float:
        """The mean training loss of the whole run."""
        return round(self.total_loss_sum / max(1, self.total_loss_count), 5)

    def last_eval_step(self) -> int:
        return self.history[-1].step if self.history else -1

    @classmethod
    def from_saved(cls, saved: dict):
        """The record of a checkpoint's state.json, which holds the history and loss log as JSON objects."""
        return cls(**{**saved, "history": [HistoryEntry.from_dict(e, "history") for e in saved["history"]],
                      "loss_log": [LossLogEntry.from_dict(e, "loss_log") for e in saved["loss_log"]]})
