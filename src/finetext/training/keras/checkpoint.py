"""The keras engine's checkpoints: Keras variables to safetensors, progress to JSON, the torch RNG.

Every Keras variable of the model (weights and, on the tensorflow backend, the dropout seed generators' state)
and of the optimizer (its step count, moments, accumulators) is saved by position; nothing is pickled. The
layout beside it is the native engine's (training.checkpoint): step-N folders with state.json and the RNG,
best/ for the best weights, published atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from safetensors.numpy import load_file, save_file

from finetext.errors import FinetextError
from finetext.storage import write_json
from finetext.training import checkpoint as ckpt

VARIABLES = "keras.safetensors"
"""Model and optimizer variables, keyed model.<i> and optimizer.<i> in Keras's order."""


def save_variables(path: Path, model_variables: list, optimizer_variables: list = ()) -> None:
    arrays = {f"model.{i}": as_array(v) for i, v in enumerate(model_variables)}
    arrays.update({f"optimizer.{i}": as_array(v) for i, v in enumerate(optimizer_variables)})
    save_file(arrays, str(path))


def as_array(variable) -> np.ndarray:
    return np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))


def load_variables(path: Path, model: keras.Model) -> None:
    """The model's and its (built) optimizer's variables from a checkpoint's file."""
    with ckpt.reading(path):
        arrays = load_file(str(path))
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        saved = sum(key.startswith(prefix + ".") for key in arrays)
        if saved != len(variables):
            raise FinetextError(f"{path} holds {saved} {prefix} variables, this run has {len(variables)}.",
                                "Resume with the settings of the interrupted run.")
        for i, variable in enumerate(variables):
            variable.assign(np.reshape(arrays[f"{prefix}.{i}"], variable.shape))  # scalars come back as (1,)


def best_weights(path: Path, model: keras.Model) -> list[np.ndarray]:
    """The best model's weights, as EarlyStopping keeps them (model.get_weights order)."""
    with ckpt.reading(path):
        arrays = load_file(str(path))
    return [np.reshape(arrays[f"model.{i}"], w.shape) for i, w in enumerate(model.weights)]


def save_checkpoint(folder: Path, model: keras.Model, progress: dict) -> None:
    folder.mkdir(parents=True)
    save_variables(folder / VARIABLES, model.variables, model.optimizer.variables)
    ckpt.save_rng(folder, 0)
    write_json(folder / ckpt.STATE, progress)


def load_progress(folder: Path) -> dict:
    with ckpt.reading(folder / ckpt.STATE):
        return json.loads((folder / ckpt.STATE).read_text(encoding="utf-8"))
