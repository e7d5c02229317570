"""What this machine can compute fast: the one place where precision 'auto' is decided."""

from __future__ import annotations

import torch


def bf16_supported() -> bool:
    """bfloat16 that runs at native speed: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX.

    Other CPUs emulate bfloat16 and run it slower than fp32, so 'auto' keeps fp32 there."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:  # private helpers, present since torch 2.1; a missing one means "do not rely on it"
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


# On a CPU, autocast converts the weights for every forward pass, a cost that only pays off when the
# matrices are large. Measured on AVX512-BF16/AMX with MiniLM (width 384), batch 8, attention dropout 0:
# bf16 ran 0.87x as fast as fp32 on 13-token sentences (104 tokens per batch; bench/speed_train.py on
# SST-2), level at 1,024 tokens per batch (0.96x with bench/speed_step.py, 1.09x in an earlier run) and
# 1.27x at 4,096 (bench/speed_step.py); 1.20x on IMDB training (~2,200 tokens per batch;
# bench/speed_features.py). 'auto' picks bf16 on a CPU only from 1,024 tokens per batch, and only for
# models at least as wide as MiniLM (the width-64 scratch model stays fp32).
BF16_MIN_TOKENS_PER_BATCH = 1024
BF16_MIN_WIDTH = 384


def model_width(config) -> int | None:
    """A model config's hidden size (BERT-like configs and the scratch model: hidden_size; DistilBERT: dim; a
    mean-pooled model: its encoder's)."""
    if (encoder := getattr(config, "encoder", None)) is not None and not isinstance(encoder, dict):
        config = encoder
    return getattr(config, "hidden_size", None) or getattr(config, "dim", None)


def resolve_precision(precision: str, tokens_per_batch: float | None = None, width: int | None = None) -> str:
    """'auto' becomes 'bf16' where bf16_supported() and, on a CPU, the batches and the model are large enough
    (when known), else 'fp32'; explicit choices stay as they are."""
    if precision != "auto":
        return precision
    if not bf16_supported():
        return "fp32"
    if torch.cuda.is_available():
        return "bf16"
    too_small = (tokens_per_batch is not None and tokens_per_batch < BF16_MIN_TOKENS_PER_BATCH) or (
        width is not None and width < BF16_MIN_WIDTH)
    return "fp32" if too_small else "bf16"
