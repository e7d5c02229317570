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
