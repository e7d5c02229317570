"""What the benchmark scripts share: where the data is, and one measured configuration in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def data_dir() -> str:
    """$FINETEXT_DATA_DIR, else ../shared/data beside the checkout (as in CI)."""
    return os.environ.get("FINETEXT_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared/data"))


def run_child(script: str, argv: list[str], name: str) -> tuple[dict, float]:
    """Run `python script *argv --report FILE` in its own process (nothing shared with the parent's
    memory); return the JSON it wrote to FILE and its peak RSS in MB (wait4's ru_maxrss)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.Popen([sys.executable, script, *argv, "--report", str(report)])
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"the {name} run failed (status {status})")
        return json.loads(report.read_text()), usage.ru_maxrss / 1024


def read_rows(path: Path) -> list[dict]:
    """The results a bench appended to path (one JSON object a line), so a rerun skips what was measured."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def append_row(path: Path, row: dict, done: list[dict]) -> None:
    """Print row, keep it in done and append it to path at once: an interrupted bench loses nothing measured."""
    print(json.dumps(row), flush=True)
    done.append(row)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def print_machine(args=None) -> None:
    """The machine every figure of this run belongs to (not repeated by child processes)."""
    if args is not None and getattr(args, "child", None):
        return
    from finetext.hardware.machine import current_machine

    print(f"machine: {current_machine().describe()}", flush=True)


def print_calibration() -> None:
    """Every choice finetext measured during this run (its cache), with the timing of every candidate."""
    from finetext.hardware.doctor import cached_rows
    from finetext.hardware.machine import current_machine

    print("\nfinetext's measured choices in this run (mode, setting, chosen, model, tokens per batch: timings):")
    for row in cached_rows(current_machine().key()):
        print(f"  {row['mode']} {row['setting']} **{row['value']}**, {row['model']}, ~{row['tokens_per_batch']}: "
              f"{row['timings']}")
