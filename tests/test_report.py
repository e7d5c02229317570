"""finetext report: the page train writes (checked in headless Chromium), its numbers, mistakes, errors."""

import json
import logging
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ARTIFACT_FILES, REPO, tiny_run
from sklearn.metrics import precision_recall_fscore_support

import finetext
from finetext.cli import main
from finetext.evaluation.metrics import per_class_scores, per_label_scores, report_from_logits
from finetext.evaluation.mistakes import MAX_TEXT_CHARS, confident_mistakes
from finetext.evaluation.report import write_report
from finetext.evaluation.report_browser import CHROMIUM, check_page

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

SCREENSHOT = REPO / "tests" / "output" / "report.png"
HEADINGS = ["Overview", "Headline metrics", "Training curves", "Confusion matrix",
            "Per-class precision, recall and F1", "Most confident mistakes", "Configuration"]
CHARTS = {"loss.png", "validation_metrics.png", "learning_rate.png", "confusion_validation.png"}


@pytest.fixture(scope="module")
def sst2_run(tiny_model, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("report") / "run"
    return finetext.train(tiny_run(tiny_model, out, dataset="sst2", data_dir=str(data_dir)))


def copy_run(run_dir, target, files=("metrics.json", "finetext.yaml")):
    target.mkdir()
    for name in files:
        shutil.copy(run_dir / name, target / name)
    return target


def require_chromium():
    """Skip only where chromium cannot be installed (not root, or no apt-get); anywhere it can, a missing
    chromium fails the test, so the browser check never silently stops running (make test installs it)."""
    if CHROMIUM.is_file():
        return
    installable = os.geteuid() == 0 and shutil.which("apt-get") is not None
    message = f"Debian's chromium is not installed ({CHROMIUM})"
    if installable or os.environ.get("CI"):
        pytest.fail(f"{message}, though it can be here: run `make chromium` (apt-get install chromium).")
    pytest.skip(f"{message} and cannot be installed here (needs root and apt-get)")


def test_train_writes_the_report_and_the_mistakes(sst2_run):
    out = sst2_run.output_dir
    assert {p.name for p in out.iterdir()} == ARTIFACT_FILES
    assert {p.name for p in (out / "report").iterdir()} == CHARTS
    mistakes = json.loads((out / "mistakes.json").read_text())
    assert list(mistakes) == ["validation"]  # SST-2's test split has no labels
    records = mistakes["validation"]
    matrix = np.array(sst2_run.metrics["final"]["validation"]["confusion_matrix"]["matrix"])
    assert len(records) == min(20, matrix.sum() - np.trace(matrix))
    assert all(r["label"] != r["predicted"] and set(r) == {"text", "label", "predicted", "score", "scores"}
               for r in records)
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)
    assert all(r["score"] == max(r["scores"].values()) for r in records)


def test_report_page_loads_in_chromium_without_errors(sst2_run):
    require_chromium()
    SCREENSHOT.unlink(missing_ok=True)
    check = check_page(sst2_run.output_dir / "report.html", SCREENSHOT)
    assert check.console_errors == [] and check.page_errors == []
    assert check.requests == []  # self-contained: nothing fetched, not even a favicon
    assert check.images == len(CHARTS) and check.broken_images == []
    assert check.headings == ["run", *HEADINGS]
    assert SCREENSHOT.stat().st_size > 50_000


def test_per_class_scores_match_sklearn():
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    predicted[:5] = 3  # class 2 is never predicted in some seeds: zero division is covered below too
    names = ["a", "b", "c", "d"]
    report = report_from_logits(np.eye(4)[predicted], truth, names)
    ours = per_class_scores(report.confusion_matrix.matrix, names)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=range(4),
                                                                     zero_division=0)
    for row, p, r, f, s in zip(ours, precision, recall, f1, support, strict=True):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p, r, f, s))
    assert per_class_scores([[5, 0], [3, 0]], ["x", "y"])[1] == {"label": "y", "precision": 0.0, "recall": 0.0,
                                                                  "f1": 0.0, "support": 3}

    labels = rng.integers(0, 2, (200, 3))
    logits = rng.normal(size=(200, 3))
    multi = report_from_logits(logits, labels, names[:3], multi_label=True)
    ours = per_label_scores(multi.confusion_matrix.matrix, names[:3])
    precision, recall, f1, support = precision_recall_fscore_support(labels, (logits >= 0).astype(int),
                                                                     zero_division=0)
    assert [r["f1"] for r in ours] == pytest.approx(f1) and [r["support"] for r in ours] == list(support)
    assert [r["precision"] for r in ours] == pytest.approx(precision)
    assert [r["recall"] for r in ours] == pytest.approx(recall)


def test_confident_mistakes_are_the_wrong_predictions_most_confident_first():
    frame = pd.DataFrame({"text": ["right", "wrong, sure", "wrong, unsure", "x" * 5000, "<script>alert(1)</script>"],
                          "text_pair": ["p0", "p1", "p2", "p3", "p4"], "label": [0, 0, 1, 1, 0]})
    logits = np.log(np.array([[0.9, 0.1], [0.05, 0.95], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]]))
    found = confident_mistakes(frame, logits, ["neg", "pos"], multi_label=False)
    assert [m["text_pair"] for m in found] == ["p1", "p3", "p4", "p2"]
    assert found[0] == {"text": "wrong, sure", "text_pair": "p1", "label": "neg", "predicted": "pos",
                        "score": pytest.approx(0.95), "scores": pytest.approx({"neg": 0.05, "pos": 0.95})}
    assert len(found[1]["text"]) == MAX_TEXT_CHARS and found[1]["text"].endswith("…")
    assert [m["score"] for m in confident_mistakes(frame, logits, ["neg", "pos"], False, limit=2)] == \
        pytest.approx([0.95, 0.8])


def test_multilabel_mistakes_rank_by_the_most_confident_wrong_decision():
    frame = pd.DataFrame({"text": ["all right", "missed b", "extra c"],
                          "label": [np.array([1, 0, 0]), np.array([1, 1, 0]), np.array([0, 0, 0])]})
    probabilities = np.array([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1], [0.2, 0.1, 0.9]])
    found = confident_mistakes(frame, np.log(probabilities / (1 - probabilities)), ["a", "b", "c"], True, 0.5)
    assert [m["text"] for m in found] == ["extra c", "missed b"]
    assert found[0]["label"] == [] and found[0]["predicted"] == ["c"] and found[0]["score"] == pytest.approx(0.9)
    assert found[1]["label"] == ["a", "b"] and found[1]["predicted"] == ["a"]
    assert found[1]["score"] == pytest.approx(0.7)  # 1 - p of the wrong "no" for b


def test_page_escapes_texts_and_says_when_mistakes_are_missing(sst2_run, tmp_path):
    folder = copy_run(sst2_run.output_dir, tmp_path / "copy")
    page = write_report(folder)
    assert "has no mistakes.json" in page.read_text()
    mistake = {"text": "<script>alert('x')</script> & more", "label": "negative", "predicted": "positive",
               "score": 0.9, "scores": {"negative": 0.1, "positive": 0.9}}
    (folder / "mistakes.json").write_text(json.dumps({"validation": [mistake]}))
    html = write_report(folder).read_text()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_single_evaluation_without_loss_log_still_draws_its_points(sst2_run, tmp_path):
    folder = copy_run(sst2_run.output_dir, tmp_path / "one")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["history"] = metrics["history"][:1]
    metrics["best"] = metrics["history"][0]
    del metrics["loss_log"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "report").mkdir()
    (folder / "report" / "learning_rate.png").write_bytes(b"from an earlier report")
    html = write_report(folder).read_text()
    assert {p.name for p in (folder / "report").iterdir()} == CHARTS - {"learning_rate.png"}
    assert "mean since the previous evaluation" in html


def test_multilabel_report_has_one_matrix_and_row_per_label(sst2_run, tmp_path):
    folder = copy_run(sst2_run.output_dir, tmp_path / "multi", files=("finetext.yaml",))
    rng = np.random.default_rng(1)
    names = ["sports", "politics", "tech"]
    report = report_from_logits(rng.normal(size=(40, 3)), rng.integers(0, 2, (40, 3)), names, multi_label=True)
    metrics = json.loads((sst2_run.output_dir / "metrics.json").read_text())  # a real run's, made multi-label
    metrics |= {"label_names": names, "multi_label": True, "final": {"validation": report.to_dict()}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    html = write_report(folder).read_text()
    assert "Hamming loss" in html and "One matrix per label" in html
    assert all(f"<td>{name}</td>" in html for name in names)
    assert (folder / "report" / "confusion_validation.png").is_file()


def test_cli_report_rewrites_the_page_in_one_line(sst2_run, tmp_path, capsys):
    folder = copy_run(sst2_run.output_dir, tmp_path / "again")
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(folder / "report.html") in out
    assert {p.name for p in (folder / "report").iterdir()} == CHARTS


@pytest.mark.parametrize("files", [(), ("metrics.json",), ("finetext.yaml",)])
def test_cli_report_refuses_what_is_not_a_finished_run(sst2_run, tmp_path, capsys, files):
    folder = copy_run(sst2_run.output_dir, tmp_path / "partial", files)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert ("incomplete run" if files == ("metrics.json",) else "not a finished training run") in err
    assert not (folder / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "directory not found" in capsys.readouterr().err


def test_a_failing_report_keeps_the_trained_model(tiny_model, tmp_path, monkeypatch, caplog):
    from finetext.training import run as run_module

    def broken(folder):
        (folder / "report.html").write_text("half")
        raise RuntimeError("no fonts")

    monkeypatch.setattr(run_module, "write_report", broken)
    with caplog.at_level(logging.WARNING, logger="finetext"):
        result = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", epochs=1))
    files = {p.name for p in result.output_dir.iterdir()}
    assert files == ARTIFACT_FILES - {"report.html", "report"}
    assert "report not written (RuntimeError: no fonts)" in caplog.text
    assert finetext.predict(result.output_dir, ["fine"])[0]["label"] in ("negative", "positive")


def test_no_report_leaves_no_report_not_even_an_earlier_one(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "sst2", "--model", tiny_model, "--output-dir", str(out), "--epochs", "1",
            "--train-samples", "48", "--eval-samples", "32", "--max-length", "32", "--quiet"]
    assert main(argv) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    assert main([*argv, "--overwrite-output-dir", "--no-report"]) == 0
    assert {p.name for p in out.iterdir()} == ARTIFACT_FILES - {"report.html", "report"}
    assert "report:" not in capsys.readouterr().out


def test_cli_report_refuses_a_damaged_metrics_file_in_one_line(sst2_run, tmp_path, capsys):
    folder = copy_run(sst2_run.output_dir, tmp_path / "damaged")
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["final"]["validation"]["accuracy"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(folder / "metrics.json") in error
    assert "final.validation lacks 'accuracy'" in error
    assert not (folder / "report.html").exists()
