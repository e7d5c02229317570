"""Transfer: start from a model finetext trained before (``--init-from DIR``), with a new classifier when the
labels differ, as the tutorial moves an AG News model (4 topics) to IMDB (2 sentiments)."""

from __future__ import annotations

import logging
from dataclasses import replace

from torch import nn
from transformers import PreTrainedModel

import finetext.architectures  # noqa: F401 - registers finetext's architectures with the Auto classes
from finetext.artifacts import Artifact, open_artifact
from finetext.config import DEFAULT_MODEL, ModelConfig
from finetext.errors import FinetextError
from finetext.models.pretrained import load_classifier, load_tokenizer
from finetext.models.strategies.layers import head_module_names

log = logging.getLogger("finetext")


def source_artifact(cfg: ModelConfig) -> Artifact:
    """The init_from directory, checked: a finished model with full weights."""
    try:
        artifact = open_artifact(cfg.init_from)
    except FinetextError as exc:
        raise FinetextError(f"--init-from: {exc.problem}", exc.fix) from None
    if artifact.adapter_only():
        raise FinetextError(f"--init-from {artifact.path} holds only a LoRA adapter (trained with lora_merge false).",
                            "Start from a run trained with lora_merge true, which saves merged weights.")
    return artifact


def with_source_model(cfg: ModelConfig) -> ModelConfig:
    """cfg with ``model`` set to the init_from model's own (e.g. 'scratch'), so the saved config, the default
    learning rate and the model card describe what is really trained. A different --model is refused."""
    artifact = source_artifact(cfg)
    source_model = artifact.config.model.model if artifact.config else str(artifact.path)
    if cfg.model not in (DEFAULT_MODEL, source_model):
        raise FinetextError(f"--model {cfg.model} conflicts with --init-from {artifact.path}, which holds a "
                            f"'{source_model}' model.", "Drop --model: with --init-from the model comes from DIR.")
    return replace(cfg, model=source_model)


def load_for_transfer(cfg: ModelConfig, label_names: list[str], multi_label: bool):
    """Tokenizer and model of the init_from directory, with the data's labels. The classifier is kept when the
    labels are the same (continued training) and replaced by a freshly initialised one otherwise."""
    artifact = source_artifact(cfg)
    source = replace(cfg, model=str(artifact.path), init_from=None)  # loaded like any local checkpoint
    try:
        tokenizer, model = load_tokenizer(source), load_classifier(source, label_names, multi_label)
    except FinetextError as exc:
        raise FinetextError(f"--init-from: {exc.problem}", "Check the directory is the output of a finished "
                            "finetext run.") from None
    if artifact.label_names == label_names:
        log.info("init_from %s: same labels (%s); its classifier is kept", artifact.path, ", ".join(label_names))
    else:
        reinitialise_head(model)  # all of it: transformers re-creates only the parts whose shape changed
        log.info("init_from %s: its labels (%s) differ from the data's (%s); the classifier is replaced by a new one",
                 artifact.path, ", ".join(artifact.label_names) or "none", ", ".join(label_names))
    return tokenizer, model


def reinitialise_head(model: PreTrainedModel) -> None:
    """Every layer of the classification head as transformers initialises new ones: normal(0, 0.02) weights."""
    std = getattr(model.config, "initializer_range", 0.02)
    for name in head_module_names(model):
        for module in getattr(model, name).modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
