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
