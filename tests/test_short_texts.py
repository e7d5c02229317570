"""Short texts: batches grown to batch_tokens, the learning rate scaled, the word embeddings frozen; applied once."""

from __future__ import annotations

import math

import datasets
import pytest
import torch
import yaml
from conftest import tiny_run, without_timing
from safetensors.torch import load_file

import finetext
from finetext.config import config_from_flat
from finetext.training.short_texts import apply_plan, plan_for


def examples(tokens: int, count: int = 40) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"input_ids": [[101] * tokens] * count})


def config(**values):
    return config_from_flat({"dataset": "sst2", "learning_rate": 4e-5, **values})


@pytest.mark.parametrize(("tokens", "batch_size", "growth"), [
    (13, 8, 2),    # 104 tokens per batch: 208 fits in 256, 416 does not
    (3, 8, 4),     # at most 4x, however short
    (13, 16, 1),   # 208 tokens: doubling would pass 256, so the batch stays (the embeddings are still frozen)
])
def test_short_batches_grow_within_the_token_budget(tokens, batch_size, growth):
    plan = plan_for(config(batch_size=batch_size), examples(tokens))
    assert (plan.growth, plan.freeze_embeddings, plan.mean_tokens) == (growth, True, tokens)


@pytest.mark.parametrize("values", [
    {"batch_size": 8, "strategy": "head"},        # the head strategy freezes the body already
    {"batch_size": 8, "strategy": "lora"},
    {"batch_size": 8, "batch_tokens": 0},          # turned off
    {"batch_size": 32},                            # 32 x 13 = 416 tokens: not short
    {"batch_size": 8, "model": "scratch"},
])
def test_the_plan_leaves_other_runs_alone(values):
    assert not plan_for(config(**values), examples(13)).applies()


def test_an_explicit_freeze_embeddings_is_kept():
    plan = plan_for(config(batch_size=8, freeze_embeddings=False), examples(13))
    assert (plan.growth, plan.freeze_embeddings) == (2, False)


def test_applying_the_plan_scales_the_learning_rate_and_freezes_the_embeddings(tiny_model):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    cfg = config(batch_size=4)
    resolved = apply_plan(cfg, plan_for(cfg, examples(13)), model)
    assert resolved.training.batch_size == 16 and resolved.training.batch_tokens == 0
    assert resolved.training.learning_rate == pytest.approx(4e-5 * math.sqrt(4))
    assert resolved.model.freeze_embeddings is True
    assert not model.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "word_embeddings" not in n)


@pytest.mark.slow
def test_a_short_text_run_records_what_it_did_and_reruns_identically_from_its_finetext_yaml(tiny_model, tmp_path):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "first", dataset="sst2", batch_size=8, epochs=1,
                                     report=False, batch_tokens=256))
    saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())
    assert saved["training"]["batch_size"] == 16 and saved["training"]["batch_tokens"] == 0
    assert saved["training"]["learning_rate"] == pytest.approx(1e-3 * math.sqrt(2))
    assert saved["model"]["freeze_embeddings"] is True
    assert result.metrics["history"][-1]["step"] == 6  # 96 sentences in batches of 16
    trained = load_file(result.output_dir / "model.safetensors")
    initial = load_file(f"{tiny_model}/model.safetensors")
    key = next(k for k in trained if k.endswith("word_embeddings.weight"))
    assert torch.equal(trained[key], initial[key.removeprefix("bert.")] if key.removeprefix("bert.") in initial
                       else initial[key])
    again = finetext.train(result.output_dir / "finetext.yaml", output_dir=str(tmp_path / "again"))
    assert without_timing(again.metrics["history"]) == without_timing(result.metrics["history"])
    assert yaml.safe_load((again.output_dir / "finetext.yaml").read_text())["training"] == saved["training"]
