"""The keras engine on Keras 3's torch backend: the same artifact, metrics and options as the other engines,
trained through compile / fit with Keras callbacks (tests/test_keras_tensorflow.py covers the tensorflow one)."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import ARTIFACT_FILES, tiny_run, without_timing
from safetensors.torch import load_file

import finetext
from finetext.cli import main
from finetext.config import config_from_flat
from finetext.errors import FinetextError

os.environ["KERAS_BACKEND"] = "torch"  # before Keras is first imported (its default is tensorflow); these are torch's
pytest.importorskip("keras")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_and_native(tiny_model, tmp_path_factory, data_dir):
    """One run per engine with dropout off: same batches, same optimizer, so the same training."""
    root = tmp_path_factory.mktemp("keras")
    return {engine: finetext.train(tiny_run(tiny_model, root / engine, dataset="sst2", engine=engine, eval_samples=47,
                                            hidden_dropout=0.0, precision="fp32"))
            for engine in ("keras", "native")}


def test_keras_writes_the_same_artifact_and_metrics(keras_and_native):
    keras_run, native = keras_and_native["keras"], keras_and_native["native"]
    assert {p.name for p in keras_run.output_dir.iterdir()} == ARTIFACT_FILES
    assert not (keras_run.output_dir / "checkpoints").exists()
    metrics = keras_run.metrics
    assert metrics.keys() == native.metrics.keys() and metrics["train"].keys() == native.metrics["train"].keys()
    assert metrics["train"]["engine"] == "keras" and metrics["train"]["global_steps"] == 12
    assert [(h["epoch"], h["step"]) for h in metrics["history"]] == [(1.0, 6), (2.0, 12)]
    assert metrics["history"][0]["validation"].keys() == native.metrics["history"][0]["validation"].keys()
    assert [e["step"] for e in metrics["loss_log"]] == list(range(2, 13, 2))
    assert metrics["loss_log"][-1].keys() == native.metrics["loss_log"][-1].keys()
    assert metrics["best"] in metrics["history"]
    saved = json.loads((keras_run.output_dir / "metrics.json").read_text())
    assert saved == metrics
    resolved = (keras_run.output_dir / "finetext.yaml").read_text()
    assert "engine: keras" in resolved and "keras_backend: torch" in resolved


def test_keras_trains_the_model_the_native_engine_trains(keras_and_native):
    """Same batches (training.batching), loss, warm-up schedule, clipping and AdamW (torch's fused kernel inside
    Keras's optimizer): with dropout off the two loops compute the same thing, so their loss curves, validation
    losses and weights agree to float32 rounding (measured here: identical to the 5 decimals metrics.json keeps)."""
    keras_run, native = keras_and_native["keras"], keras_and_native["native"]
    keras_log, native_log = keras_run.metrics["loss_log"], native.metrics["loss_log"]
    assert [e["learning_rate"] for e in keras_log] == pytest.approx([e["learning_rate"] for e in native_log],
                                                                    rel=1e-6, abs=1e-10)
    assert [e["loss"] for e in keras_log] == pytest.approx([e["loss"] for e in native_log], abs=2e-5)
    for k, n in zip(keras_run.metrics["history"], native.metrics["history"], strict=True):
        assert k["validation"]["loss"] == pytest.approx(n["validation"]["loss"], abs=2e-5)
        assert k["train_loss"] == pytest.approx(n["train_loss"], abs=2e-5)
    a, b = (load_file(run.output_dir / "model.safetensors") for run in (keras_run, native))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_keras_history_matches_the_final_evaluation_of_the_kept_model(keras_and_native):
    metrics = keras_and_native["keras"].metrics
    for key in ("accuracy", "f1", "precision", "recall", "mcc"):
        assert metrics["best"]["validation"][key] == pytest.approx(metrics["final"]["validation"][key], abs=1e-4)


def test_keras_artifact_loads_in_pipeline_and_finetext_commands(keras_and_native, capsys):
    from transformers import pipeline

    folder = str(keras_and_native["keras"].output_dir)
    outputs = pipeline("text-classification", model=folder)(["fine", "awful"])
    assert {o["label"] for o in outputs} <= {"negative", "positive"}
    assert main(["predict", folder, "fine", "awful"]) == 0
    assert main(["report", folder]) == 0
    assert main(["evaluate", folder, "--dataset", "sst2", "--eval-samples", "47"]) == 0
    out = capsys.readouterr().out
    assert "negative" in out or "positive" in out


def test_keras_loss_and_schedule_are_the_other_engines(tiny_model):
    import keras
    from transformers import get_scheduler

    from finetext.training.keras.optimization import ObjectiveLoss, WarmupSchedule
    from finetext.training.objective import Objective

    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(8, 3)), dtype=torch.float32)
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])
    for weights in (None, [1.0, 3.0, 0.5]):
        objective = Objective(["a", "b", "c"], class_weights=weights)
        assert float(ObjectiveLoss(objective)(labels, logits)) == pytest.approx(objective.loss(logits, labels).item(),
                                                                                rel=1e-5)
    multi = torch.tensor(rng.integers(0, 2, size=(8, 3)), dtype=torch.float32)
    for weights in (None, [2.0, 1.0, 4.0]):
        objective = Objective(["a", "b", "c"], multi_label=True, class_weights=weights)
        assert float(ObjectiveLoss(objective)(multi, logits)) == pytest.approx(objective.loss(logits, multi).item(),
                                                                               rel=1e-5)
    for kind in ("linear", "cosine", "constant", "constant_with_warmup"):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
        reference = get_scheduler(kind, optimizer, num_warmup_steps=4, num_training_steps=20)
        expected = []
        for _ in range(21):
            expected.append(reference.get_last_lr()[0])
            optimizer.step()
            reference.step()
        schedule = WarmupSchedule(2e-5, 4, 20, kind, accumulation=2)  # Keras counts batches: 2 per update
        got = [float(keras.ops.convert_to_numpy(schedule(2 * step + 1))) for step in range(21)]
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-12), kind


def test_keras_head_strategy_trains_only_the_head(tiny_model, tmp_path):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "head", dataset="sst2", engine="keras", strategy="head",
                                     epochs=1))
    trained = load_file(result.output_dir / "model.safetensors")
    original = load_file(os.path.join(tiny_model, "model.safetensors"))
    encoder = [k for k in trained if k.startswith("bert.encoder.")]
    assert encoder and all(torch.equal(trained[k], original[k.removeprefix("bert.")]) for k in encoder)
    assert result.metrics["parameters"]["strategy"] == "head"


def test_keras_lora_multilabel_and_class_weights(tiny_model, tmp_path, data_dir):
    lora = finetext.train(tiny_run(tiny_model, tmp_path / "lora", dataset="sst2", engine="keras", strategy="lora",
                                   epochs=1, class_weights="balanced"))
    assert lora.metrics["class_weights"] and lora.metrics["parameters"]["trainable"] < 10_000
    from test_multilabel import topic_rows

    topic_rows(120, 0).to_json(tmp_path / "topics.jsonl", orient="records", lines=True)
    multi = finetext.train(tiny_run(tiny_model, tmp_path / "multi", engine="keras", epochs=1,
                                    train_file=str(tmp_path / "topics.jsonl"), train_samples=None,
                                    eval_samples=None, test_samples=None))
    assert multi.metrics["multi_label"] and multi.metrics["history"][0]["validation"]["num_examples"] > 0


def test_keras_early_stopping_and_step_evaluation(tiny_model, tmp_path):
    early = finetext.train(tiny_run(tiny_model, tmp_path / "early", dataset="sst2", engine="keras", epochs=10,
                                    learning_rate=1e-12, early_stopping_patience=2))
    assert [h["epoch"] for h in early.metrics["history"]] == [1.0, 2.0, 3.0]
    assert early.metrics["best"]["epoch"] == 1.0 and early.metrics["train"]["epochs_completed"] == 3.0
    steps = finetext.train(tiny_run(tiny_model, tmp_path / "steps", dataset="sst2", engine="keras", batch_size=8,
                                    gradient_accumulation_steps=2, eval_strategy="steps", eval_steps=4, epochs=1.5))
    # 96 examples / (8 x 2) = 6 updates per epoch; 1.5 epochs = 9 updates; the last model is always scored.
    assert [h["step"] for h in steps.metrics["history"]] == [4, 8, 9]
    assert steps.metrics["train"]["global_steps"] == 9
    assert [e["step"] for e in steps.metrics["loss_log"]] == [2, 4, 6, 8]


def test_keras_refusals_name_the_fix(monkeypatch, capsys):
    import importlib.util

    with pytest.raises(FinetextError, match="save_steps is a native-engine option"):
        config_from_flat({"engine": "keras", "save_steps": 5})
    with pytest.raises(FinetextError, match="keras_backend is an option of the keras engine"):
        config_from_flat({"keras_backend": "torch"})
    with pytest.raises(FinetextError, match="runs on the torch or tensorflow backend, not 'jax'"):
        monkeypatch.setenv("KERAS_BACKEND", "jax")
        config_from_flat({"engine": "keras"})
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(FinetextError, match="trains in one process.*Use --engine native"):
        config_from_flat({"engine": "keras"})
    monkeypatch.delenv("WORLD_SIZE")
    real = importlib.util.find_spec
    missing = {"keras", "tensorflow", "keras_hub"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    assert main(["train", "--dataset", "sst2", "--engine", "keras"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --engine keras on the torch backend needs keras (not installed). '
                   'Run: pip install "finetext[keras]"']
    assert main(["train", "--dataset", "sst2", "--engine", "keras", "--keras-backend", "tensorflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --engine keras on the tensorflow backend needs keras, tensorflow, keras_hub '
                   '(not installed). Run: pip install "finetext[tensorflow]"']


def test_keras_resumes_a_killed_run_exactly(tiny_model, tmp_path):
    """SIGKILL after the first evaluation's checkpoint, --resume: the same history and weights as a run never
    interrupted (variables, optimizer moments, RNG and early-stopping state come back)."""
    from test_resume import kill_after

    argv = ["train", "--dataset", "glue/mrpc", "--model", tiny_model, "--engine", "keras", "--train-samples", "400",
            "--eval-samples", "50", "--test-samples", "20", "--epochs", "2", "--batch-size", "8",
            "--max-length", "64", "--learning-rate", "1e-3", "--quiet"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main([*argv, "--output-dir", str(whole)]) == 0
    kill_after([*argv, "--output-dir", str(killed)], killed / "checkpoints" / "step-50" / "state.json")
    assert not (killed / "finetext.yaml").exists()
    assert main([*argv, "--output-dir", str(killed), "--resume"]) == 0
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert without_timing(second["history"]) == without_timing(first["history"])
    assert second["loss_log"] == first["loss_log"]
    a, b = (load_file(d / "model.safetensors") for d in (whole, killed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_keras_trains_scratch_models_and_chunked_long_texts(tiny_model, tmp_path):
    from test_scratch import scratch_run

    scratch = finetext.train(scratch_run(tmp_path / "scratch", engine="keras"))
    assert json.loads((scratch.output_dir / "config.json").read_text())["model_type"] == "finetext-glove-transformer"
    assert scratch.metrics["train"]["engine"] == "keras"
    chunked = finetext.train(tiny_run(tiny_model, tmp_path / "chunk", dataset="imdb", epochs=1, max_length=32,
                                      long_text="chunk", stride=8, engine="keras", precision="fp32",
                                      train_samples=24, eval_samples=8, test_samples=8))
    # validation windows are scored per document, as in the other engines
    assert chunked.metrics["history"][-1]["validation"]["num_examples"] == 8
    assert chunked.metrics["final"]["validation"]["num_examples"] == 8
