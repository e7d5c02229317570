"""Experiment tracking (report_to) through accelerate's tracker integrations: TensorBoard, MLflow, W&B, ...

One RunTracker per training run, on the main process: the resolved config as parameters, the training loss and
learning rate every logging_steps, every evaluation, the final and test scores, then the artifact's report and
metrics as run files where the tracker stores files (MLflow). The trainer engine hands report_to to the Trainer,
whose own callbacks log its steps; finetext adds the parameters, final scores and files to the same run.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry
from finetext.storage import write_json

if TYPE_CHECKING:
    from accelerate.tracking import GeneralTracker

    from finetext.config import TrainConfig
    from finetext.training.fit import FitResult

log = logging.getLogger("finetext")

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "comet_ml": "comet_ml",
                    "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "trackio": "trackio"}
"""The trackers both accelerate and the Trainer integrate, and the package each needs."""
REPORT_TO_CHOICES = ("none", *TRACKER_PACKAGES)
DEFAULT_EXPERIMENT = "finetext"
TRACKING_STATE = "tracking.json"
"""In checkpoints/: the run name and tracker run ids, so a resumed training run continues the same tracked run."""
RUN_FILES = ("metrics.json", "report.html", "README.md", "finetext.yaml")
"""The artifact's files a tracker that stores files receives (report/ too, its charts)."""


def chosen_trackers(report_to: list[str] | None) -> list[str]:
    """The tracker names report_to asks for, without 'none' and repeats."""
    return list(dict.fromkeys(name for name in report_to or [] if name != "none"))


def check_report_to(report_to: list[str] | None) -> None:
    """Refuse unknown names and 'none' beside a tracker (no I/O: runs when the config is built)."""
    for name in report_to or []:
        if name not in REPORT_TO_CHOICES:
            raise FinetextError(f"report_to '{name}' is not a tracker finetext knows.",
                                f"Choose from: {', '.join(REPORT_TO_CHOICES)}.")
    if "none" in (report_to or []) and chosen_trackers(report_to):
        raise FinetextError("report_to lists 'none' beside a tracker.", "Pass only the trackers, or only none.")


def check_trackers_installed(report_to: list[str] | None) -> None:
    """Before any work: every chosen tracker's package is importable."""
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in chosen_trackers(report_to):
        if name not in available:
            package = TRACKER_PACKAGES[name]
            raise FinetextError(f"report_to {name} needs the {package} package, which is not installed.",
                                f'pip install {package} (tensorboard and mlflow: pip install "finetext[tracking]"), '
                                "or drop it from --report-to.")


def default_run_name(output_dir: str) -> str:
    """The output folder's name and the start time (UTC): unique per run, readable in a tracker's list."""
    return f"{Path(output_dir).expanduser().resolve().name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def tracking_dir(cfg: TrainConfig) -> Path:
    """Where file-based trackers (TensorBoard) write: tracking_dir, else output_dir/runs."""
    return Path(cfg.tracking_dir or Path(cfg.output_dir) / "runs").expanduser()


def tensorboard_dir(cfg: TrainConfig) -> Path:
    """One TensorBoard run per training run: tracking_dir/run_name (`tensorboard --logdir tracking_dir`)."""
    return tracking_dir(cfg) / str(cfg.run_name)


@dataclass
class TrackedRun:
    """What a resumed run needs to continue the same tracked run (checkpoints/tracking.json)."""

    run_name: str
    mlflow_run_id: str | None = None

    @classmethod
    def read(cls, checkpoint_dir: Path) -> TrackedRun | None:
        path = checkpoint_dir / TRACKING_STATE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


class RunTracker:
    """The chosen trackers of one training run. Methods log to all of them; open() starts them and logs the
    config, close() ends them (MLflow marks a run that raised as FAILED)."""

    def __init__(self, trackers: list[GeneralTracker], live_steps: bool):
        self.trackers = trackers
        self.live_steps = live_steps
        """False when the engine's own integration logs the steps (the Trainer): finetext then logs none."""
        self.logged_losses: set[int] = set()
        self.logged_evaluations: set[int] = set()

    @classmethod
    def open(cls, cfg: TrainConfig, checkpoint_dir: Path, live_steps: bool) -> RunTracker | None:
        """Start the trackers of a resolved config (run_name set); None when report_to names none."""
        names = chosen_trackers(cfg.report_to)
        if not names:
            return None
        resumed = TrackedRun.read(checkpoint_dir) if cfg.resume else None
        tracker = cls([], live_steps)
        for name in names:
            started = make_tracker(name, cfg, resumed)
            try:
                started.start()
            except Exception as exc:  # a tracker's server or store refused: say which, before training starts
                tracker.close(failed=True)
                raise FinetextError(f"the {name} tracker could not start ({type(exc).__name__}: {exc}).",
                                    "Check its settings (e.g. MLFLOW_TRACKING_URI), or drop it from --report-to."
                                    ) from None
            tracker.trackers.append(started)
        write_json(checkpoint_dir / TRACKING_STATE, asdict(TrackedRun(str(cfg.run_name), tracker.mlflow_run_id())))
        if not cfg.resume:
            tracker.log_config(cfg)
        log.info("tracking with %s as run '%s'", ", ".join(names), cfg.run_name)
        return tracker

    def mlflow_run_id(self) -> str | None:
        for tracker in self.trackers:
            if tracker.name == "mlflow":
                return tracker.active_run.info.run_id
        return None

    def log_config(self, cfg: TrainConfig) -> None:
        params = config_params(cfg)
        for tracker in self.trackers:
            tracker.store_init_configuration(params)

    def log(self, values: dict[str, float], step: int) -> None:
        for tracker in list(self.trackers):
            with self.dropped_on_failure(tracker):
                tracker.log(values, step=step)

    @contextmanager
    def dropped_on_failure(self, tracker: GeneralTracker) -> Iterator[None]:
        """A tracker that fails mid-run (its server gone, a full disk) is dropped with one warning: hours of
        training are worth more than its curves, and metrics.json keeps every figure it would have had."""
        try:
            yield
        except Exception as exc:
            self.trackers.remove(tracker)
            log.warning("the %s tracker failed (%s: %s) and logs nothing more for this run; metrics.json and the "
                        "report keep every figure", tracker.name, type(exc).__name__, exc)

    def log_loss(self, entry: LossLogEntry) -> None:
        """One loss-log window: train/loss, train/learning_rate, train/epoch at its step."""
        if self.live_steps:
            self.logged_losses.add(entry.step)
            self.log(loss_values(entry), entry.step)

    def log_evaluation(self, entry: HistoryEntry) -> None:
        """One evaluation: eval/<metric> (and the mean training loss since the last one) at its step."""
        if self.live_steps:
            self.logged_evaluations.add(entry.step)
            self.log(evaluation_values(entry), entry.step)

    def log_missed(self, fit: FitResult) -> None:
        """Entries the engine recorded but did not report as they happened (the fewshot strategy's own loop)."""
        if not self.live_steps:
            return
        for entry in fit.loss_log:
            if entry.step not in self.logged_losses:
                self.log_loss(entry)
        for entry in fit.history:
            if entry.step not in self.logged_evaluations:
                self.log_evaluation(entry)

    def log_results(self, metrics: dict, artifact_dir: Path) -> None:
        """The final and test scores (at the last step), then the artifact's files."""
        steps = [e["step"] for e in (*metrics["history"], *metrics["loss_log"])]
        self.log(result_values(metrics), max(steps, default=0))
        for tracker in [t for t in self.trackers if hasattr(t, "log_artifact")]:  # MLflow: files beside the run
            with self.dropped_on_failure(tracker):
                for name in RUN_FILES:
                    if (artifact_dir / name).is_file():
                        tracker.log_artifact(str(artifact_dir / name))
                if (artifact_dir / "report").is_dir():
                    tracker.log_artifacts(str(artifact_dir / "report"), artifact_path="report")

    def close(self, failed: bool = False) -> None:
        """End every tracker's run; MLflow marks a run that raised (or a pruned tune trial) FAILED."""
        for tracker in list(self.trackers):
            with self.dropped_on_failure(tracker):
                if failed and tracker.name == "mlflow":
                    import mlflow

                    mlflow.end_run(status="FAILED")
                else:
                    tracker.finish()


def make_tracker(name: str, cfg: TrainConfig, resumed: TrackedRun | None) -> GeneralTracker:
    """accelerate's tracker class for name, pointed at this run: TensorBoard writes tracking_dir/run_name, MLflow
    starts run_name in the experiment (or continues the interrupted run's), the others take experiment as their
    project."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    cls = LOGGER_TYPE_TO_CLASS[name]
    experiment = cfg.experiment
    if name == "tensorboard":
        # tensorboard imports TensorFlow, when installed, for its file I/O (seconds, hundreds of MB); this marker
        # module is tensorboard's own switch to its built-in stub, which writes the same event files
        sys.modules.setdefault("tensorboard.compat.notf", ModuleType("tensorboard.compat.notf"))
        return cls(str(cfg.run_name), str(tracking_dir(cfg)))
    if name == "mlflow":
        run_id = resumed.mlflow_run_id if resumed else None
        return cls(experiment, run_name=cfg.run_name, run_id=run_id, tags={"finetext.output_dir": cfg.output_dir})
    if name == "wandb":
        return cls(experiment, name=cfg.run_name)
    return cls(experiment, str(tracking_dir(cfg))) if cls.requires_logging_directory else cls(experiment)


def config_params(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as flat parameters: data.max_length, training.learning_rate, run.output_dir, ... (the
    section names keep them apart from the Trainer's own parameters in the same run). Values trackers cannot hold
    (lists, mappings) become their JSON text."""
    params: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for name, leaf in items:
            params[f"{key}.{name}" if name else f"run.{key}"] = (
                leaf if leaf is None or isinstance(leaf, bool | int | float | str) else json.dumps(leaf))
    return params


def loss_values(entry: LossLogEntry) -> dict[str, float]:
    values = {"train/loss": entry.loss, "train/epoch": entry.epoch}
    if entry.learning_rate is not None:
        values["train/learning_rate"] = entry.learning_rate
    return values


def evaluation_values(entry: HistoryEntry) -> dict[str, float]:
    values = {f"eval/{name}": value for name, value in entry.validation.scalars().items()}
    if entry.train_loss is not None:
        values["eval/train_loss"] = entry.train_loss
    return values


def result_values(metrics: dict) -> dict[str, float]:
    """final/validation/<metric> for the kept model, test/<metric> when the test split was scored."""
    sections = {"final/validation": metrics["final"]["validation"], "test": metrics.get("test")}
    return {f"{prefix}/{name}": value for prefix, scores in sections.items() if scores
            for name, value in scores.items() if name not in NOT_SCORES and isinstance(value, int | float)}


NOT_SCORES = {"num_examples", "threshold"}
"""Numbers in a metrics.json report that are not scores."""
