"""The keras engine's TensorFlow model (finetext.training.keras.tensorflow_bert): keras-hub's BERT built from the
run's torch classifier computes the same logits, trains what the strategy trains, and its weights go back into
the torch model.

Keras reads KERAS_BACKEND once per process, and other tests may have imported it with the torch backend, so the
checks run in one subprocess with KERAS_BACKEND=tensorflow (TensorFlow also starts slowly: one start for all of
them) that prints its findings as JSON; the tests below read them. Skipped where TensorFlow or keras-hub is not
installed (pip install "finetext[tensorflow]"); checked with find_spec, so this process never loads TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras_hub") is None:
    pytest.skip("TensorFlow and keras-hub are not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

CHECKS = r'''
import json, sys
from pathlib import Path

import keras
import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertForSequenceClassification

import finetext.architectures  # noqa: F401  (registers the mean-pooled classifier with the Auto classes)
from finetext.config import ModelConfig
from finetext.models.mean_pooling import build_mean_pooled
from finetext.models.strategies import apply_strategy
from finetext.training.keras.tensorflow_bert import TensorflowBert, probe_batch, tensorflow_support

assert keras.backend.backend() == "tensorflow", keras.backend.backend()
tiny, out = sys.argv[1], Path(sys.argv[2])
LABELS = ["a", "b", "c"]


def mean_pooled(normalize=False, multi_label=False):
    """finetext's mean-pooled classifier on the tiny BERT, saved as an artifact folder and loaded back."""
    torch.manual_seed(1)
    model = build_mean_pooled(AutoModel.from_pretrained(tiny), LABELS, multi_label, normalize)
    folder = out / f"mean-{normalize}-{multi_label}"
    model.save_pretrained(folder, safe_serialization=True)
    return AutoModelForSequenceClassification.from_pretrained(folder)


def cls_pooled():
    torch.manual_seed(1)
    return BertForSequenceClassification.from_pretrained(tiny, num_labels=len(LABELS))


def strategy(model, name, **settings):
    return apply_strategy(model, ModelConfig(model=tiny, strategy=name, **settings))


def train(tensorflow_bert, multi_label=False, steps=3):
    """A few optimizer steps with dropout on, so that every trainable weight moves."""
    rng = np.random.default_rng(2)
    batch = {"input_ids": rng.integers(1, 30522, (8, 12)), "attention_mask": np.ones((8, 12), "int64"),
             "token_type_ids": np.zeros((8, 12), "int64")}
    if multi_label:
        labels = rng.integers(0, 2, (8, len(LABELS))).astype("float32")
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        labels = rng.integers(0, len(LABELS), 8)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = tensorflow_bert.keras_model
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    model.fit(batch, labels, batch_size=4, epochs=steps // 2 + 1, verbose=0)


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def trained_names(tensorflow_bert):
    return sorted(pair.torch_name for pair in tensorflow_bert.pairs if pair.variable.trainable)


def requires_grad_names(model):
    return sorted(name for name, p in model.named_parameters() if p.requires_grad)


def round_trip(model, multi_label=False):
    """Train the Keras copy, write it back; how far the probabilities and how many torch weights moved."""
    tensorflow_bert = TensorflowBert(model)
    before = weights(model)
    train(tensorflow_bert, multi_label)
    tensorflow_bert.copy_to_torch(model)
    rng = np.random.default_rng(3)
    batch = {"input_ids": rng.integers(1, 30522, (5, 16)), "attention_mask": np.ones((5, 16), "int64"),
             "token_type_ids": np.zeros((5, 16), "int64")}
    batch["attention_mask"][0, 9:] = 0
    after = weights(model)
    return {"probability_difference": tensorflow_bert.max_probability_difference(model, batch, multi_label),
            "changed": sorted(n for n in before if not torch.equal(before[n], after[n])),
            "requires_grad": requires_grad_names(model), "trainable": trained_names(tensorflow_bert)}


results = {}
for name, build in {"mean": mean_pooled, "mean_normalized_multi": lambda: mean_pooled(True, True),
                    "cls": cls_pooled}.items():
    model = build()
    tensorflow_bert = TensorflowBert(model)
    probe = probe_batch(model.base_model.config)
    results[name] = {"logit_difference": tensorflow_bert.max_logit_difference(model, probe),
                     "trainable": trained_names(tensorflow_bert), "requires_grad": requires_grad_names(model),
                     "parameters": len(list(model.parameters())),
                     "keras_trainable": len(tensorflow_bert.keras_model.trainable_weights)}
results["mean_trained"] = round_trip(mean_pooled())
results["multi_trained"] = round_trip(mean_pooled(True, True), multi_label=True)
results["cls_trained"] = round_trip(cls_pooled())
results["head"] = round_trip(strategy(mean_pooled(), "head"))
results["head"]["keras_trainable"] = sorted(v.path for v in TensorflowBert(strategy(mean_pooled(), "head"))
                                            .keras_model.trainable_weights)
results["top_k"] = round_trip(strategy(cls_pooled(), "top_k", top_k=1))
results["frozen_embeddings"] = round_trip(strategy(mean_pooled(), "full", freeze_embeddings=True))

from peft import LoraConfig, TaskType, get_peft_model
from transformers import DistilBertConfig, DistilBertForSequenceClassification

lora = get_peft_model(cls_pooled(), LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query", "value"]))
distilbert = DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64))
results["support"] = {"bert": tensorflow_support(cls_pooled()), "lora": tensorflow_support(lora),
                      "distilbert": tensorflow_support(distilbert)}
print("RESULTS " + json.dumps(results))
'''


@pytest.fixture(scope="module")
def results(tiny_model, tmp_path_factory) -> dict:
    """Every check's findings, from one TensorFlow subprocess."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", CHECKS, tiny_model, str(tmp_path_factory.mktemp("keras-tf"))],
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("RESULTS "))


@pytest.mark.parametrize("name", ["mean", "mean_normalized_multi", "cls"])
def test_keras_model_computes_the_torch_logits(results, name):
    found = results[name]
    assert found["logit_difference"] < 1e-5
    assert found["trainable"] == found["requires_grad"]  # full: everything trains
    assert len(found["trainable"]) == found["parameters"] == found["keras_trainable"]


@pytest.mark.parametrize("name", ["mean_trained", "multi_trained", "cls_trained"])
def test_trained_weights_go_back_to_torch(results, name):
    found = results[name]
    assert found["probability_difference"] < 1e-4
    assert found["changed"] == found["requires_grad"]  # every trained weight moved and went back


def test_head_strategy_trains_only_the_classifier(results):
    found = results["head"]
    assert found["requires_grad"] == ["classifier.bias", "classifier.weight"]
    assert found["trainable"] == found["requires_grad"] == found["changed"]
    assert [path.split("/")[0] for path in found["keras_trainable"]] == ["classifier", "classifier"]
    assert found["probability_difference"] < 1e-4


def test_top_k_and_frozen_embeddings_mirror_requires_grad(results):
    top_k = results["top_k"]
    assert top_k["trainable"] == top_k["requires_grad"] == top_k["changed"]
    assert not any(name.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for name in top_k["trainable"])
    assert "bert.pooler.dense.weight" in top_k["trainable"]
    frozen = results["frozen_embeddings"]
    assert "encoder.embeddings.word_embeddings.weight" not in frozen["trainable"]
    assert "encoder.embeddings.position_embeddings.weight" in frozen["trainable"]
    assert frozen["trainable"] == frozen["requires_grad"] == frozen["changed"]


def test_unsupported_models_are_named(results):
    support = results["support"]
    assert support["bert"] is None
    assert "LoRA" in support["lora"]
    assert support["distilbert"]


# --- End to end: `finetext train --engine keras --keras-backend tensorflow`, each in its own process ----------------


def finetext_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    return subprocess.run([sys.executable, "-m", "finetext", *argv], capture_output=True, text=True, env=env,
                          timeout=600)


def tiny_args(tiny_model: str, out) -> list[str]:
    return ["train", "--dataset", "sst2", "--model", tiny_model, "--engine", "keras", "--keras-backend", "tensorflow",
            "--train-samples", "96", "--eval-samples", "48", "--epochs", "2", "--batch-size", "16", "--max-length",
            "64", "--learning-rate", "1e-3", "--batch-tokens", "0", "--output-dir", str(out)]


def test_tensorflow_backend_trains_and_saves_the_standard_artifact(tiny_model, tmp_path):
    from conftest import ARTIFACT_FILES

    out = tmp_path / "tf"
    done = finetext_cli(*tiny_args(tiny_model, out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensorflow -> torch: the converted model's probabilities match TensorFlow's on 48 validation texts" \
        in done.stderr
    assert {p.name for p in out.iterdir()} == ARTIFACT_FILES
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["engine"] == "keras" and [h["step"] for h in metrics["history"]] == [6, 12]
    assert "keras_backend: tensorflow" in (out / "finetext.yaml").read_text()
    # the saved torch model scores what TensorFlow's scored at its best evaluation
    for key in ("accuracy", "f1", "mcc"):
        assert metrics["final"]["validation"][key] == pytest.approx(metrics["best"]["validation"][key], abs=1e-4)
    from transformers import pipeline

    outputs = pipeline("text-classification", model=str(out))(["fine", "awful"])
    assert {o["label"] for o in outputs} <= {"negative", "positive"}


def test_tensorflow_backend_refuses_what_it_cannot_train(tiny_model, tmp_path):
    done = finetext_cli(*tiny_args(tiny_model, tmp_path / "lora"), "--strategy", "lora")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --engine keras with TensorFlow cannot train this model: LoRA (a peft-wrapped model) has no "
        "TensorFlow counterpart in finetext. Use --keras-backend torch, which trains every model and strategy.")
    done = finetext_cli(*tiny_args(tiny_model, tmp_path / "bf16"), "--precision", "bf16")
    assert done.returncode == 2 and "--precision bf16 is not supported on the tensorflow backend" in done.stderr


def test_tensorflow_backend_resumes_a_killed_run_exactly(tiny_model, tmp_path, monkeypatch):
    """As on the torch backend: the Keras variables (dropout seed generators included), optimizer and progress come
    back, so the resumed run ends with the uninterrupted run's history and weights."""
    import torch
    from conftest import without_timing
    from safetensors.torch import load_file
    from test_resume import kill_after

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert finetext_cli(*tiny_args(tiny_model, whole)).returncode == 0
    kill_after(tiny_args(tiny_model, killed)[:-2] + ["--output-dir", str(killed), "--quiet"],
               killed / "checkpoints" / "step-6" / "state.json")
    done = finetext_cli(*tiny_args(tiny_model, killed), "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert without_timing(second["history"]) == without_timing(first["history"])
    a, b = (load_file(d / "model.safetensors") for d in (whole, killed))
    assert all(torch.equal(a[k], b[k]) for k in a)
