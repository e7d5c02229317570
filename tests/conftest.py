"""Shared fixtures: small samples of the real datasets kept in tests/data, and a tiny random BERT built in-test."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import postgres_server, require_postgres

REPO = Path(__file__).resolve().parents[1]
# Seeded samples of the full datasets (tests/data/README.md), so a lone clone runs every test.
DATA_DIR = REPO / "tests" / "data"
# Exactly what a finished run leaves in its output directory.
ARTIFACT_FILES = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "finetext.yaml",
                  "metrics.json", "README.md", "mistakes.json", "report.html", "report"}
# Also for module-scoped fixtures, which pytest sets up before the function-scoped offline_env below.
# The tokenization cache goes to a folder of this test session, never to the user's ~/.cache.
os.environ.update(HF_HUB_OFFLINE="1", FINETEXT_DATA_DIR=str(DATA_DIR), TOKENIZERS_PARALLELISM="false",
                  FINETEXT_CACHE_DIR=tempfile.mkdtemp(prefix="finetext-test-cache-"))


def without_timing(history: list[dict]) -> list[dict]:
    """A run's history minus the wall-clock field, which no two runs share."""
    return [{k: v for k, v in entry.items() if k != "train_seconds"} for entry in history]


@pytest.fixture(autouse=True)
def offline_env(monkeypatch):
    """Tests never touch the network and find the data samples by name."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FINETEXT_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    from finetext.hub import hub_unreachable_reason

    hub_unreachable_reason.cache_clear()
    yield
    hub_unreachable_reason.cache_clear()
    logging.getLogger("finetext").handlers.clear()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a loopback port for this session (tests/postgres_server.py)."""
    with postgres_server(require_postgres()) as server:
        yield server.url


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with random weights and the real MiniLM tokenizer: trains in seconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from finetext.models.pretrained import packaged_model_dir

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(packaged_model_dir()).save_pretrained(folder)
    return str(folder)


def random_classifier(folder: Path, tokenizer_dir: str, seed: int = 0) -> Path:
    """A one-layer random BERT classifier with labels negative/positive, saved as a plain Hugging Face model
    directory (no finetext files): predicts in milliseconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def tiny_run(tiny_model: str, out: Path, **overrides) -> dict:
    """Flat config values for a few-second training run of the tiny model."""
    values = {"model": tiny_model, "output_dir": str(out), "epochs": 2, "batch_size": 16, "learning_rate": 1e-3,
              "max_length": 64, "train_samples": 96, "eval_samples": 48, "test_samples": 48, "quiet": True,
              "logging_steps": 2, "batch_tokens": 0}  # the short-text rule has its own tests (test_short_texts.py)
    values.update(overrides)
    return values
