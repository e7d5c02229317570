"""The settings of `finetext tune` beside the training config: one docstring per field, the source of the CLI
flags and the docs. The training config (flags or a YAML file) is the base every trial starts from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from finetext.errors import FinetextError

PRUNERS = ("median", "halving", "none")
FINALS = ("full", "trial", "none")
SEARCH_SPLITS = ("auto", "carve", "validation")


@dataclass
class TuneConfig:
    trials: int = 20
    """Trials the study runs in all (across every worker sharing it); trials already finished count."""
    timeout: str = "none"
    """Stop starting trials after this long (e.g. 90m, 2h, 3600s, or seconds); a running trial finishes. The
    final run comes after it. 'none': no time limit."""
    search_space: str = "none"
    """YAML file: for each config field a range ({low: 1e-5, high: 1e-4, log: true}; ints stay ints) or a list
    of choices ([8, 16, 32]; strategy and model may be choices too). 'none': the strategy's default space."""
    pruner: str = "median"
    """Stop hopeless trials early: 'median' (below the median of earlier trials at the same evaluation),
    'halving' (asynchronous successive halving) or 'none'."""
    evaluations_per_epoch: int = 2
    """Evaluations inside each trial's epoch: each reports its score to the pruner."""
    search_split: str = "auto"
    """Where trials are scored: 'carve' (a seeded, stratified split carved from train; validation and test are
    held back), 'validation' (test is held back), or 'auto' (validation when the data has a labelled test
    split, else carve)."""
    search_fraction: float = 0.1
    """carve: the share of train carved out to score trials on."""
    search_eval_samples: int = 2000
    """carve: at most this many rows carved (a trial evaluates them evaluations_per_epoch times an epoch)."""
    tune_samples: int = 0
    """Search on a seeded, stratified subset of this many training examples (0: all); the final run trains the
    best setting on the full training data."""
    final: str = "full"
    """'full': train the best setting on the full training data (`finetext train best.yaml`) and score it on
    the held-back split; 'trial': keep the best trial's model and score it there; 'none': no final model (a
    worker that only runs trials)."""
    storage: str = "none"
    """Optuna storage URL shared by the workers of one study (e.g. postgresql://user:pass@host/db, or
    sqlite:///path.db on one machine). 'none': SQLite in the output directory (study.db)."""
    study_name: str = "none"
    """Name of the study in the storage. 'none': 'finetext' (one study per output directory)."""
    resume: bool = False
    """Continue the stored study: finished trials are kept and never run again."""
    keep_trials: bool = False
    """Keep every trial's model in OUTPUT_DIR/trials/ (default: only the best trial's, while the study runs)."""

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise FinetextError(f"trials must be a positive integer, got {self.trials}.", "Use e.g. --trials 20.")
        timeout_seconds(self.timeout)
        for name, allowed in (("pruner", PRUNERS), ("final", FINALS), ("search_split", SEARCH_SPLITS)):
            if getattr(self, name) not in allowed:
                raise FinetextError(f"{name} must be one of {', '.join(allowed)}; got '{getattr(self, name)}'.")
        if self.evaluations_per_epoch < 1:
            raise FinetextError(f"evaluations_per_epoch must be a positive integer, got {self.evaluations_per_epoch}.")
        if not 0.0 < self.search_fraction < 1.0:
            raise FinetextError(f"search_fraction must be between 0 and 1, got {self.search_fraction}.")
        if self.search_eval_samples < 1 or self.tune_samples < 0:
            raise FinetextError("search_eval_samples must be positive and tune_samples at least 0.")
        if self.final == "trial" and self.tune_samples:
            raise FinetextError("--final trial keeps a model trained on the tune_samples subset, not on the full "
                                "training data.", "Use --final full with --tune-samples.")

    @property
    def timeout_s(self) -> float | None:
        return timeout_seconds(self.timeout)

    def option(self, name: str) -> str | None:
        """A 'none'-able string setting as None or its value."""
        value = getattr(self, name)
        return None if value in ("none", "") else value


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*$")


def timeout_seconds(text: str) -> float | None:
    """'none' -> None; '90m', '2h', '3600s', '3600' -> seconds."""
    if text in ("none", ""):
        return None
    match = DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise FinetextError(f"timeout must be a duration such as 90m, 2h or 3600s; got '{text}'.")
    scale = {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale
