"""Which parameters train: the whole model, the classification head, the top k layers, or LoRA adapters.

The rules are architecture-agnostic. The *head* is everything the task model adds around its base model
(``model.base_model_prefix``: BERT's ``classifier``, DistilBERT's ``pre_classifier`` + ``classifier``,
RoBERTa's two-layer head). The *encoder layers* are the base model's longest ``nn.ModuleList`` of blocks;
``top_k`` unfreezes the last k of them plus every base parameter registered after them (BERT's pooler,
GPT-2's final LayerNorm), because those sit between the top layer and the head.
"""

from __future__ import annotations

import logging
import warnings

from torch import nn
from transformers import PreTrainedModel

from finetext.config import ModelConfig
from finetext.errors import FinetextError

log = logging.getLogger("finetext")


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


def set_trainable(model: PreTrainedModel, names: set[str]) -> None:
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)


def freeze_all_but_head(model: PreTrainedModel) -> None:
    set_trainable(model, head_parameter_names(model))


def freeze_all_but_top(model: PreTrainedModel, k: int) -> None:
    """Train the last k encoder layers, what follows them in the base model, and the head."""
    stack_name, layers = encoder_layers(model)
    if not 1 <= k <= len(layers):
        raise FinetextError(f"--top-k {k} is out of range: the model has {len(layers)} encoder layers.",
                            f"Choose 1 to {len(layers)} (or --strategy full).")
    prefix = model.base_model_prefix
    first_trained = f"{prefix}.{stack_name}.{len(layers) - k}."
    base_names = [n for n, _ in model.named_parameters() if n.startswith(f"{prefix}.")]
    start = next(i for i, n in enumerate(base_names) if n.startswith(first_trained))
    set_trainable(model, set(base_names[start:]) | head_parameter_names(model))


# peft's per-architecture table (the LoRA paper's choice: the attention query and value projections)
# covers most encoders; this fills gaps. The scratch model's attention is torch's nn.MultiheadAttention,
# which reads its projection weights directly (a LoRA wrapper on out_proj would be silently bypassed), so
# its feed-forward layers are adapted. Others get every linear layer.
EXTRA_LORA_TARGETS = {"distilbert": ["q_lin", "v_lin"], "finetext-glove-transformer": ["linear1", "linear2"]}


def lora_targets(model: PreTrainedModel, cfg: ModelConfig) -> list[str] | str:
    """The modules LoRA adapts: the configured ones, else the architecture's default from peft's table."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if cfg.lora_target_modules:
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in cfg.lora_target_modules if t not in names]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in base_model(model).named_modules()
                             if isinstance(m, nn.Linear)})
            raise FinetextError(f"lora_target_modules {', '.join(missing)} not found in {type(model).__name__}.",
                                f"Its linear layers are named: {', '.join(linear)}.")
        return list(cfg.lora_target_modules)
    model_type = model.config.model_type
    return PEFT_DEFAULTS.get(model_type) or EXTRA_LORA_TARGETS.get(model_type) or "all-linear"


def add_lora(model: PreTrainedModel, cfg: ModelConfig) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=lora_targets(model, cfg),
                      # the new head trains in full and is saved with the adapter
                      modules_to_save=head_module_names(model))
    with warnings.catch_warnings():  # peft calls a transformers API that transformers 5 marks deprecated
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora)


def apply_strategy(model: PreTrainedModel, cfg: ModelConfig) -> nn.Module:
    """Freeze or wrap the model for cfg.strategy; log how many parameters will train."""
    if cfg.strategy == "head":
        freeze_all_but_head(model)
    elif cfg.strategy == "top_k":
        freeze_all_but_top(model, cfg.top_k)
    elif cfg.strategy == "lora":
        model = add_lora(model, cfg)
    if cfg.freeze_embeddings:  # head and lora have frozen them already
        model.get_input_embeddings().weight.requires_grad_(False)
    counts = parameter_counts(model)
    log.info("strategy %s: %s of %s parameters train (%.2f%%)", cfg.strategy, f"{counts['trainable']:,}",
             f"{counts['total']:,}", counts["trainable_percent"])
    return model


def parameter_counts(model: nn.Module) -> dict:
    """Trainable and total parameters. peft keeps a frozen copy of the head beside the trained one
    (`original_module`); it is not counted, so a LoRA total is the model's plus its adapters."""
    total = sum(p.numel() for name, p in model.named_parameters() if ".original_module." not in name)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "trainable_percent": round(100 * trainable / total, 4)}


def is_lora(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
