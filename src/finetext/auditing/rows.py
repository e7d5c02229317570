"""The rows an audit scores, and the fold each belongs to.

Every training row is audited, validation is never carved from train (the folds hold rows out instead), and each
row keeps its position in the training file (its row id, which --exclude-rows reads). Folds are stratified by label
and seeded, so a resumed audit gets the same folds.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from finetext.config import TrainConfig
from finetext.data.sources import LabelledData, label_array, load_labelled_data
from finetext.errors import FinetextError

log = logging.getLogger("finetext")


@dataclass(frozen=True)
class AuditRows:
    """The labelled training rows under audit, in the order the folds and probabilities use."""

    data: LabelledData
    """The loaded data; data.splits['train'] is the frame audited (text, text_pair, label)."""
    row_ids: np.ndarray
    """Each row's 0-based position in the training file."""
    folds: np.ndarray
    """Each row's fold, 0..K-1: the fold whose model never saw it and scores it."""
    stratified: bool
    """Whether the folds keep the class proportions (single-label data with K examples of every class)."""

    @property
    def frame(self) -> pd.DataFrame:
        return self.data.splits["train"]

    @property
    def labels(self) -> np.ndarray:
        """Class ids, or (multi-label) the 0/1 matrix."""
        return label_array(self.frame["label"])

    def fingerprint(self) -> str:
        """The rows, labels and folds: a resumed audit must score the same rows the same way."""
        digest = hashlib.sha256()
        frame = self.frame.assign(label=self.frame["label"].map(repr))
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digest.update(self.row_ids.tobytes())
        digest.update(self.folds.tobytes())
        digest.update(repr(self.data.label_names).encode())
        return digest.hexdigest()[:16]


def load_audit_rows(cfg: TrainConfig, folds: int) -> AuditRows:
    """The training rows (after --exclude-rows, --train-samples and bad-row handling) and their folds."""
    data = load_labelled_data(cfg.data, cfg.training.seed, carve=False)
    if "train" not in data.splits:
        raise FinetextError("the data has no train split to audit.", "Pass --train-file or a dataset with train.")
    train = data.splits["train"]
    if len(train) < 2 * folds:
        raise FinetextError(f"the training data has {len(train)} rows: too few for {folds} folds.",
                            f"Audit at least {2 * folds} rows, or use fewer --folds.")
    assigned, stratified = assign_folds(label_array(train["label"]), folds, cfg.training.seed)
    return AuditRows(data, np.asarray(data.source_rows["train"], dtype=np.int64), assigned, stratified)


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, bool]:
    """Each row's fold: stratified by class where every class has at least ``folds`` rows, else (and for
    multi-label data, which scikit-learn cannot stratify) a seeded shuffle."""
    assigned = np.empty(len(labels), dtype=np.int64)
    single = labels.ndim == 1
    stratified = single and int(np.unique(labels, return_counts=True)[1].min()) >= folds
    if single and not stratified:
        log.warning("a class has fewer than %d training rows: the folds are not stratified", folds)
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if stratified
                else KFold(folds, shuffle=True, random_state=seed))
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels if stratified else None)):
        assigned[held_out] = fold
    return assigned, bool(stratified)
