"""Seconds per training step of the scratch GloVe transformer: the measurements behind its defaults (no
dropout on the attention probabilities, width 64) and behind leaving fused AdamW to the speed work
(docs/decisions.md, issue 5).

    .venv/bin/python bench/scratch_step.py                  # batch 16 x 200 tokens, fp32

One process; the settings are measured in turn and then again in the same order (`--repeats`), each after
warm-up steps; nothing else may run meanwhile (2 cores). Prints the median seconds per step, its ratio to
the default, the share of the step that the torch profiler attributes to drawing dropout masks
(aten::bernoulli_), and the cost of the positional encoding computed on each call.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import torch
from common import print_machine
from torch.profiler import profile

from finetext.config import ModelConfig
from finetext.models.scratch import build_scratch, sinusoidal_positions

SETTINGS = {  # name -> (ModelConfig options, attention-probability dropout, fused AdamW)
    "default (width 64)": ({}, 0.0, False),
    "attention dropout 0.1": ({}, 0.1, False),
    "width 128": ({"scratch_width": 128}, 0.0, False),
    "fused AdamW": ({}, 0.0, True),
}


def build(options: dict, attention_dropout: float, fused: bool):
    torch.manual_seed(0)
    _, model = build_scratch(ModelConfig(model="scratch", **options), 256, ["neg", "pos"], False)
    for layer in model.glove_transformer.encoder.layers:
        layer.self_attn.dropout = attention_dropout
    return model.train(), torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)


def train_steps(model, optimizer, batch: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def seconds_per_step(setting: tuple, batch, labels, warmup: int, steps: int) -> float:
    model, optimizer = build(*setting)
    train_steps(model, optimizer, batch, labels, warmup)
    started = time.perf_counter()
    train_steps(model, optimizer, batch, labels, steps)
    return (time.perf_counter() - started) / steps


def dropout_mask_share(setting: tuple, batch, labels) -> float:
    """The fraction of profiled CPU time spent in aten::bernoulli_ (drawing dropout masks)."""
    model, optimizer = build(*setting)
    train_steps(model, optimizer, batch, labels, 1)
    with profile() as prof:
        train_steps(model, optimizer, batch, labels, 3)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key == "aten::bernoulli_") / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print_machine(args)
    torch.manual_seed(0)
    batch = torch.randint(3, 100_000, (args.batch_size, args.tokens))
    labels = torch.randint(0, 2, (args.batch_size,))
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, setting in SETTINGS.items():
            times[name].append(seconds_per_step(setting, batch, labels, args.warmup, args.steps))
    default = statistics.median(times["default (width 64)"])
    print(f"batch {args.batch_size} x {args.tokens} tokens, {args.steps} steps after {args.warmup} warm-up, "
          f"{args.repeats} repeats (median)")
    positions = timeit.timeit(lambda: sinusoidal_positions(args.tokens, 64, batch.device, torch.float32), number=1000)
    print(f"positional encoding, {args.tokens} x 64: {positions * 1000:.0f} microseconds per call "
          f"({100 * positions / 1000 / default:.3f}% of a default step)")
    for name, values in times.items():
        median = statistics.median(values)
        share = dropout_mask_share(SETTINGS[name], batch, labels)
        print(f"{name:24s} {median:6.3f} s/step  x{median / default:5.2f} of default  dropout masks "
              f"{100 * share:4.1f}% of the step  (runs: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
