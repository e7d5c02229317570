"""What a strategy is: the one shape every entry of the STRATEGIES registry has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from finetext.errors import FinetextError

if TYPE_CHECKING:  # the registry is read by config, the CLI and `finetext --help`: no ML library at import
    from torch import nn
    from transformers import PreTrainedModel

    from finetext.config import ModelConfig


@dataclass(frozen=True)
class Strategy:
    """Which parameters of a task model train. Its module keeps torch, transformers and peft imports inside the
    functions, so that reading the registry (config, CLI choices, docs) loads no ML library."""

    name: str
    description: str
    """What trains, in a few words: the config reference and `finetext train --help` show it."""
    learning_rate: float
    """The default peak learning rate (frozen weights move nothing, so fewer trained weights take larger steps)."""
    apply: Callable[[PreTrainedModel, ModelConfig], nn.Module]
    """Freeze or wrap a freshly loaded task model; returns the model to train."""
    refuse: Callable[[ModelConfig], None] | None = None
    """Raise FinetextError for option combinations this strategy cannot train; runs when the config is built.
    None: it trains every configuration."""
    check_model: Callable[[PreTrainedModel, ModelConfig], None] | None = None
    """Raise FinetextError when the model's layers do not fit the options (e.g. too few layers). `compare` runs
    it on a weightless (meta-device) model before the first of its runs; training meets it in `apply`."""
    card_settings: Callable[[ModelConfig], str] | None = None
    """The strategy's own settings as the model card states them, e.g. 'top 2 layers'."""
    fit: str | None = None
    """"module:function" of a training procedure of its own, ``(PreparedRun) -> FitResult``, that replaces the
    engine's loop (fewshot: contrastive pairs, then a logistic regression); imported when a run uses it. None: the
    configured engine trains the model that apply returned."""
    default_epochs: float | None = None
    """Epochs when none are given, instead of the engine's rule of about 1,200 optimizer steps."""
    in_compare_default: bool = True
    """Run by `finetext compare` when no --strategies are named."""

    def summary(self) -> str:
        """One line for the config reference: what trains and the default learning rate."""
        return f"{self.description}, learning rate {short_number(self.learning_rate)} by default"


def short_number(value: float) -> str:
    """5e-05 -> '5e-5', 0.001 -> '1e-3', 2.5e-05 -> '2.5e-5': learning rates as people write them."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def refuse_random_weights(cfg: ModelConfig) -> None:
    """Strategies that freeze weights need weights worth keeping: a new scratch model's are random."""
    if cfg.is_scratch() and not cfg.init_from:
        raise FinetextError(f"--strategy {cfg.strategy} freezes weights, but a new scratch model's are random: "
                            "only --strategy full trains it.",
                            "Train it with --strategy full first, then fine-tune with --init-from DIR.")
