"""lora: low-rank adapters on some of the base model's linear layers train, with the head in full."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from finetext.errors import FinetextError
from finetext.models.strategies.base import Strategy, refuse_random_weights

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig

# peft's per-architecture table (the LoRA paper's choice: the attention query and value projections)
# covers most encoders; this fills gaps. The scratch model's attention is torch's nn.MultiheadAttention,
# which reads its projection weights directly (a LoRA wrapper on out_proj would be silently bypassed), so
# its feed-forward layers are adapted. Others get every linear layer.
EXTRA_LORA_TARGETS = {"distilbert": ["q_lin", "v_lin"], "finetext-glove-transformer": ["linear1", "linear2"]}


def lora_targets(model: PreTrainedModel, cfg: ModelConfig) -> list[str] | str:
    """The modules LoRA adapts: the configured ones, else the architecture's default from peft's table."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    from finetext.models.strategies.layers import linear_layer_names

    if cfg.lora_target_modules:
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in cfg.lora_target_modules if t not in names]
        if missing:
            raise FinetextError(f"lora_target_modules {', '.join(missing)} not found in {type(model).__name__}.",
                                f"Its linear layers are named: {', '.join(linear_layer_names(model))}.")
        return list(cfg.lora_target_modules)
    config = model.config
    model_type = config.encoder.model_type if hasattr(config, "encoder") else config.model_type  # mean-pooled
    return PEFT_DEFAULTS.get(model_type) or EXTRA_LORA_TARGETS.get(model_type) or "all-linear"


def check_lora_targets(model: PreTrainedModel, cfg: ModelConfig) -> None:
    lora_targets(model, cfg)


def add_lora(model: PreTrainedModel, cfg: ModelConfig) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    from finetext.models.strategies.layers import head_module_names

    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=lora_targets(model, cfg),
                      # the new head trains in full and is saved with the adapter
                      modules_to_save=head_module_names(model))
    with warnings.catch_warnings():  # peft calls a transformers API that transformers 5 marks deprecated
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora)


def is_lora(model: nn.Module) -> bool:
    """A model wrapped by this strategy: the run saves its adapters before merging them."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


STRATEGY = Strategy(name="lora", description="low-rank adapters plus the head", learning_rate=5e-4,
                    apply=add_lora, refuse=refuse_random_weights, check_model=check_lora_targets,
                    card_settings=lambda cfg: f"rank {cfg.lora_rank}, alpha {cfg.lora_alpha:g}")
