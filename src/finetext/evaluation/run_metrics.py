"""metrics.json as typed records: what a training run scored, written and read in this module only.

The training run builds a RunMetrics and its artifact saves ``to_dict()`` (written with the rest of the artifact,
staged and renamed into place); the report, the model card, ``compare`` and the CLI read it back with
``read_run_metrics``. A file that lacks a key, or has one these records do not know, is
refused with one line naming it, instead of being read with fallbacks that hide what is missing.

The JSON keeps the layout finetext has always written (one flat object per split's scores, ``final`` holding
the validation scores of the kept model), plus ``multi_label``, which says what kind of task the run was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from finetext.errors import FinetextError
from finetext.model_files import read_json

MULTI_LABEL_AVERAGE = "micro"
"""f1_average of multi-label scores: one decision per (example, label), micro-averaged."""


class DamagedMetrics(ValueError):
    """A metrics object without a key it needs, with one nobody writes, or of the wrong shape."""


def _fields(record: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """record, checked to be a JSON object with every required key and no key outside required + optional."""
    if not isinstance(record, dict):
        raise DamagedMetrics(f"{where} is not an object")
    missing = [key for key in required if key not in record]
    unknown = [key for key in record if key not in required and key not in optional]
    if missing:
        raise DamagedMetrics(f"{where} lacks {', '.join(map(repr, missing))}")
    if unknown:
        raise DamagedMetrics(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}")
    return record


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise DamagedMetrics(f"{where} is not a list")
    return value


def _without_none(record: Any) -> dict[str, Any]:
    """A record's fields in declaration order (the file's order), leaving out the optional ones not set."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if getattr(record, f.name) is not None}


@dataclass
class ConfusionMatrix:
    labels: list[str]
    matrix: list
    """Single-label: rows are the true class, columns the predicted one. Multi-label: one 2x2 matrix per label,
    [[true negatives, false positives], [false negatives, true positives]]."""

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matrix": self.matrix}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ConfusionMatrix:
        values = _fields(data, where, ("labels", "matrix"))
        return cls(_list(values["labels"], f"{where}.labels"), _list(values["matrix"], f"{where}.matrix"))


SCORE_NAMES = ("loss", "accuracy", "f1", "precision", "recall", "mcc", "f1_macro", "hamming_loss", "threshold",
               "num_examples")


@dataclass(kw_only=True)
class SplitScores:
    """One split's scores: the validation scores of an evaluation during training (with loss, without the
    confusion matrix), or a final report (with f1_average and the confusion matrix, without loss).

    Multi-label scores add f1_macro and hamming_loss (and, in a final report, the threshold); their accuracy
    is subset accuracy and f1/precision/recall are micro-averaged. Fields left None are not written."""

    loss: float | None = None
    accuracy: float
    f1: float
    precision: float
    recall: float
    mcc: float
    f1_macro: float | None = None
    hamming_loss: float | None = None
    f1_average: str | None = None
    """binary (of class id 1), macro, or micro (multi-label)."""
    threshold: float | None = None
    num_examples: int
    confusion_matrix: ConfusionMatrix | None = None

    def score(self, metric: str) -> float:
        """The value of a metric_for_best_model (accuracy, f1, precision, recall, mcc or loss)."""
        value = getattr(self, metric)
        if value is None:
            raise ValueError(f"these scores have no {metric}")
        return value

    def scalars(self) -> dict[str, float]:
        """The scores set, by name (the numbers a log line shows), without the counts and settings."""
        return {name: value for name, value in _without_none(self).items()
                if name not in ("f1_average", "threshold", "num_examples", "confusion_matrix")}

    def to_dict(self) -> dict[str, Any]:
        values = _without_none(self)
        if self.confusion_matrix is not None:
            values["confusion_matrix"] = self.confusion_matrix.to_dict()
        return values

    @classmethod
    def from_dict(cls, data: Any, where: str) -> SplitScores:
        names = [f.name for f in dataclasses.fields(cls)]
        required = tuple(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING)
        values = dict(_fields(data, where, required, tuple(n for n in names if n not in required)))
        for name in SCORE_NAMES:
            value = values.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise DamagedMetrics(f"{where}.{name} is not a number")
        if values.get("confusion_matrix") is not None:
            values["confusion_matrix"] = ConfusionMatrix.from_dict(values["confusion_matrix"],
                                                                   f"{where}.confusion_matrix")
        return cls(**values)


@dataclass
class HistoryEntry:
    """One evaluation during training."""

    epoch: float
    step: int
    train_loss: float | None
    """Mean training loss since the previous evaluation; None when the engine logged none in between."""
    train_seconds: float | None
    """Training time so far, evaluations and checkpoints excluded; None when the engine did not measure it."""
    validation: SplitScores

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "train_loss": self.train_loss,
                "train_seconds": self.train_seconds, "validation": self.validation.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> HistoryEntry:
        values = _fields(data, where, ("epoch", "step", "train_loss", "train_seconds", "validation"))
        return cls(values["epoch"], values["step"], values["train_loss"], values["train_seconds"],
                   SplitScores.from_dict(values["validation"], f"{where}.validation"))


@dataclass
class LossLogEntry:
    """The mean training loss of one logging_steps window."""

    step: int
    epoch: float
    loss: float
    learning_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LossLogEntry:
        return cls(**_fields(data, where, ("step", "epoch", "loss", "learning_rate")))


@dataclass
class TrainStats:
    """How training went: its time and throughput, the same way for both engines."""

    train_runtime_s: float
    train_loss: float
    """Mean training loss of the whole run."""
    global_steps: int
    epochs_completed: float
    num_processes: int
    engine: str
    train_samples_per_second: float
    train_tokens_per_second: float
    """Real (non-padding) tokens."""
    wall_time_s: float
    """The training call as a whole: the loop, evaluations and checkpoints."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainStats:
        return cls(**_fields(data, where, tuple(f.name for f in dataclasses.fields(cls))))


class ParameterCounts(TypedDict):
    """The strategy and the parameters it trains (models.strategies.parameter_counts)."""

    strategy: str
    total: int
    trainable: int
    trainable_percent: float


@dataclass
class DataSummary:
    source: str
    """The dataset name or folder, or the training file."""
    sizes: dict[str, int]
    """Examples per split, in the data's order (documents, when long texts are chunked)."""
    windows: dict[str, int] | None = None
    """long_text chunk: the windows train (after train_windows_per_document) and validation were cut into."""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.sizes, **({"windows": self.windows} if self.windows else {})}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DataSummary:
        if not isinstance(data, dict) or "source" not in data:
            raise DamagedMetrics(f"{where} lacks 'source'")
        sizes = {split: count for split, count in data.items() if split not in ("source", "windows")}
        windows = data.get("windows")
        if windows is not None and not isinstance(windows, dict):
            raise DamagedMetrics(f"{where}.windows is not a mapping of split to count")
        if not all(isinstance(count, int) for count in [*sizes.values(), *(windows or {}).values()]):
            raise DamagedMetrics(f"{where} has a split size that is not a count")
        return cls(data["source"], sizes, windows)


@dataclass(kw_only=True)
class RunMetrics:
    """The contents of metrics.json."""

    finetext_version: str
    label_names: list[str]
    multi_label: bool
    data: DataSummary
    parameters: ParameterCounts
    train: TrainStats
    history: list[HistoryEntry]
    loss_log: list[LossLogEntry] = field(default_factory=list)
    best: HistoryEntry | None
    """The evaluation of the kept model: the best one, or the last without load_best_model_at_end."""
    final_validation: SplitScores
    """The kept model's validation report, scored again after training (written as final.validation)."""
    test: SplitScores | None = None
    """The test split's report, when it has labels."""
    class_weights: dict[str, float] | None = None
    """The loss's weight per label, when the run weighted classes."""

    @property
    def kept_step(self) -> int | None:
        """The step of the kept model's evaluation."""
        return self.best.step if self.best is not None else None

    def reports(self) -> dict[str, SplitScores]:
        """The final reports by split: validation (the kept model), and test when it was scored."""
        return {"validation": self.final_validation, **({"test": self.test} if self.test is not None else {})}

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "finetext_version": self.finetext_version,
            "label_names": self.label_names,
            "multi_label": self.multi_label,
            "data": self.data.to_dict(),
            "parameters": dict(self.parameters),
            "train": self.train.to_dict(),
            "history": [entry.to_dict() for entry in self.history],
            "loss_log": [entry.to_dict() for entry in self.loss_log],
            "best": None if self.best is None else self.best.to_dict(),
            "final": {"validation": self.final_validation.to_dict()},
        }
        if self.test is not None:
            values["test"] = self.test.to_dict()
        if self.class_weights is not None:
            values["class_weights"] = self.class_weights
        return values

    @classmethod
    def from_dict(cls, data: Any) -> RunMetrics:
        """The records of a metrics.json object; DamagedMetrics (naming the key) when it is not one."""
        values = _fields(data, "metrics", ("finetext_version", "label_names", "data", "parameters", "train", "history",
                                           "best", "final"), ("multi_label", "loss_log", "test", "class_weights"))
        final = SplitScores.from_dict(_fields(values["final"], "final", ("validation",))["validation"],
                                      "final.validation")
        parameters = _fields(values["parameters"], "parameters", tuple(ParameterCounts.__annotations__))
        return cls(
            finetext_version=values["finetext_version"],
            label_names=_list(values["label_names"], "label_names"),
            # Files written before the flag existed say it only through the multi-label scores' extra keys:
            # inferred here, once, so that no reader has to.
            multi_label=values.get("multi_label", final.hamming_loss is not None),
            data=DataSummary.from_dict(values["data"], "data"),
            parameters=ParameterCounts(**parameters),
            train=TrainStats.from_dict(values["train"], "train"),
            history=[HistoryEntry.from_dict(entry, f"history[{i}]")
                     for i, entry in enumerate(_list(values["history"], "history"))],
            # runs saved before the loss log existed have none
            loss_log=[LossLogEntry.from_dict(entry, f"loss_log[{i}]")
                      for i, entry in enumerate(_list(values.get("loss_log", []), "loss_log"))],
            best=None if values["best"] is None else HistoryEntry.from_dict(values["best"], "best"),
            final_validation=final,
            test=None if values.get("test") is None else SplitScores.from_dict(values["test"], "test"),
            class_weights=values.get("class_weights"),
        )


def read_run_metrics(path: Path, fix: str = "Rerun training to write it again.") -> RunMetrics:
    """A run's metrics.json, or one FinetextError naming the file and what is wrong with it."""
    if not path.is_file():
        raise FinetextError(f"{path} not found.", fix)
    try:
        return RunMetrics.from_dict(read_json(path, fix))
    except DamagedMetrics as exc:
        raise FinetextError(f"{path} is not the metrics of a finetext training run ({exc}).", fix) from None
