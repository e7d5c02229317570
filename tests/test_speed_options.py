"""The speed options: tokenization cache, dropout overrides, torch_compile, train_seconds (precision auto and the
other measured settings: test_hardware.py)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from conftest import tiny_run
from transformers import AutoTokenizer

import finetext
from finetext.cli import main
from finetext.config import ModelConfig, TrainingConfig, build
from finetext.data import tokenize
from finetext.models.factory import load_model
from finetext.training.trainer_engine import training_arguments


@pytest.fixture()
def frame(data_dir) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "sst2" / "validation.parquet").head(40)


def test_tokenized_split_is_cached_and_keyed_by_everything_it_depends_on(tiny_model, frame, tmp_path, monkeypatch):
    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    first = tokenize.tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    entries = list((tmp_path / "tokenized").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")

    calls = []
    monkeypatch.setattr(tokenize, "_tokenize", lambda *a: calls.append(a) or pytest.fail("tokenized again"))
    again = tokenize.tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    assert again.to_dict() == first.to_dict() and not calls

    keys = {tokenize.cache_key(frame, tokenizer, 32, "dynamic"),
            tokenize.cache_key(frame, tokenizer, 64, "dynamic"),
            tokenize.cache_key(frame, tokenizer, 32, "max_length"),
            tokenize.cache_key(frame.assign(label=1 - frame["label"]), tokenizer, 32, "dynamic"),
            tokenize.cache_key(frame.assign(text=frame["text"] + "!"), tokenizer, 32, "dynamic")}
    assert len(keys) == 5


def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(tiny_model, frame, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    first = tokenize.tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    entry = next((tmp_path / "tokenized").iterdir())
    for arrow in entry.glob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    rebuilt = tokenize.tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    assert rebuilt.to_dict() == first.to_dict()
    assert "unreadable" in caplog.text


def test_dropout_overrides_reach_the_model_config(tiny_model):
    _, model = load_model(ModelConfig(model=tiny_model), 64, ["a", "b"])
    assert model.config.attention_probs_dropout_prob == 0.0 and model.config.hidden_dropout_prob == 0.1
    _, model = load_model(ModelConfig(model=tiny_model, attention_dropout=None, hidden_dropout=0.2), 64, ["a", "b"])
    assert model.config.attention_probs_dropout_prob == 0.1 and model.config.hidden_dropout_prob == 0.2
    assert model.bert.encoder.layer[0].output.dropout.p == 0.2


def test_dropout_options_are_checked(capsys):
    assert main(["train", "--dataset", "sst2", "--attention-dropout", "1.5"]) == 2
    assert "attention_dropout must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert main(["train", "--dataset", "sst2", "--model", "scratch", "--hidden-dropout", "0.2"]) == 2
    assert "Use --scratch-dropout P instead." in capsys.readouterr().err


@pytest.mark.slow
def test_an_explicit_precision_is_kept_and_train_seconds_are_recorded(tiny_model, tmp_path):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", epochs=1, precision="fp32"))
    saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())
    assert saved["training"]["precision"] == "fp32"
    history = result.metrics["history"]
    assert 0 < history[-1]["train_seconds"] <= result.metrics["train"]["train_runtime_s"]


def test_torch_compile_reaches_the_trainer(tmp_path):
    cfg = build(TrainingConfig, {"torch_compile": True, "precision": "fp32"})
    assert training_arguments(cfg, tmp_path, quiet=True).torch_compile
    assert not training_arguments(build(TrainingConfig, {"precision": "fp32"}), tmp_path, quiet=True).torch_compile
