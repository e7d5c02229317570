import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, matthews_corrcoef, precision_score, recall_score

from finetext.evaluation.metrics import classification_metrics, full_report, softmax


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    m = classification_metrics(y, p, 2)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p))  # binary F1 of label 1, as GLUE reports MRPC
    assert m["precision"] == pytest.approx(precision_score(y, p))
    assert m["recall"] == pytest.approx(recall_score(y, p))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, p))


def test_multiclass_uses_macro_f1_and_counts_absent_classes():
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    p = np.array([0, 1, 2, 2, 2, 0, 0, 2])
    report = full_report(y, p, ["a", "b", "c", "d", "e"])
    assert report.f1_average == "macro"
    assert report.f1 == pytest.approx(f1_score(y, p, average="macro", labels=range(5), zero_division=0))
    assert report.recall == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
    assert report.confusion_matrix.labels == ["a", "b", "c", "d", "e"]
    assert report.confusion_matrix.matrix == confusion_matrix(y, p, labels=range(5)).tolist()
    assert report.num_examples == 8


def test_confusion_matrix_keeps_classes_never_predicted():
    report = full_report(np.array([0, 0, 1]), np.array([0, 0, 0]), ["neg", "pos"])
    assert report.confusion_matrix.matrix == [[2, 0], [1, 0]]
    assert report.f1 == 0.0


def test_softmax_rows_sum_to_one_and_are_stable():
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(probs, [[0.5, 0.5], [0.25, 0.75]])


def test_one_sided_evaluations_score_without_sklearn_warnings():
    import warnings

    from finetext.evaluation.metrics import full_report, multilabel_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning reaching the user fails the test
        report = full_report(np.zeros(6, dtype=int), np.zeros(6, dtype=int), ["neg", "pos"])
        multilabel_metrics(np.zeros((4, 3)), np.zeros((4, 3)))
    assert report.accuracy == 1.0 and report.f1 == 0.0 and report.mcc == 0.0
