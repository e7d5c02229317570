"""One MiniLM training step at fixed shapes in each precision, and what `precision: auto` chose there.

    .venv/bin/python bench/speed_step.py                 # batch 8, lengths 16, 128 and 512
    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/speed_step.py   # the same CPU with bf16 kernels emulated

Each setting loads a fresh model, runs 2 warm-up steps, then times --steps steps (forward, backward, fused AdamW)
on random token ids with no padding; fp32 and bf16 autocast, attention dropout 0.1 (the checkpoint's: SDPA's
unfused path) and 0 (finetext's default). A setting whose first step takes over --give-up times fp32's is timed
on that one step (an emulated precision would take minutes). Then, in a fresh cache, finetext's calibration
(finetext.hardware.calibrate.choose_precision) measures the same model and shape and its choice is printed beside
the timings, so the choice can be checked against them.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import torch
from common import print_machine
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from finetext.models.pretrained import packaged_model_dir


def fresh_model(attention_dropout: float):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        packaged_model_dir(), num_labels=2, attention_probs_dropout_prob=attention_dropout).train()


def step_seconds(length: int, batch: int, bf16: bool, attention_dropout: float, steps: int,
                 give_up: float | None) -> tuple[float, int]:
    """Seconds per step and how many steps were timed."""
    model = fresh_model(attention_dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    ids = torch.randint(1000, 20000, (batch, length))
    labels = torch.randint(0, 2, (batch,))

    def step() -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    first = step()
    if give_up is not None and first > give_up:
        return first, 1
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps, steps


def auto_choice(length: int, batch: int) -> str:
    """What precision auto chooses for this shape, measured now in an empty cache, with its timings."""
    import os

    from finetext.hardware import choices
    from finetext.hardware.calibrate import Workload, choose_precision

    with tempfile.TemporaryDirectory() as cache:
        os.environ["FINETEXT_CACHE_DIR"] = cache
        choices._memo.clear()
        started = time.perf_counter()
        choice = choose_precision(fresh_model(0.0), Workload("train", batch, batch * length, 10**6, length))
        took = time.perf_counter() - started
    timings = ", ".join(f"{k} {v:.3f} s" + (" (forward only, stopped)" if k in choice.notes else "")
                        for k, v in choice.seconds.items())
    return f"auto chose **{choice.value}** (calibration: {timings} per forward+backward pass; took {took:.1f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16,128,512")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--give-up", type=float, default=5.0, help="time one step only when it is this many times "
                        "slower than fp32's")
    args = parser.parse_args()
    print_machine(args)
    hf_logging.set_verbosity_error()
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for length in map(int, args.lengths.split(",")):
        print(f"\n{length * args.batch_size} tokens per batch ({args.batch_size} x {length})\n")
        print("| precision | attention dropout | s/step | x fp32 (same dropout) | steps timed |")
        print("| --- | --- | --- | --- | --- |")
        fp32: dict[float, float] = {}
        for bf16, dropout in itertools.product((False, True), (0.1, 0.0)):
            give_up = args.give_up * fp32[dropout] if bf16 else None
            seconds, timed = step_seconds(length, args.batch_size, bf16, dropout, args.steps, give_up)
            fp32.setdefault(dropout, seconds)
            print(f"| {'bf16' if bf16 else 'fp32'} | {dropout} | {seconds:.3f} | {fp32[dropout] / seconds:.2f} | "
                  f"{timed} |", flush=True)
        print(f"\n{auto_choice(length, args.batch_size)}", flush=True)


if __name__ == "__main__":
    main()
