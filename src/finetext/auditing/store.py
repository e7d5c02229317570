"""What an audit keeps on disk while it runs, so that a killed audit loses only the fold it was in.

OUTPUT_DIR/audit-state.json names what is being audited (the rows' fingerprint, the method and the model); each
finished fold writes folds/fold-K/probabilities.npy (its held-out rows' probabilities) and fold.json, atomically.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from finetext.errors import FinetextError
from finetext.storage import write_bytes, write_json

STATE = "audit-state.json"
FOLDS = "folds"
PROBABILITIES = "probabilities.npy"
FOLD_INFO = "fold.json"
EMBEDDINGS = "embeddings.npy"
"""--method embeddings: every row's embedding, computed once."""
RESULTS = ("label_issues.csv", "audit.json", "audit.html", "out_of_fold.parquet")


@dataclass(frozen=True)
class AuditIdentity:
    """What the stored folds were computed from; a resumed audit must match it."""

    rows: str
    """AuditRows.fingerprint(): rows, labels and folds."""
    method: str
    model: str
    training: str
    """The fold runs' training settings (--method train), as a digest; '' for embeddings."""


@dataclass(frozen=True)
class FoldInfo:
    fold: int
    rows: int
    seconds: float
    accuracy: float
    """Out-of-fold accuracy against the given labels (multi-label: exact match)."""


class FoldStore:
    def __init__(self, out: Path):
        self.out = out

    def fold_dir(self, fold: int) -> Path:
        return self.out / FOLDS / f"fold-{fold}"

    def open(self, identity: AuditIdentity, resume: bool, overwrite: bool) -> None:
        """Start an audit in out, or continue the one there; refuse to mix two audits' folds."""
        state = self.out / STATE
        started = state.is_file() or (self.out / FOLDS).is_dir()
        if started and not (resume or overwrite):
            raise FinetextError(f"{self.out} holds an audit already.", "Pass --resume to continue it (finished folds "
                                "are kept), or --overwrite to start over.")
        if started and resume and state.is_file():
            saved = json.loads(state.read_text(encoding="utf-8"))
            changed = [k for k, v in asdict(identity).items() if saved.get(k) != v]
            if changed:
                raise FinetextError(f"the audit in {self.out} was made with other {', '.join(changed)}.",
                                    "Resume with the original data and flags, or pass --overwrite to start over.")
        if overwrite or not resume:
            shutil.rmtree(self.out / FOLDS, ignore_errors=True)
            for name in (STATE, EMBEDDINGS, *RESULTS):
                (self.out / name).unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(state, asdict(identity))

    def finished(self, fold: int) -> FoldInfo | None:
        info = self.fold_dir(fold) / FOLD_INFO
        if not (info.is_file() and (self.fold_dir(fold) / PROBABILITIES).is_file()):
            return None
        return FoldInfo(**json.loads(info.read_text(encoding="utf-8")))

    def probabilities(self, fold: int) -> np.ndarray:
        return np.load(self.fold_dir(fold) / PROBABILITIES)

    def save(self, info: FoldInfo, probabilities: np.ndarray) -> None:
        """The probabilities first, then fold.json: a fold counts as finished only when both are there."""
        buffer = io.BytesIO()
        np.save(buffer, probabilities.astype(np.float32))
        write_bytes(self.fold_dir(info.fold) / PROBABILITIES, buffer.getvalue())
        write_json(self.fold_dir(info.fold) / FOLD_INFO, asdict(info))
