"""`finetext doctor`: the machine, its measured matmul peaks, the cached hardware choices and the versions."""

from __future__ import annotations

import importlib.metadata
import platform

from finetext.hardware.choices import cache_file, read_entries
from finetext.hardware.machine import current_machine
from finetext.hardware.peaks import matmul_peaks

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "peft", "sentence-transformers", "onnxruntime",
            "optuna", "scikit-learn", "fastapi")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("finetext", *PACKAGES):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def cached_rows(machine_key: str) -> list[dict]:
    """This machine's cached choices, one row each (other machines' entries are left out)."""
    rows = []
    for key, entry in sorted(read_entries().items()):
        parts = key.split("/")
        if len(parts) != 5 or parts[0] != machine_key or not isinstance(entry, dict):
            continue
        _, mode, setting, model, bucket = parts
        timings = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in entry.get("seconds", {}).items())
        rows.append({"mode": mode, "setting": setting, "model": model, "tokens_per_batch": int(bucket),
                     "value": entry.get("value"), "timings": timings, "measured_at": entry.get("measured_at")})
    return rows


def doctor_report(measure: bool = True) -> dict:
    machine = current_machine()
    return {"machine": machine.describe(), "machine_key": machine.key(),
            "matmul_gflops": {k: round(v, 1) for k, v in matmul_peaks().items()} if measure else {},
            "cache_file": str(cache_file()), "cached_choices": cached_rows(machine.key()), "versions": versions()}


def format_report(report: dict) -> str:
    lines = [f"machine: {report['machine']} (id {report['machine_key']})"]
    if report["matmul_gflops"]:
        peaks = report["matmul_gflops"]
        base = peaks.get("fp32") or 1.0
        measured = ", ".join(f"{name} {value:.0f} ({value / base:.2f}x fp32)" for name, value in peaks.items())
        lines.append(f"matmul peak, GFLOP/s (best square 2048 matmul; an emulated one only probed at 256): {measured}")
        emulated = [name for name, value in peaks.items() if name != "fp32" and value < base]
        if emulated:
            lines.append(f"  slower than fp32 here (emulated): {', '.join(emulated)}")
    lines.append(f"cached choices ({report['cache_file']}):")
    if not report["cached_choices"]:
        lines.append("  none yet: the first run long enough to measure will add them")
    for row in report["cached_choices"]:
        lines.append(f"  {row['mode']:<9} {row['setting']:<15} {row['value']:<6} {row['model']}, "
                     f"~{row['tokens_per_batch']} tokens/batch: {row['timings']}")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines)
