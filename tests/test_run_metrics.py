"""metrics.json's records: read back as written, older files still read, damaged ones refused by name."""

import json

import numpy as np
import pytest

from finetext.errors import FinetextError
from finetext.evaluation.metrics import report_from_logits
from finetext.evaluation.run_metrics import (
    DataSummary,
    HistoryEntry,
    LossLogEntry,
    ParameterCounts,
    RunMetrics,
    SplitScores,
    TrainStats,
    read_run_metrics,
)


def run_metrics(multi_label: bool) -> RunMetrics:
    """The metrics of a small run, built from real reports (no training)."""
    rng = np.random.default_rng(0)
    names = ["sports", "politics", "tech"]
    labels = rng.integers(0, 2, (30, 3)) if multi_label else rng.integers(0, 3, 30)
    final = report_from_logits(rng.normal(size=(30, 3)), labels, names, multi_label=multi_label)
    extras = {"f1_macro": 0.4, "hamming_loss": 0.3} if multi_label else {}
    entry = HistoryEntry(epoch=1.0, step=4, train_loss=None, train_seconds=1.5,
                         validation=SplitScores(loss=0.7, accuracy=0.5, f1=0.4, precision=0.45, recall=0.4, mcc=0.1,
                                                **extras, num_examples=30))
    return RunMetrics(
        finetext_version="0.1.0", label_names=names, multi_label=multi_label,
        data=DataSummary("tags", {"train": 90, "validation": 30}),
        parameters=ParameterCounts(strategy="full", total=100, trainable=100, trainable_percent=100.0),
        train=TrainStats(train_runtime_s=2.0, train_loss=0.8, global_steps=4, epochs_completed=1.0, num_processes=1,
                         engine="native", train_samples_per_second=45.0, train_tokens_per_second=900.0,
                         wall_time_s=2.5),
        history=[entry], loss_log=[LossLogEntry(step=2, epoch=0.5, loss=0.9, learning_rate=1e-3)], best=entry,
        final_validation=final, class_weights={"sports": 1.0, "politics": 2.0, "tech": 1.0})


def write(path, values: dict):
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


@pytest.mark.parametrize("multi_label", [False, True])
def test_records_read_back_as_written(tmp_path, multi_label):
    metrics = run_metrics(multi_label)
    written = json.loads(json.dumps(metrics.to_dict()))
    assert written["multi_label"] is multi_label
    assert read_run_metrics(write(tmp_path / "metrics.json", written)) == metrics
    scores = written["final"]["validation"]
    assert ("hamming_loss" in scores) is multi_label and "loss" not in scores and "test" not in written
    assert written["history"][0]["train_loss"] is None  # written as null: "no loss logged", not left out


@pytest.mark.parametrize("multi_label", [False, True])
def test_a_file_written_before_the_multi_label_flag_still_reads(tmp_path, multi_label):
    old = run_metrics(multi_label).to_dict()
    del old["multi_label"], old["loss_log"]  # older runs have neither
    metrics = read_run_metrics(write(tmp_path / "metrics.json", old))
    assert metrics.multi_label is multi_label and metrics.loss_log == []


@pytest.mark.parametrize(("damage", "named"), [
    (lambda m: m.pop("train"), "metrics lacks 'train'"),
    (lambda m: m.update(score=1), "metrics has unknown key(s) 'score'"),
    (lambda m: m["history"][0]["validation"].pop("f1"), "history[0].validation lacks 'f1'"),
    (lambda m: m["final"]["validation"].update(f2=0.5), "final.validation has unknown key(s) 'f2'"),
    (lambda m: m["final"]["validation"]["confusion_matrix"].pop("matrix"), "final.validation.confusion_matrix lacks"),
    (lambda m: m.update(history={}), "history is not a list"),
    (lambda m: m["data"].pop("source"), "data lacks 'source'"),
    (lambda m: m["final"]["validation"].update(accuracy="high"), "final.validation.accuracy is not a number"),
])
def test_a_damaged_file_is_refused_naming_it_and_the_key(tmp_path, damage, named):
    values = run_metrics(False).to_dict()
    damage(values)
    path = write(tmp_path / "metrics.json", values)
    with pytest.raises(FinetextError, match="is not the metrics of a finetext training run") as error:
        read_run_metrics(path)
    assert str(path) in str(error.value) and named in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_json_or_missing_is_refused_naming_it(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"finetext_version": "0.1', encoding="utf-8")
    with pytest.raises(FinetextError, match="is not valid JSON"):
        read_run_metrics(path)
    with pytest.raises(FinetextError, match="not found"):
        read_run_metrics(tmp_path / "elsewhere.json")
