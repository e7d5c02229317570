"""What ``finetext predict --input`` is asked (finetext.inference.streaming runs it). Imports nothing heavy, so
the CLI builds its flags from it without loading pandas or torch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CHUNK_ROWS = 10_000
"""Rows read, predicted and written at a time: a few MB of texts and tokens, and a part file per chunk."""


@dataclass(frozen=True)
class StreamRequest:
    """predict_file's arguments (finetext.api.predict_file documents each)."""

    model_dir: Path
    input_path: Path
    output_path: Path | None = None
    """None: default_output(input_path)."""
    text_column: str | None = None
    text_pair_column: str | None = None
    batch_size: int = 32
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    precision: str = "auto"
    backend: str = "auto"
    trust_remote_code: bool = False
    progress: bool = True
    resume: bool = False
    """Continue the interrupted prediction in OUTPUT.parts/ after its last finished part."""
    overwrite: bool = False
    """Remove an interrupted prediction's OUTPUT.parts/ and start again."""

    @property
    def output(self) -> Path:
        return Path(self.output_path) if self.output_path else default_output(Path(self.input_path))


def default_output(input_path: Path) -> Path:
    """<input stem>.predictions.parquet beside the input."""
    return input_path.with_name(f"{input_path.stem}.predictions.parquet")


def is_main_process() -> bool:
    """Rank 0 of torchrun / accelerate launch (their RANK), or a lone process."""
    return os.environ.get("RANK", "0") == "0"
