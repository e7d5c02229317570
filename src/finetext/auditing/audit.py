"""`finetext audit`: find the training rows whose labels are probably wrong.

An audit has a fixed life cycle: load the rows and their folds -> open the fold store (resume or start) -> score
each fold's held-out rows with a model that never saw them (finished folds are read back) -> rank the rows with
cleanlab -> write label_issues.csv, out_of_fold.parquet, audit.json and audit.html.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from finetext.auditing.embedding_folds import EmbeddingFolds
from finetext.auditing.findings import Findings, find_issues
from finetext.auditing.page import write_audit_page
from finetext.auditing.rows import AuditRows, load_audit_rows
from finetext.auditing.settings import AuditConfig
from finetext.auditing.store import AuditIdentity, FoldInfo, FoldStore
from finetext.auditing.training_folds import TrainingFolds, training_fingerprint
from finetext.config import TrainConfig, config_from_flat
from finetext.data.files import write_table
from finetext.errors import FinetextError
from finetext.evaluation.report import duration
from finetext.storage import write_json
from finetext.version import __version__

log = logging.getLogger("finetext")

ISSUES = "label_issues.csv"
OUT_OF_FOLD = "out_of_fold.parquet"
SUMMARY = "audit.json"


class FoldMethod(Protocol):
    """How held-out rows get their probabilities: --method embeddings or train."""

    def prepare(self) -> None:
        """The work every fold shares (embedding or tokenizing the rows), done before the first fold to run."""

    def fold(self, fold: int) -> np.ndarray:
        """The probabilities of fold's held-out rows (rows.folds == fold, in row order), from a model fitted on
        the other folds."""


@dataclass(frozen=True)
class AuditResult:
    output_dir: Path
    rows: int
    flagged: int
    estimated_issues: int
    seconds: float
    summary: dict
    """audit.json's contents."""


class Audit:
    def __init__(self, values: dict[str, Any], settings: AuditConfig):
        self.values = {k: v for k, v in values.items() if k != "resume"}  # --resume is the audit's
        self.settings = settings
        self.cfg: TrainConfig = config_from_flat(self.values)
        if not self.cfg.data.has_source():
            raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise FinetextError("finetext audit runs in one process; it was started on several (torchrun / accelerate "
                                "launch).", "Run it with plain `finetext audit`.")
        if self.cfg.report_to or self.cfg.push_to_hub:
            raise FinetextError("finetext audit trains throwaway fold models: --report-to and --push-to-hub do not "
                                "apply.", "Drop them.")
        self.out = Path(self.cfg.output_dir).expanduser()

    def run(self) -> AuditResult:
        started = time.perf_counter()
        rows = load_audit_rows(self.cfg, self.settings.folds)
        store = FoldStore(self.out)
        method = self.fold_method(rows, store)
        store.open(self.identity(rows), self.settings.resume, self.settings.overwrite)
        log.info("auditing %d training rows of %s in %d folds (%s; --method %s)", len(rows.frame), rows.data.source,
                 self.settings.folds, "stratified" if rows.stratified else "shuffled", self.settings.method)
        probabilities, infos = self.score_folds(rows, store, method)
        findings = find_issues(rows, probabilities, self.settings.rank_by, self.settings.filter_by,
                               self.cfg.data.threshold)
        seconds = time.perf_counter() - started
        summary = self.summary(rows, findings, infos, seconds)
        self.write(rows, probabilities, findings, summary)
        return AuditResult(self.out, len(rows.frame), len(findings.ranked_issues), findings.estimated_issues,
                           round(seconds, 1), summary)

    def fold_method(self, rows: AuditRows, store: FoldStore) -> FoldMethod:
        if self.settings.method == "embeddings":
            return EmbeddingFolds(self.cfg, rows, self.out, progress=not self.cfg.quiet)
        return TrainingFolds(self.values, rows, store.fold_dir, self.settings.keep_fold_models)

    def identity(self, rows: AuditRows) -> AuditIdentity:
        model = self.cfg.model.init_from or self.cfg.model.model
        training = training_fingerprint(self.values) if self.settings.method == "train" else ""
        return AuditIdentity(rows.fingerprint(), self.settings.method, str(model), training)

    def score_folds(self, rows: AuditRows, store: FoldStore, method: FoldMethod) -> tuple[np.ndarray, list[FoldInfo]]:
        """Every row's out-of-fold probabilities; folds finished before (a resumed audit) are read back."""
        k = self.settings.folds
        probabilities = np.zeros((len(rows.frame), len(rows.data.label_names)), dtype=np.float32)
        infos: list[FoldInfo] = []
        spent: list[float] = []
        for fold in range(k):
            held = rows.folds == fold
            info = store.finished(fold)
            if info is not None:
                probabilities[held] = store.probabilities(fold)
                log.info("fold %d/%d: finished before, kept (%d rows)", fold + 1, k, info.rows)
            else:
                if not spent:
                    method.prepare()
                began = time.perf_counter()
                probabilities[held] = method.fold(fold)
                info = FoldInfo(fold, int(held.sum()), round(time.perf_counter() - began, 2),
                                round(agreement(probabilities[held], rows.labels[held], self.cfg.data.threshold), 5))
                store.save(info, probabilities[held])
                spent.append(info.seconds)
                left = k - fold - 1
                estimate = f"; about {duration(np.mean(spent) * left)} left ({left} folds)" if left else ""
                log.info("fold %d/%d: %d held-out rows scored in %s, out-of-fold accuracy %.2f%s", fold + 1, k,
                         info.rows, duration(info.seconds), 100 * info.accuracy, estimate)
            infos.append(info)
        return probabilities, infos

    def summary(self, rows: AuditRows, findings: Findings, infos: list[FoldInfo], seconds: float) -> dict:
        s = self.settings
        oof = sum(i.accuracy * i.rows for i in infos) / max(1, sum(i.rows for i in infos))
        return {
            "finetext_version": __version__, "source": rows.data.source, "rows": len(rows.frame),
            "label_names": rows.data.label_names, "multi_label": rows.data.multi_label,
            "method": s.method, "folds": s.folds, "stratified": rows.stratified, "rank_by": s.rank_by,
            "filter_by": s.filter_by, "model": str(self.cfg.model.init_from or self.cfg.model.model),
            "strategy": self.cfg.model.strategy if s.method == "train" else "head (logistic regression)",
            "seconds": round(seconds, 1), "fold_seconds": round(sum(i.seconds for i in infos), 1),
            "out_of_fold_accuracy": round(oof, 5), "folds_detail": [vars(i) for i in infos],
            **findings.summary(),
        }

    def write(self, rows: AuditRows, probabilities: np.ndarray, findings: Findings, summary: dict) -> None:
        table = row_table(rows, probabilities, findings)
        write_table(table, self.out / OUT_OF_FOLD)
        issues = table.iloc[findings.ranked_issues].drop(columns=[c for c in table.columns if c.startswith("prob_")])
        issues = issues.assign(rank=np.arange(1, len(issues) + 1))
        write_table(issues, self.out / ISSUES)
        write_json(self.out / SUMMARY, summary)
        write_audit_page(self.out, summary, issues.head(200))


def agreement(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """How often the out-of-fold prediction is the given label (multi-label: the exact label set)."""
    if len(labels) == 0:
        return 0.0
    if labels.ndim == 2:
        return float(((probabilities >= threshold) == (labels > 0.5)).all(axis=1).mean())
    return float((probabilities.argmax(axis=1) == labels).mean())


def row_table(rows: AuditRows, probabilities: np.ndarray, findings: Findings) -> pd.DataFrame:
    """Every audited row: its id, texts, given and suggested label, quality score, fold and probabilities."""
    frame, names = rows.frame, rows.data.label_names
    if rows.data.multi_label:
        given = [[names[i] for i in np.flatnonzero(v)] for v in rows.labels]
        join = "|".join
        given, suggested = [join(g) for g in given], [join(s) for s in findings.suggested]
    else:
        given, suggested = [names[int(i)] for i in rows.labels], findings.suggested
    table = pd.DataFrame({"row_id": rows.row_ids, "text": frame["text"].to_numpy()})
    if "text_pair" in frame.columns:
        table["text_pair"] = frame["text_pair"].to_numpy()
    table = table.assign(given_label=given, suggested_label=suggested, score=np.round(findings.quality, 6),
                         fold=rows.folds)
    for i, name in enumerate(names):
        table[f"prob_{name}"] = np.round(probabilities[:, i], 6)
    return table
