"""The training loops a run can use: the Engine protocol and the ENGINES registry.

An engine is one module holding a class that implements Engine (fit a prepared run, find its latest resumable
checkpoint), registered once in ENGINES below with its name, a one-line description and the option
combinations it refuses. The registration names the class as "module:Class" and imports it only when a run
uses it, so config, the CLI and `finetext --help` read the registry without loading torch. TrainingRun asks the
registry for its engine in one place (`engine_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from finetext.errors import FinetextError
from finetext.lazy import import_object

if TYPE_CHECKING:
    from finetext.config import TrainingConfig
    from finetext.training.fit import FitResult, PreparedRun


class Engine(Protocol):
    """A training loop: trains a prepared run's model, evaluating and checkpointing as its config says."""

    def fit(self, run: PreparedRun) -> FitResult:
        """Train run.model on run.encoded_train, scoring run.encoded_validation as run.config.training says;
        checkpoints go to run.checkpoint_dir and, with run.resume_from, training continues from that one.
        History entries' train_seconds come from a training.stopwatch.Stopwatch paused while evaluating and
        checkpointing."""
        ...

    def latest_checkpoint(self, folder: Path) -> Path | None:
        """The newest complete checkpoint this engine wrote in folder, or None."""
        ...


@dataclass(frozen=True)
class EngineSpec:
    """One registered engine: what config and the docs know of it, and where its implementation lives."""

    name: str
    description: str
    """What the loop is, in a few words: the config reference and `finetext train --help` show it."""
    implementation: str
    """"module:Class" of the Engine, imported when a run uses it."""
    refuse: Callable[[TrainingConfig], None] | None = None
    """Raise FinetextError for option combinations this engine cannot run; runs when the config is built.
    None: it runs every configuration."""
    resolve: Callable[[TrainingConfig], TrainingConfig] | None = None
    """Fill in the defaults this engine decides (before the run measures the hardware settings still unset);
    None: nothing to fill in."""
    logs_tracker_steps: bool = False
    """Its own integration logs the training steps to report_to's trackers (the Trainer's callbacks); finetext
    then adds only the parameters, final scores and files."""

    def summary(self) -> str:
        return self.description

    def load(self) -> Engine:
        return import_object(self.implementation)()

    def resolved(self, cfg: TrainingConfig) -> TrainingConfig:
        return self.resolve(cfg) if self.resolve else cfg


def refuse_save_steps(cfg: TrainingConfig) -> None:
    if cfg.save_steps is not None:
        raise FinetextError("save_steps is a native-engine option: the Trainer checkpoints at each evaluation.",
                            "Add --engine native, or use --eval-strategy steps --eval-steps N with the Trainer.")


def lazy_check(implementation: str) -> Callable:
    """A refuse or resolve hook that imports its module only when a config names the engine."""
    return lambda cfg: import_object(implementation)(cfg)


ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in (
    EngineSpec("trainer", "the Hugging Face Trainer", "finetext.training.trainer_engine:TrainerEngine",
               refuse=refuse_save_steps, logs_tracker_steps=True),
    EngineSpec("native", "finetext's own loop on Accelerate", "finetext.training.native_engine:NativeEngine"),
    EngineSpec("keras", "Keras 3 compile / fit (torch or tensorflow backend; pip install \"finetext[keras]\")",
               "finetext.training.keras.engine:KerasEngine", refuse=lazy_check("finetext.training.keras.engine:"
                                                                               "refuse_keras"),
               resolve=lazy_check("finetext.training.keras.engine:resolve_keras")),
)}
"""Every engine by name, in the order the docs list them."""


def engine_for(cfg: TrainingConfig) -> Engine:
    return ENGINES[cfg.engine].load()
