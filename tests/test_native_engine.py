"""The native engine: same artifacts and metrics as the Trainer engine, its batches, early stopping."""

import json

import numpy as np
import pytest
from conftest import ARTIFACT_FILES, tiny_run, without_timing

import finetext
from finetext.training.batching import LengthGroupedBatches, sorted_batches

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def both_engines(tiny_model, tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("engines")
    return {engine: finetext.train(tiny_run(tiny_model, root / engine, dataset="sst2", engine=engine,
                                            eval_samples=47))
            for engine in ("trainer", "native")}


def test_native_writes_the_same_artifact_and_metrics_layout(both_engines):
    trainer, native = both_engines["trainer"], both_engines["native"]
    assert {p.name for p in native.output_dir.iterdir()} == ARTIFACT_FILES
    assert native.metrics.keys() == trainer.metrics.keys()
    assert native.metrics["train"].keys() == trainer.metrics["train"].keys()
    assert native.metrics["train"]["engine"] == "native" and trainer.metrics["train"]["engine"] == "trainer"
    for run in (native, trainer):
        history = run.metrics["history"]
        assert [(h["epoch"], h["step"]) for h in history] == [(1.0, 6), (2.0, 12)]
        assert all(h["validation"]["num_examples"] == 47 and h["train_loss"] is not None for h in history)
        assert history[0].keys() == trainer.metrics["history"][0].keys()
        assert history[0]["validation"].keys() == trainer.metrics["history"][0]["validation"].keys()
        # training time without evaluations, for time-to-accuracy: grows, and never exceeds the whole run
        seconds = [h["train_seconds"] for h in history]
        assert 0 < seconds[0] < seconds[1] <= run.metrics["train"]["train_runtime_s"]
        assert run.metrics["train"]["train_tokens_per_second"] > run.metrics["train"]["train_samples_per_second"]
        # the loss curve of the report: one line per logging_steps (2), the same shape from both engines
        log = run.metrics["loss_log"]
        assert [entry["step"] for entry in log] == list(range(2, 13, 2))
        assert all(entry["loss"] > 0 for entry in log) and log[0]["learning_rate"] > log[-1]["learning_rate"] >= 0
        assert log[2]["epoch"] == pytest.approx(1.0)
    assert native.metrics["loss_log"][-1].keys() == trainer.metrics["loss_log"][-1].keys()
    saved = json.loads((native.output_dir / "metrics.json").read_text())
    assert saved == native.metrics and saved["best"] in saved["history"]
    assert not (native.output_dir / "checkpoints").exists()


def test_native_history_matches_the_final_evaluation_of_the_kept_model(both_engines):
    metrics = both_engines["native"].metrics
    final = metrics["final"]["validation"]
    for key in ("accuracy", "f1", "precision", "recall", "mcc"):
        assert metrics["best"]["validation"][key] == pytest.approx(final[key], abs=1e-5)


def test_native_model_loads_in_pipeline_with_label_names(both_engines):
    from transformers import pipeline

    outputs = pipeline("text-classification", model=str(both_engines["native"].output_dir))(["fine", "awful"])
    assert {o["label"] for o in outputs} <= {"negative", "positive"}


def test_native_is_deterministic(tiny_model, tmp_path, both_engines):
    again = finetext.train(tiny_run(tiny_model, tmp_path / "again", dataset="sst2", engine="native",
                                    eval_samples=47))
    assert without_timing(again.metrics["history"]) == without_timing(both_engines["native"].metrics["history"])


def test_early_stopping_stops_after_patience_evaluations(tiny_model, tmp_path):
    # A learning rate this small leaves the predictions unchanged, so F1 never improves after the first.
    result = finetext.train(tiny_run(tiny_model, tmp_path / "early", dataset="sst2", engine="native", epochs=10,
                                     learning_rate=1e-12, early_stopping_patience=2))
    assert [h["epoch"] for h in result.metrics["history"]] == [1.0, 2.0, 3.0]
    assert result.metrics["best"]["epoch"] == 1.0 and result.metrics["train"]["epochs_completed"] == 3.0


def test_step_evaluation_and_gradient_accumulation(tiny_model, tmp_path):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "steps", dataset="sst2", engine="native",
                                     batch_size=8, gradient_accumulation_steps=2, eval_strategy="steps",
                                     eval_steps=4, epochs=1.5))
    # 96 examples / (8 x 2) = 6 steps per epoch; 1.5 epochs = 9 steps; the last model is always scored.
    assert [h["step"] for h in result.metrics["history"]] == [4, 8, 9]
    assert result.metrics["train"]["global_steps"] == 9


def test_length_grouped_batches_cover_every_example_once_per_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=1000).tolist()
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=3)
    epochs = []
    for epoch in range(2):
        sampler.select_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 63
        assert sorted(i for b in batches for i in b) == list(range(1000))
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    sampler.select_epoch(0)
    assert list(sampler) == epochs[0]  # a pure function of (seed, epoch): what resuming relies on
    plain = LengthGroupedBatches(lengths, batch_size=16, seed=3, group_by_length=False)
    padded = lambda batches: sum(len(b) * max(lengths[i] for i in b) for b in batches)  # noqa: E731
    real = sum(lengths)
    assert padded(epochs[0]) < 1.1 * real < padded(list(plain)) / 1.5


def test_sorted_batches_for_evaluation():
    batches = sorted_batches([3, 9, 1, 7, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]
