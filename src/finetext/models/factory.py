"""Which model family a config asks for, and its tokenizer and classifier: a pretrained checkpoint, a new
scratch model on GloVe, or an earlier finetext run (init_from)."""

from __future__ import annotations

from finetext.config import ModelConfig
from finetext.models import pretrained, scratch, transfer
from finetext.models.glove import glove_source


def resolve_model_config(cfg: ModelConfig) -> ModelConfig:
    """Check the model source before any data is read; with init_from, name the model it holds."""
    if cfg.init_from:
        return transfer.with_source_model(cfg)
    if cfg.is_scratch():
        glove_source(cfg.glove_file)
    else:
        pretrained.resolve_model_path(cfg.model)
    return cfg


def load_model(cfg: ModelConfig, max_length: int, label_names: list[str], multi_label: bool = False):
    """(tokenizer, classifier with the data's labels)."""
    if cfg.init_from:
        return transfer.load_for_transfer(cfg, label_names, multi_label)
    if cfg.is_scratch():
        return scratch.build_scratch(cfg, max_length, label_names, multi_label)
    return pretrained.load_tokenizer(cfg), pretrained.load_classifier(cfg, label_names, multi_label)


def config_source(cfg: ModelConfig) -> str | None:
    """Where the model's config.json is (for checks on a weightless copy); None for a new scratch model."""
    if cfg.init_from:
        return str(transfer.source_artifact(cfg).path)
    return None if cfg.is_scratch() else pretrained.resolve_model_path(cfg.model)

