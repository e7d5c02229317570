"""One MiniLM training step at fixed shapes: fp32 or bf16 autocast, attention dropout 0.1 or 0.

    .venv/bin/python bench/speed_step.py                 # batch 8, lengths 128 and 512

The figures behind `attention_dropout: 0` and `precision: auto` (finetext/hardware.py): with attention
dropout, SDPA runs its unfused path in training; bf16 autocast pays only on large enough matrices. Each
setting loads a fresh model, runs 2 warm-up steps, then times --steps steps (forward, backward, fused
AdamW) on random token ids with no padding.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from common import print_machine
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from finetext.models.pretrained import packaged_model_dir


def step_seconds(length: int, batch: int, bf16: bool, attention_dropout: float, steps: int) -> float:
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        packaged_model_dir(), num_labels=2, attention_probs_dropout_prob=attention_dropout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    ids = torch.randint(1000, 20000, (batch, length))
    labels = torch.randint(0, 2, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="128,512")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print_machine(args)
    hf_logging.set_verbosity_error()
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| tokens per batch | precision | attention dropout | s/step | x fp32 + dropout 0.1 |")
    print("| --- | --- | --- | --- | --- |")
    for length in map(int, args.lengths.split(",")):
        base = None
        for bf16, dropout in itertools.product((False, True), (0.1, 0.0)):
            seconds = step_seconds(length, args.batch_size, bf16, dropout, args.steps)
            base = base or seconds
            print(f"| {length * args.batch_size} | {'bf16' if bf16 else 'fp32'} | {dropout} | {seconds:.3f} | "
                  f"{base / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
