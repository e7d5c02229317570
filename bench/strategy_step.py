"""Seconds per training step of full fine-tuning and of LoRA variants: the measurement behind the default
LoRA target modules (docs/decisions.md, issue 4).

    .venv/bin/python bench/strategy_step.py                 # default model, batch 16 x 100 tokens

One process, the settings measured in turn and then again in the same order (`--repeats`), each time
after warm-up steps; nothing else may run meanwhile (2 cores). Prints the median seconds per step and its
ratio to full fine-tuning.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import print_machine

from finetext.config import ModelConfig
from finetext.models.pretrained import load_classifier
from finetext.models.strategies import apply_strategy, parameter_counts

SETTINGS = {
    "full": {},
    "lora query/value (default)": {"strategy": "lora"},
    "lora every linear, dropout 0.1": {"strategy": "lora", "lora_target_modules": ["query", "key", "value", "dense"]},
    "lora every linear, dropout 0": {"strategy": "lora", "lora_target_modules": ["query", "key", "value", "dense"],
                                     "lora_dropout": 0.0},
}


def seconds_per_step(options: dict, batch: torch.Tensor, labels: torch.Tensor, warmup: int,
                     steps: int) -> tuple[float, float]:
    cfg = ModelConfig(**options)
    torch.manual_seed(0)
    model = apply_strategy(load_classifier(cfg, ["a", "b"]), cfg).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        model(input_ids=batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - started) / steps, parameter_counts(model)["trainable_percent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print_machine(args)
    torch.manual_seed(0)
    batch = torch.randint(1000, 20000, (args.batch_size, args.tokens))
    labels = torch.randint(0, 2, (args.batch_size,))
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    trainable: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, options in SETTINGS.items():
            seconds, trainable[name] = seconds_per_step(options, batch, labels, args.warmup, args.steps)
            times[name].append(seconds)
    full = statistics.median(times["full"])
    print(f"batch {args.batch_size} x {args.tokens} tokens, {args.steps} steps after {args.warmup} warm-up, "
          f"{args.repeats} repeats (median)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32s} {median:6.3f} s/step  x{median / full:5.2f} of full  trainable {trainable[name]:.2f}%  "
              f"(runs: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
