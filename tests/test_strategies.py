"""Fine-tuning strategies: which parameters train, exact counts, and LoRA artifacts that load everywhere."""

import json

import pytest
import torch
from conftest import ARTIFACT_FILES, tiny_run
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

import finetext
from finetext.config import ModelConfig
from finetext.errors import FinetextError
from finetext.models.strategies import apply_strategy, parameter_counts

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

HIDDEN, LAYERS, FFN, LABELS = 32, 3, 64, 2


def tiny_classifier() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                        intermediate_size=FFN, max_position_embeddings=32, num_labels=LABELS)
    return BertForSequenceClassification(config)


def trainable_names(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


HEAD = HIDDEN * LABELS + LABELS
LAYER = 4 * (HIDDEN * HIDDEN + HIDDEN) + (HIDDEN * FFN + FFN) + (FFN * HIDDEN + HIDDEN) + 2 * 2 * HIDDEN
POOLER = HIDDEN * HIDDEN + HIDDEN


def test_full_trains_everything():
    model = apply_strategy(tiny_classifier(), ModelConfig(strategy="full"))
    counts = parameter_counts(model)
    assert counts["trainable"] == counts["total"] and counts["trainable_percent"] == 100.0


def test_head_trains_only_the_new_classifier():
    model = apply_strategy(tiny_classifier(), ModelConfig(strategy="head"))
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    assert parameter_counts(model)["trainable"] == HEAD


def test_top_k_trains_the_last_layers_the_pooler_and_the_head():
    model = apply_strategy(tiny_classifier(), ModelConfig(strategy="top_k", top_k=1))
    names = trainable_names(model)
    assert all(n.startswith(("bert.encoder.layer.2.", "bert.pooler.", "classifier.")) for n in names)
    assert parameter_counts(model)["trainable"] == LAYER + POOLER + HEAD
    two = apply_strategy(tiny_classifier(), ModelConfig(strategy="top_k", top_k=2))
    assert parameter_counts(two)["trainable"] == 2 * LAYER + POOLER + HEAD


def test_top_k_beyond_the_layer_count_is_refused():
    with pytest.raises(FinetextError, match="--top-k 4 is out of range: the model has 3 encoder layers"):
        apply_strategy(tiny_classifier(), ModelConfig(strategy="top_k", top_k=4))


def test_lora_trains_rank_r_updates_of_query_and_value_plus_the_head():
    model = apply_strategy(tiny_classifier(), ModelConfig(strategy="lora", lora_rank=4))
    per_module = 4 * (HIDDEN + HIDDEN)  # A: r x in, B: out x r
    assert parameter_counts(model)["trainable"] == LAYERS * 2 * per_module + HEAD
    lora_names = {n for n in trainable_names(model) if "lora_" in n}
    assert {n.split(".")[-4] for n in lora_names} == {"query", "value"}


def test_unknown_lora_target_names_the_layers_there_are():
    with pytest.raises(FinetextError, match="lora_target_modules q_proj not found in BertForSequenceClassification"):
        apply_strategy(tiny_classifier(), ModelConfig(strategy="lora", lora_target_modules=["q_proj"]))


@pytest.mark.parametrize("engine", ["trainer", "native"])
def test_head_strategy_leaves_the_pretrained_weights_untouched(tiny_model, tmp_path, data_dir, engine):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "head", dataset="sst2", strategy="head", epochs=1,
                                     engine=engine))
    before = load_file(f"{tiny_model}/model.safetensors")
    after = load_file(result.output_dir / "model.safetensors")
    shared = [k for k in before if f"bert.{k}" in after]
    assert len(shared) == len(before) > 30
    assert all(torch.equal(before[k], after[f"bert.{k}"]) for k in shared)
    total = sum(v.numel() for v in after.values())
    assert result.metrics["parameters"] == {"strategy": "head", "total": total, "trainable": 32 * 2 + 2,
                                            "trainable_percent": pytest.approx(100 * 66 / total, abs=1e-4)}


@pytest.fixture(scope="module")
def lora_run(tiny_model, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("lora") / "run"
    return finetext.train(tiny_run(tiny_model, out, dataset="sst2", data_dir=str(data_dir), strategy="lora",
                                   learning_rate=1e-2))


def test_lora_artifact_is_merged_and_keeps_its_adapter(lora_run):
    assert {p.name for p in lora_run.output_dir.iterdir()} == ARTIFACT_FILES | {"adapter"}
    assert {p.name for p in (lora_run.output_dir / "adapter").iterdir()} >= {"adapter_config.json",
                                                                              "adapter_model.safetensors"}
    merged = load_file(lora_run.output_dir / "model.safetensors")
    assert not any("lora" in k for k in merged)  # a plain BERT classifier
    parameters = lora_run.metrics["parameters"]
    assert parameters["strategy"] == "lora" and parameters["trainable_percent"] < 5
    assert json.loads((lora_run.output_dir / "metrics.json").read_text())["parameters"] == parameters


def test_lora_artifact_loads_in_pipeline_with_real_labels_and_agrees_with_predict(lora_run):
    from transformers import pipeline

    texts = ["a gem of a film", "dreadful and long"]
    theirs = pipeline("text-classification", model=str(lora_run.output_dir), top_k=None)(texts)
    ours = finetext.predict(lora_run.output_dir, texts)
    for mine, their in zip(ours, theirs, strict=True):
        assert {e["label"] for e in their} == {"negative", "positive"}
        for entry in their:
            assert mine["probabilities"][entry["label"]] == pytest.approx(entry["score"], abs=1e-5)


def test_lora_changed_the_model(lora_run, tiny_model):
    base = load_file(f"{tiny_model}/model.safetensors")
    merged = load_file(lora_run.output_dir / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(base[name], merged[f"bert.{name}"])  # the adapter was folded in
    key = "encoder.layer.0.attention.self.key.weight"
    assert torch.equal(base[key], merged[f"bert.{key}"])  # key is not a LoRA target


def test_adapter_only_artifact_predicts_like_the_merged_one(tiny_model, tmp_path, data_dir):
    common = {"dataset": "sst2", "strategy": "lora", "learning_rate": 1e-2, "engine": "native", "epochs": 1}
    merged = finetext.train(tiny_run(tiny_model, tmp_path / "merged", **common))
    small = finetext.train(tiny_run(tiny_model, tmp_path / "small", lora_merge=False, **common))
    files = {p.name for p in small.output_dir.iterdir()}
    assert "model.safetensors" not in files and "adapter" in files
    assert small.metrics["final"] == merged.metrics["final"]
    texts = ["a gem of a film", "dreadful and long", "fine"]
    for a, b in zip(finetext.predict(small.output_dir, texts), finetext.predict(merged.output_dir, texts),
                    strict=True):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
    report = finetext.evaluate(small.output_dir, dataset="sst2", split="validation", eval_samples=48, progress=False)
    assert report["accuracy"] == pytest.approx(merged.metrics["final"]["validation"]["accuracy"])


def test_saved_lora_model_is_a_plain_transformers_model(lora_run):
    model = AutoModelForSequenceClassification.from_pretrained(lora_run.output_dir)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == {0: "negative", 1: "positive"}
