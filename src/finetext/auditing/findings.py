"""From out-of-fold probabilities to label issues, with cleanlab's confident learning (not a re-implementation).

cleanlab estimates the joint distribution of given and true labels from the probabilities (the confident joint),
flags the rows it expects to be mislabelled (find_label_issues) and orders them by a label quality score; the
per-class error rates and the most confused class pairs come from the same estimate. Multi-label data goes through
cleanlab.multilabel_classification, which treats each label as its own yes/no question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from finetext.auditing.rows import AuditRows


@dataclass(frozen=True)
class ClassNoise:
    label: str
    rows: int
    """Rows given this label."""
    flagged: int
    """cleanlab's estimate of how many of them are mislabelled ("Label Issues")."""
    error_rate: float
    """The estimated share of the rows given this label that are mislabelled ("Label Noise")."""


@dataclass(frozen=True)
class ConfusedPair:
    given: str
    likely: str
    """Single-label: the label the rows probably should have; multi-label: '(absent)' or '(present)', whether the
    label is wrongly missing or wrongly there."""
    rows: float
    """Estimated number of rows."""
    share: float
    """That number as a share of every audited row."""


@dataclass(frozen=True)
class Findings:
    """What the audit concludes, per row and overall."""

    quality: np.ndarray
    """Every row's label quality score (0..1, lower: more likely mislabelled)."""
    suggested: list
    """Every row's most likely label (multi-label: the list of labels over the threshold)."""
    ranked_issues: np.ndarray
    """Positions (into the audited rows) of the flagged rows, most likely mislabelled first."""
    estimated_issues: int
    """cleanlab's estimate of the number of mislabelled rows (num_label_issues), which may differ from the number
    flagged."""
    health: float
    """cleanlab's overall label health score (1 - estimated error rate)."""
    per_class: list[ClassNoise]
    confused: list[ConfusedPair]

    def summary(self) -> dict:
        return {"estimated_issues": self.estimated_issues, "flagged": len(self.ranked_issues),
                "health_score": round(self.health, 5), "per_class": [asdict(c) for c in self.per_class],
                "confused_pairs": [asdict(p) for p in self.confused]}


def find_issues(rows: AuditRows, probabilities: np.ndarray, rank_by: str, filter_by: str, threshold: float,
                top_pairs: int = 10) -> Findings:
    if rows.data.multi_label:
        return multi_label_findings(rows, probabilities, rank_by, filter_by, threshold, top_pairs)
    return single_label_findings(rows, probabilities, rank_by, filter_by, top_pairs)


def single_label_findings(rows: AuditRows, probabilities: np.ndarray, rank_by: str, filter_by: str,
                          top_pairs: int) -> Findings:
    from cleanlab.count import estimate_joint, num_label_issues
    from cleanlab.dataset import overall_label_health_score, rank_classes_by_label_quality
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, names = rows.labels.astype(int), rows.data.label_names
    quality = get_label_quality_scores(labels, probabilities, method=rank_by)
    ranked = find_label_issues(labels, probabilities, filter_by=filter_by, return_indices_ranked_by=rank_by,
                               n_jobs=1)
    classes = rank_classes_by_label_quality(labels, probabilities).set_index("Class Index")
    counts = np.bincount(labels, minlength=len(names))
    per_class = [ClassNoise(names[i], int(counts[i]), int(classes.loc[i, "Label Issues"]),
                            round(float(classes.loc[i, "Label Noise"]), 5)) for i in range(len(names))]
    joint = estimate_joint(labels, probabilities)  # joint[given, true], summing to 1
    pairs = [(joint[g, t], g, t) for g in range(len(names)) for t in range(len(names)) if g != t]
    confused = [ConfusedPair(names[g], names[t], round(float(p * len(labels)), 1), round(float(p), 5))
                for p, g, t in sorted(pairs, reverse=True)[:top_pairs] if p > 0]
    return Findings(quality, [names[i] for i in probabilities.argmax(axis=1)], np.asarray(ranked, dtype=np.int64),
                    int(num_label_issues(labels, probabilities)),
                    float(overall_label_health_score(labels, probabilities, verbose=False)), per_class, confused)


def multi_label_findings(rows: AuditRows, probabilities: np.ndarray, rank_by: str, filter_by: str,
                         threshold: float, top_pairs: int) -> Findings:
    from cleanlab.multilabel_classification.dataset import (
        common_multilabel_issues,
        overall_multilabel_health_score,
        rank_classes_by_multilabel_quality,
    )
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    matrix, names = rows.labels, rows.data.label_names
    labels = [list(np.flatnonzero(row)) for row in matrix]
    quality = get_label_quality_scores(labels, probabilities, method=rank_by)
    ranked = find_label_issues(labels, probabilities, filter_by=filter_by, return_indices_ranked_by=rank_by,
                               n_jobs=1)
    classes = rank_classes_by_multilabel_quality(labels, probabilities).set_index("Class Index")
    per_class = [ClassNoise(names[i], int(matrix[:, i].sum()), int(classes.loc[i, "Label Issues"]),
                            round(float(classes.loc[i, "Label Noise"]), 5)) for i in range(len(names))]
    common = common_multilabel_issues(labels, probabilities)
    confused = [ConfusedPair(names[int(r["Class Index"])], "(absent)" if r["In Given Label"] else "(present)",
                             float(r["Num Examples"]), round(float(r["Issue Probability"]), 5))
                for _, r in common.head(top_pairs).iterrows() if r["Num Examples"] > 0]
    suggested = [[names[i] for i in np.flatnonzero(row >= threshold)] for row in probabilities]
    health = float(overall_multilabel_health_score(labels, probabilities))
    return Findings(quality, suggested, np.asarray(ranked, dtype=np.int64),
                    int(round(len(labels) * (1 - health))), health, per_class, confused)
