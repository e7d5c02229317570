"""The tensorflow backend's side of the keras engine: keras-hub's BERT holding a copy of the run's torch model,
trained by TensorFlow, then copied back and checked before anything is saved."""

from __future__ import annotations

import logging

import numpy as np
from torch import nn

from finetext.errors import FinetextError
from finetext.training.fit import PreparedRun
from finetext.training.keras.tensorflow_bert import TensorflowBert

log = logging.getLogger("finetext")

PROBABILITY_TOLERANCE = 1e-4
"""Largest absolute difference of a class probability allowed between TensorFlow's trained model and the torch
model it is converted into, on up to 64 validation texts; both run in fp32, so the two differ only by the
order of floating-point sums (measured: about 1e-7)."""


class TensorflowBackendModel:
    """The Keras model to fit (TensorflowBert's), and the run's torch model with its trained weights."""

    def __init__(self, run: PreparedRun):
        self.torch_model = run.model
        self.bert = TensorflowBert(run.model)
        self.keras_model = self.bert.keras_model

    def trained_model(self, sample: dict[str, np.ndarray], multi_label: bool = False) -> nn.Module:
        """The torch model after the trained weights are copied into it, once its probabilities are TensorFlow's on
        the sample; otherwise nothing is saved."""
        self.bert.copy_to_torch(self.torch_model)
        difference = self.bert.max_probability_difference(self.torch_model, sample, multi_label)
        rows = len(next(iter(sample.values())))
        if not difference <= PROBABILITY_TOLERANCE:
            raise FinetextError(f"the model converted from TensorFlow disagrees with it on {rows} validation texts "
                                f"(probabilities differ by up to {difference:.3g}, more than {PROBABILITY_TOLERANCE}): "
                                "nothing was saved.", "Report this as a finetext bug; train with --keras-backend "
                                "torch meanwhile.")
        log.info("tensorflow -> torch: the converted model's probabilities match TensorFlow's on %d validation texts "
                 "(largest difference %.2g, allowed %g)", rows, difference, PROBABILITY_TOLERANCE)
        return self.torch_model
