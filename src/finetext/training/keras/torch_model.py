"""The torch backend's model: finetext's own classifier as a Keras layer (keras.layers.TorchModuleWrapper).

The wrapper turns each torch parameter into a Keras variable over the same storage (trainable when it
requires a gradient), so whatever the strategy froze or wrapped (head, top_k, LoRA adapters) trains as in the
other engines, and after fit the run's torch model already holds the trained weights.
"""

from __future__ import annotations

import contextlib

import keras
import torch
from torch import nn


class LogitsOf(nn.Module):
    """The classifier's logits (float32) for a dict of input tensors; bf16 runs the forward under autocast, as
    the other engines' mixed precision does."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model, self.precision = model, precision

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.model.parameters()).device.type
        autocast = (torch.autocast(device, dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            logits = self.model(**inputs).logits
        return logits.float()


class TorchClassifier(keras.Model):
    """A Keras model whose call is the wrapped torch classifier."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__(name="finetext_classifier")
        self.classifier = keras.layers.TorchModuleWrapper(LogitsOf(model, precision), name="torch_classifier")

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)


class TorchBackendModel:
    """The torch backend's side of the engine: the Keras model to fit, and the torch model that holds its
    weights afterwards."""

    def __init__(self, model: nn.Module, precision: str):
        self.torch_model = model
        self.keras_model = TorchClassifier(model, precision)

    def trained_model(self, sample: dict | None = None, multi_label: bool = False) -> nn.Module:
        return self.torch_model  # the same storage: nothing to convert
