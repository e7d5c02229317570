"""Measured matrix-multiply throughput per precision: what this machine's kernels really deliver."""

from __future__ import annotations

import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SLOW_GFLOPS = 20.0
"""Below this on the small probe matrix, a precision is emulated: its large matmul is not run (it would take
minutes)."""


def matmul_gflops(precision: str, size: int = 2048, repeats: int = 5, device: str | None = None) -> float:
    """Best GFLOP/s of a square size x size matmul in precision; a slow probe (emulated kernels) stops early."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    probe = _best_gflops(precision, 256, 2, device)
    if probe < SLOW_GFLOPS:
        return probe
    return _best_gflops(precision, size, repeats, device)


def _best_gflops(precision: str, size: int, repeats: int, device: str) -> float:
    a = torch.randn(size, size, device=device).to(DTYPES[precision])
    b = torch.randn(size, size, device=device).to(DTYPES[precision])
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def precisions_here() -> list[str]:
    if torch.cuda.is_available():
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"]


def matmul_peaks() -> dict[str, float]:
    """GFLOP/s per precision this machine has."""
    return {precision: matmul_gflops(precision) for precision in precisions_here()}
