"""The speed options: tokenization cache, dropout overrides, precision auto, torch_compile, train_seconds."""

from __future__ import annotations

import functools

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


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> str:
    """2 layers as wide as MiniLM (384): wide enough for bf16 autocast to be worth it where it is native."""
    import torch
    from transformers import BertConfig, BertModel

    from finetext.models.pretrained import packaged_model_dir

    folder = tmp_path_factory.mktemp("wide-bert")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=2, num_attention_heads=6, intermediate_size=384,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(packaged_model_dir()).save_pretrained(folder)
    return str(folder)


def pretend_cpu(monkeypatch, native_bf16: bool) -> None:
    """The hardware is this test's input: a CPU with (AMX) or without native bfloat16."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16)


def autocast_seen(monkeypatch) -> list[bool]:
    """Whether each training forward pass of a BERT classifier ran under bfloat16 autocast."""
    import torch
    from transformers import BertForSequenceClassification

    seen: list[bool] = []
    forward = BertForSequenceClassification.forward

    @functools.wraps(forward)  # the Trainer reads the forward's signature to pick its input columns
    def recording(self, *args, **kwargs):
        if self.training:
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BertForSequenceClassification, "forward", recording)
    return seen


def test_precision_auto_leaves_small_batches_and_narrow_models_in_fp32(monkeypatch):
    """The rule's inputs one at a time, on a CPU that runs bf16 natively (the training tests below show the
    decision reaching every forward pass)."""
    from finetext.hardware import resolve_precision

    pretend_cpu(monkeypatch, native_bf16=True)
    assert resolve_precision("auto", 4096, width=384) == "bf16"
    assert resolve_precision("auto", 100, width=384) == "fp32"  # too little work per batch
    assert resolve_precision("auto", 4096, width=64) == "fp32"  # the scratch model's matrices are too small
    pretend_cpu(monkeypatch, native_bf16=False)
    assert resolve_precision("auto", 4096, width=384) == "fp32"  # emulated bf16 is slower than fp32


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "native_bf16", "expected"), [
    ("imdb", True, "bf16"),    # 16 reviews x 64 tokens = 1,024 tokens per batch, on a CPU with native bf16
    ("imdb", False, "fp32"),   # the same batches where bf16 is only emulated (slower than fp32)
    ("sst2", True, "fp32"),    # 16 sentences of ~13 tokens: too little work per batch for autocast to pay
])
def test_precision_auto_trains_in_what_the_hardware_and_batches_favour(wide_model, tmp_path, monkeypatch, dataset,
                                                                        native_bf16, expected):
    pretend_cpu(monkeypatch, native_bf16)
    seen = autocast_seen(monkeypatch)
    result = finetext.train(tiny_run(wide_model, tmp_path / "run", dataset=dataset, epochs=1, train_samples=32,
                                     eval_samples=16, test_samples=16, report=False))
    saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())
    assert saved["training"]["precision"] == expected
    assert seen and set(seen) == {expected == "bf16"}  # and every training step really ran that way


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
