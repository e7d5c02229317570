"""--method train: each fold is an ordinary finetext training run that then scores its held-out fold.

A fold's run trains on the other folds with the user's training settings and validates on the held-out fold;
it keeps its last weights (no checkpoint is chosen by the held-out labels, which are the ones under audit), and
its final validation pass gives the held-out rows' probabilities. Every row is tokenized once, before the first
fold, into the tokenization cache entries the fold runs look up (their training rows and their held-out rows), so
K runs do not tokenize the data K times; a resumed audit finds them there too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from finetext.artifacts import CHECKPOINTS, METRICS
from finetext.auditing.rows import AuditRows
from finetext.config import TrainConfig, config_from_flat, flatten
from finetext.data.files import write_table
from finetext.data.sources import as_named, files_overrides
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.training.checkpoint import RUN_CONFIG
from finetext.training.run import TrainingRun

log = logging.getLogger("finetext")

FOLD_RUN_FIXED = {"load_best_model_at_end": False, "early_stopping_patience": None, "report": False,
                  "report_to": None, "push_to_hub": False, "hub_repo_id": None, "run_name": None, "resume": False}
"""What every fold run is, whatever the flags: no choice made with the held-out labels, nothing published."""


class FoldRun(TrainingRun):
    """A training run that also hands over its final validation logits (the held-out fold's)."""

    held_out_logits: np.ndarray | None = None

    def save(self, run, fit, final, evaluation):
        self.held_out_logits = evaluation.logits["validation"]
        return super().save(run, fit, final, evaluation)


def training_fingerprint(values: dict[str, Any]) -> str:
    """The fold runs' settings that change their models (where they write, and how they report, do not)."""
    kept = {k: v for k, v in sorted(flatten(config_from_flat(values).to_dict()).items())
            if k not in {"output_dir", "quiet", "overwrite_output_dir", "resume", *FOLD_RUN_FIXED}}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


class TrainingFolds:
    def __init__(self, values: dict[str, Any], rows: AuditRows, store_dir, keep_models: bool):
        self.values, self.rows, self.keep_models = values, rows, keep_models
        self.store_dir = store_dir
        """fold -> its folder (FoldStore.fold_dir)."""
        self.tokenized = False

    def fold_config(self, fold: int) -> TrainConfig:
        folder: Path = self.store_dir(fold)
        data, frame, held = self.rows.data, self.rows.frame, self.rows.folds == fold
        train_file = write_table(as_named(frame[~held], data), folder / "data" / "train.parquet")
        held_file = write_table(as_named(frame[held], data), folder / "data" / "held-out.parquet")
        model_dir = folder / "model"
        interrupted = (model_dir / CHECKPOINTS / RUN_CONFIG).is_file()
        values = {**self.values, **files_overrides(data, train_file, held_file), **FOLD_RUN_FIXED,
                  "output_dir": str(model_dir), "test_file": None, "resume": interrupted,
                  "overwrite_output_dir": not interrupted}
        if interrupted:
            log.info("fold %d: continuing its interrupted run from %s", fold + 1, model_dir / CHECKPOINTS)
        return config_from_flat(values)

    def prepare(self) -> None:
        """Every fold's training and held-out rows as tokenization cache entries, from one pass over the rows (a
        pretrained model's tokenizer, truncated texts; otherwise each fold run tokenizes its own, cached too)."""
        cfg = config_from_flat(self.values)
        if self.tokenized or not cfg.data.cache_tokenized or cfg.data.long_text == "chunk" or cfg.model.init_from \
                or cfg.model.is_scratch():
            return
        from finetext.data.tokenize import cache_row_subsets
        from finetext.models.pretrained import load_tokenizer

        folds = self.rows.folds
        subsets = [np.flatnonzero(test(folds, k)) for k in np.unique(folds) for test in (np.not_equal, np.equal)]
        cache_row_subsets(self.rows.frame, subsets, load_tokenizer(cfg.model), cfg.data.max_length, cfg.data.padding)
        self.tokenized = True

    def fold(self, fold: int) -> np.ndarray:
        run = FoldRun(self.fold_config(fold))
        result = run.run()
        logits = run.held_out_logits
        assert logits is not None
        folder = self.store_dir(fold)
        shutil.copyfile(result.output_dir / METRICS, folder / METRICS)
        if not self.keep_models:
            shutil.rmtree(result.output_dir, ignore_errors=True)
        shutil.rmtree(folder / "data", ignore_errors=True)
        return sigmoid(logits) if self.rows.data.multi_label else softmax(logits)
