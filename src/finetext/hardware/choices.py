"""Measured hardware choices, cached per machine so that a second run pays nothing.

One JSON file ($FINETEXT_CACHE_DIR/hardware.json, default ~/.cache/finetext/): entries keyed by the machine
(machine.Machine.key: CPU model and flags or GPU name, threads, torch version, kernel environment), the setting,
the model's architecture and width, and a power-of-two bucket of tokens per batch. Safe to delete at any time:
the next run measures again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from finetext.hardware.machine import Machine
from finetext.storage import write_json

CACHE_VERSION = 1


@dataclass(frozen=True)
class Choice:
    """One setting decided for one machine, model and shape, with the timings behind it."""

    setting: str
    """'precision', 'threads', 'fused_optimizer', 'torch_compile', 'backend'."""
    value: str
    seconds: dict[str, float] = field(default_factory=dict)
    """Candidate -> seconds per step (or per batch for inference) as measured."""
    notes: dict[str, str] = field(default_factory=dict)
    """Candidate -> how it was measured when not in full (e.g. 'abandoned after one forward pass')."""
    shape: tuple[int, int] = (0, 0)
    """(batch, tokens per example) of the timed batches."""
    source: str = "measured"
    """'measured' (now), 'cached' (an earlier run on this machine) or 'default' (not measured: why in notes)."""

    def speedup(self, candidate: str, baseline: str) -> float | None:
        """How many times faster candidate ran than baseline (below 1: slower)."""
        if candidate not in self.seconds or baseline not in self.seconds or not self.seconds[candidate]:
            return None
        return self.seconds[baseline] / self.seconds[candidate]

    def line(self) -> str:
        """What was measured and chosen, for the log."""
        if self.source == "default":
            return f"{self.setting} {self.value} ({self.notes.get('why', 'not measured')})"
        timings = ", ".join(f"{name} {seconds:.3f} s" + (" (forward only, stopped)" if name in self.notes else "")
                            for name, seconds in self.seconds.items())
        where = "measured" if self.source == "measured" else "measured earlier on this machine"
        return f"{self.setting} {self.value}: {where} at {self.shape[0]} x {self.shape[1]} tokens: {timings}"


def tokens_bucket(tokens_per_batch: float) -> int:
    """The power of two nearest to tokens_per_batch (at least 64): runs whose batches are about as big share
    one measurement."""
    return 2 ** max(6, round(math.log2(max(1.0, tokens_per_batch))))


def entry_key(machine: Machine, setting: str, model_key: str, bucket: int, mode: str) -> str:
    return f"{machine.key()}/{mode}/{setting}/{model_key}/{bucket}"


def cache_file() -> Path:
    return Path(os.environ.get("FINETEXT_CACHE_DIR") or Path.home() / ".cache" / "finetext") / "hardware.json"


def read_entries() -> dict[str, dict]:
    """Every cached entry; an unreadable or older-format file reads as empty (it is only a cache)."""
    try:
        payload = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION:
        return {}
    entries = payload.get("entries")
    return entries if isinstance(entries, dict) else {}


_memo: dict[str, Choice] = {}
"""This process's choices: a server predicting batch after batch reads the file once."""


def cached_choice(key: str) -> Choice | None:
    if key in _memo:
        return _memo[key]
    entry = read_entries().get(key)
    if not isinstance(entry, dict):
        return None
    try:
        choice = Choice(entry["setting"], entry["value"], dict(entry["seconds"]), dict(entry.get("notes", {})),
                        tuple(entry["shape"]), source="cached")
    except (KeyError, TypeError, ValueError):
        return None
    _memo[key] = choice
    return choice


def store_choice(key: str, choice: Choice, machine: Machine) -> None:
    """Add one entry (atomic replace of the whole file; a concurrent writer's entry may be lost, which only
    means measuring it again)."""
    _memo[key] = replace(choice, source="cached")
    entries = read_entries()
    record = asdict(choice)
    record.pop("source")
    entries[key] = {**record, "machine": machine.describe(), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    with contextlib.suppress(OSError):  # a read-only home: the choice still holds for this run
        write_json(cache_file(), {"version": CACHE_VERSION, "entries": entries})
