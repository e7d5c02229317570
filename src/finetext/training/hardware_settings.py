"""A run's hardware-dependent settings (precision, threads, fused optimizer, torch.compile): what the config
says, and for each left to 'auto' (None), what finetext.hardware.calibrate measured on this machine."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import datasets
import torch
import yaml
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from torch import nn

from finetext.config import TrainingConfig
from finetext.hardware.calibrate import (
    Workload,
    choose_compile,
    choose_fused_optimizer,
    choose_precision,
    choose_threads,
    emulation_warning,
    split_choice,
)
from finetext.hardware.choices import Choice

log = logging.getLogger("finetext")


def training_workload(cfg: TrainingConfig, train: datasets.Dataset, max_length: int, processes: int) -> Workload:
    """The batches this run will train on: their size, mean real tokens and how many optimizer steps."""
    lengths = [len(ids) for ids in train["input_ids"]]
    mean_length = sum(lengths) / max(1, len(lengths))
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * processes
    steps = math.ceil((cfg.epochs or 1) * math.ceil(len(lengths) / per_step))
    return Workload("train", cfg.batch_size, mean_length * cfg.batch_size, steps, max_length)


def resolve_hardware_settings(cfg: TrainingConfig, model: nn.Module, workload: Workload,
                              state: PartialState) -> TrainingConfig:
    """cfg with precision, threads, fused_optimizer and torch_compile decided; logs one line saying how. In a
    multi-process run the main process measures and the others take its choices, so all run the same."""
    resolved = [None]
    if state.is_main_process:
        resolved = [measured_settings(cfg, model, workload)]
    if state.num_processes > 1:
        broadcast_object_list(resolved)
    settings, line, warning = resolved[0]
    if warning and state.is_main_process:
        log.warning(warning)
    if line and state.is_main_process:
        log.info("hardware: %s", line)
    if settings["threads"] != torch.get_num_threads():
        torch.set_num_threads(settings["threads"])
    return replace(cfg, **settings)


def measured_settings(cfg: TrainingConfig, model: nn.Module, workload: Workload) -> tuple[dict, str, str | None]:
    """The resolved values, the log line and the emulation warning (or None)."""
    choices: list[Choice] = []
    precision, measured, warning, kernel = cfg.precision, None, None, cfg.attention_kernel
    if precision == "auto" or (precision == "bf16" and model_on_cpu(model)):
        measured = choose_precision(model, workload, cfg.precision)
        warning = emulation_warning(measured, cfg.precision)
        precision, fastest_kernel = split_choice(measured.value if cfg.precision == "auto" else
                                                 fastest_of(measured, cfg.precision))
        kernel = kernel or fastest_kernel
        if cfg.precision == "auto":
            choices.append(measured)
    threads = cfg.threads
    if threads is None:
        choices.append(choice := choose_threads(model, workload, precision))
        threads = int(choice.value)
    fused = cfg.fused_optimizer
    if fused is None:
        choices.append(choice := choose_fused_optimizer(model, workload))
        fused = choice.value == "fused"
    compile_model = cfg.torch_compile
    if compile_model is None:
        eager = measured.seconds.get(precision) if measured is not None else None
        choices.append(choice := choose_compile(model, workload, precision, eager))
        compile_model = choice.value == "true"
    settings = {"precision": precision, "threads": threads, "fused_optimizer": fused, "torch_compile": compile_model,
                "attention_kernel": kernel or "fused"}
    return settings, "; ".join(c.line() for c in choices), warning


HARDWARE_FIELDS = ("precision", "threads", "fused_optimizer", "torch_compile", "attention_kernel")


def saved_hardware_settings(cfg: TrainingConfig, run_config: Path) -> TrainingConfig:
    """cfg with the settings it leaves to measurement taken from an interrupted run's config, so a resumed run
    continues exactly as it started (and on another machine, as it started, not as that machine measures)."""
    try:
        saved = (yaml.safe_load(run_config.read_text(encoding="utf-8")) or {}).get("training", {})
    except (OSError, yaml.YAMLError):
        return cfg
    unset = {name: saved[name] for name in HARDWARE_FIELDS
             if name in saved and getattr(cfg, name) in (None, "auto")}
    return replace(cfg, **unset)


def fastest_of(choice: Choice, precision: str) -> str:
    """The faster attention kernel measured for an explicitly requested precision ('bf16' or 'bf16+math')."""
    timed = {name: s for name, s in choice.seconds.items() if split_choice(name)[0] == precision}
    return min(timed, key=timed.get) if timed else precision


def model_on_cpu(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "cpu"
