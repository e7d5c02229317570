"""The Engine of the registry's 'keras' entry, and what it refuses or fills in when the config is built.

This module imports no Keras at its top: config, the CLI and the docs read the refusals and defaults without it;
fit() loads Keras with the chosen backend, then the modules beside this one.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from finetext.config import TrainingConfig
from finetext.errors import FinetextError
from finetext.training import checkpoint as ckpt
from finetext.training.fit import FitResult, PreparedRun
from finetext.training.keras.backend import check_installed, chosen_backend, import_keras


def refuse_keras(cfg: TrainingConfig) -> None:
    """What the keras engine cannot run, said before any work: missing packages, several processes, options
    that belong to other loops."""
    backend = chosen_backend(cfg.keras_backend)
    check_installed(backend)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise FinetextError("the keras engine trains in one process (Keras's distribution API runs on JAX only).",
                            "Use --engine native (or trainer) under torchrun / accelerate launch.")
    if cfg.save_steps is not None:
        raise FinetextError("save_steps is a native-engine option: the keras engine checkpoints at each "
                            "evaluation.", "Use --eval-strategy steps --eval-steps N with --engine keras.")
    if cfg.torch_compile:
        raise FinetextError("--torch-compile is not supported by the keras engine (Keras runs its step eagerly "
                            "here).", "Drop --torch-compile, or use --engine native.")
    if cfg.fused_optimizer:
        raise FinetextError("--fused-optimizer is a PyTorch AdamW option: the keras engine uses Keras's AdamW.",
                            "Drop --fused-optimizer.")
    if backend == "tensorflow" and cfg.precision in ("bf16", "fp16"):
        raise FinetextError(f"--precision {cfg.precision} is not supported on the tensorflow backend (it trains in "
                            "fp32).", "Use --precision fp32 or auto, or --keras-backend torch.")


def resolve_keras(cfg: TrainingConfig) -> TrainingConfig:
    """The backend, and the hardware settings Keras decides itself: its own AdamW (no fused kernel), eager steps
    (no torch.compile); TensorFlow trains in fp32 on all of this process's threads (the torch measurements of
    precision and threads say nothing about it)."""
    backend = chosen_backend(cfg.keras_backend)
    cfg = replace(cfg, keras_backend=backend, fused_optimizer=False, torch_compile=False)
    if backend == "tensorflow":
        cfg = replace(cfg, precision="fp32", attention_kernel=cfg.attention_kernel or "fused",
                      threads=cfg.threads or torch.get_num_threads())
    return cfg


class KerasEngine:
    """Keras 3 compile / fit / predict with callbacks, on the torch or tensorflow backend."""

    def latest_checkpoint(self, folder: Path) -> Path | None:
        return ckpt.latest_checkpoint(folder)

    def fit(self, run: PreparedRun) -> FitResult:
        cfg = run.config.training
        keras = import_keras(cfg.keras_backend)
        if cfg.keras_backend == "tensorflow":  # Keras's own generators drive its dropout there; on torch, torch's RNG
            keras.utils.set_random_seed(cfg.seed)  # (seeded by the run) does, and this would import TensorFlow
        from finetext.training.keras.loop import KerasLoop

        return KerasLoop(run, backend_model(run)).fit()


def backend_model(run: PreparedRun):
    """The Keras model to fit and the way back to the run's torch model, for the run's backend."""
    cfg = run.config.training
    if cfg.keras_backend == "torch":
        from finetext.training.keras.torch_model import TorchBackendModel

        return TorchBackendModel(run.model, cfg.precision)
    from finetext.training.keras.tensorflow_model import TensorflowBackendModel

    return TensorflowBackendModel(run)
