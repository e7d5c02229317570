"""The parts of a task model the strategies freeze or adapt, found without knowing its architecture.

The *head* is everything the task model adds around its base model (``model.base_model_prefix``: BERT's
``classifier``, DistilBERT's ``pre_classifier`` + ``classifier``, RoBERTa's two-layer head). The *encoder
layers* are the base model's longest ``nn.ModuleList`` of blocks. This module imports torch; the strategy
modules import it inside their functions so that the registry stays light.
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel

from finetext.errors import FinetextError


def base_model(model: PreTrainedModel) -> nn.Module:
    base = getattr(model, model.base_model_prefix, None)
    if not isinstance(base, nn.Module):
        raise FinetextError(f"{type(model).__name__} has no base model under '{model.base_model_prefix}'.",
                            "Use --strategy full or lora with this architecture.")
    return base


def head_module_names(model: PreTrainedModel) -> list[str]:
    """Top-level modules of the task model that are not its base model: the classification head."""
    return [name for name, module in model.named_children()
            if name != model.base_model_prefix and any(True for _ in module.parameters())]


def encoder_layers(model: PreTrainedModel) -> tuple[str, nn.ModuleList]:
    """The base model's stack of transformer blocks (its longest ModuleList) and its qualified name."""
    stacks = [(name, module) for name, module in base_model(model).named_modules()
              if isinstance(module, nn.ModuleList) and len(module) > 0]
    if not stacks:
        raise FinetextError(f"cannot find the encoder layers of {type(model).__name__}.",
                            "Use --strategy full, head or lora with this architecture.")
    return max(stacks, key=lambda item: len(item[1]))


def head_parameter_names(model: PreTrainedModel) -> set[str]:
    heads = tuple(f"{name}." for name in head_module_names(model))
    return {name for name, _ in model.named_parameters() if name.startswith(heads)}


def linear_layer_names(model: PreTrainedModel) -> list[str]:
    """The short names of the base model's linear layers (what LoRA can adapt)."""
    return sorted({n.rsplit(".", 1)[-1] for n, m in base_model(model).named_modules() if isinstance(m, nn.Linear)})


def set_trainable(model: PreTrainedModel, names: set[str]) -> None:
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
