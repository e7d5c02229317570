"""Multi-label classification from local files: label lists, sigmoid + threshold, micro/macro F1."""

import json
import random

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_run
from sklearn.metrics import f1_score, hamming_loss

import finetext
from finetext.cli import main
from finetext.config import DataConfig
from finetext.data.sources import load_labelled_data
from finetext.errors import FinetextError
from finetext.evaluation.metrics import report_from_logits
from finetext.evaluation.run_metrics import read_run_metrics

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

TOPICS = {"sports": ["match", "goal", "team"], "politics": ["vote", "election", "senate"],
          "tech": ["software", "chip", "phone"]}


def topic_rows(n: int, seed: int) -> pd.DataFrame:
    """Texts whose words say exactly which topics apply (possibly none)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = [t for t in TOPICS if rng.random() < 0.4]
        words = [rng.choice(TOPICS[t]) for t in labels for _ in range(3)] or ["nothing", "at", "all"]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": labels})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multilabel")
    topic_rows(400, 0).to_json(folder / "train.jsonl", orient="records", lines=True)
    test = topic_rows(60, 1)
    test.to_json(folder / "test.jsonl", orient="records", lines=True)
    test.assign(labels=test["labels"].map("|".join)).to_csv(folder / "test.csv", index=False)
    return folder


def test_label_lists_are_detected_and_encoded(files):
    data = load_labelled_data(DataConfig(train_file=str(files / "train.jsonl"), test_file=str(files / "test.jsonl")),
                              seed=42)
    assert data.multi_label and data.label_names == ["politics", "sports", "tech"]
    raw = pd.read_json(files / "test.jsonl", lines=True)
    vectors = np.stack(data.splits["test"]["label"].to_numpy())
    for labels, vector in zip(raw["labels"], vectors, strict=True):
        assert [data.label_names[i] for i in np.flatnonzero(vector)] == sorted(labels)


def test_csv_labels_split_on_the_separator_and_empty_cells_are_empty_sets(files):
    data = load_labelled_data(DataConfig(train_file=str(files / "test.csv"), label_separator="|",
                                         label_column="labels"), seed=42)
    assert data.multi_label
    raw = pd.read_csv(files / "test.csv", keep_default_na=False)
    assert (raw["labels"] == "").sum() > 0
    total = sum(np.stack(df["label"].to_numpy()).sum() for df in data.splits.values())
    assert total == sum(len(cell.split("|")) for cell in raw["labels"] if cell)


def test_unknown_label_in_a_label_list_is_named(files, tmp_path):
    pd.DataFrame({"text": ["a", "b"], "labels": [["tech"], ["cooking"]]}).to_json(
        tmp_path / "test.jsonl", orient="records", lines=True)
    with pytest.raises(FinetextError, match="the test data has label\\(s\\) 'cooking' \\(1 occurrences\\)"):
        load_labelled_data(DataConfig(train_file=str(files / "train.jsonl"), test_file=str(tmp_path / "test.jsonl")),
                           seed=42)


def test_a_test_file_with_an_empty_label_column_is_unlabelled_not_empty_sets(files, tmp_path):
    pd.DataFrame({"text": ["team goal", "chip"], "labels": [None, None]}).to_csv(tmp_path / "test.csv", index=False)
    data = load_labelled_data(DataConfig(train_file=str(files / "test.csv"), test_file=str(tmp_path / "test.csv"),
                                         label_separator="|", label_column="labels"), seed=42)
    assert data.is_labelled("train") and not data.is_labelled("test")


def test_multi_label_flag_is_a_switch():
    from finetext.cli import build_parser, resolve_train_config

    assert resolve_train_config(build_parser().parse_args(["train", "--multi-label"])).data.multi_label is True
    assert resolve_train_config(build_parser().parse_args(["train", "--no-multi-label"])).data.multi_label is False


def test_separator_without_multi_label_is_refused():
    with pytest.raises(FinetextError, match="label_separator splits labels into lists, which needs multi-label"):
        DataConfig(label_separator="|", multi_label=False)


def test_report_thresholds_sigmoid_probabilities_and_matches_sklearn():
    logits = np.array([[2.0, -1.0, 0.1], [-2.0, 0.3, -0.1], [0.0, 0.0, -3.0]])
    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    report = report_from_logits(logits, labels, ["a", "b", "c"], multi_label=True, threshold=0.5)
    assert report.accuracy == 1.0 and report.f1 == 1.0  # sigmoid(0) = 0.5 reaches the threshold
    strict = report_from_logits(logits, labels, ["a", "b", "c"], multi_label=True, threshold=0.6)
    predicted = (1 / (1 + np.exp(-logits)) >= 0.6).astype(int)
    assert strict.f1 == pytest.approx(f1_score(labels, predicted, average="micro"))
    assert strict.f1_macro == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert strict.hamming_loss == pytest.approx(hamming_loss(labels, predicted))
    assert strict.confusion_matrix.matrix[2] == [[2, 0], [1, 0]]  # label c: tn, fp / fn, tp


@pytest.mark.parametrize("engine", ["trainer", "native"])
def test_multi_label_end_to_end(tiny_model, files, tmp_path, engine, capsys):
    result = finetext.train(tiny_run(
        tiny_model, tmp_path / "run", train_file=str(files / "train.jsonl"), test_file=str(files / "test.jsonl"),
        train_samples=None, test_samples=None, epochs=8, learning_rate=3e-3, engine=engine, threshold=0.5))
    test = result.metrics["test"]
    assert test["f1_average"] == "micro" and test["num_examples"] == 60
    assert result.metrics["multi_label"] is True  # said explicitly, and read back as written
    assert read_run_metrics(result.output_dir / "metrics.json").to_dict() == result.metrics
    assert test["f1"] > 0.8  # word -> topic is learnable; a constant model scores far lower
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"

    raw = pd.read_json(files / "test.jsonl", lines=True)
    records = finetext.predict(result.output_dir, raw["text"].tolist())
    names = ["politics", "sports", "tech"]
    for record in records:
        assert record["labels"] == [n for n in names if record["probabilities"][n] >= 0.5]
    truth = np.array([[n in labels for n in names] for labels in raw["labels"]], dtype=int)
    predicted = np.array([[n in r["labels"] for n in names] for r in records], dtype=int)
    assert test["f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert test["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))

    from transformers import pipeline

    scores = pipeline("text-classification", model=str(result.output_dir), top_k=None)(raw["text"][:3].tolist())
    for record, theirs in zip(records, scores, strict=False):
        assert {e["label"]: pytest.approx(record["probabilities"][e["label"]], abs=1e-5) for e in theirs} == \
            {e["label"]: e["score"] for e in theirs}  # sigmoid, not softmax: they need not sum to 1

    assert main(["predict", str(result.output_dir), raw["text"][0], "--quiet"]) == 0
    shown = capsys.readouterr().out.split("\t")[0]
    assert shown == (", ".join(f"{n} {records[0]['probabilities'][n]:.3f}" for n in records[0]["labels"]) or "(none)")

    out_file = tmp_path / "predictions.csv"
    assert main(["predict", str(result.output_dir), "--input", str(files / "test.csv"), "--output", str(out_file),
                 "--quiet"]) == 0
    written = pd.read_csv(out_file, keep_default_na=False)
    assert list(written.columns) == ["text", "labels", "predicted_labels", "prob_politics", "prob_sports",
                                     "prob_tech"]
    assert written["predicted_labels"].tolist() == ["|".join(r["labels"]) for r in records]

    assert main(["evaluate", str(result.output_dir), "--test-file", str(files / "test.csv"), "--label-column",
                 "labels", "--label-separator", "|", "--quiet"]) == 0
    assert f"f1 {100 * test['f1']:.2f}" in capsys.readouterr().out
