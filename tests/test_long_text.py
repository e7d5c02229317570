"""Long documents (long_text chunk): windows, the per-document aggregation, training and scoring on documents, and
every inference path (predict, evaluate, the server, ONNX) giving the same per-document probabilities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_run
from fastapi.testclient import TestClient
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

import finetext
from finetext.cli import main
from finetext.config import DataConfig, config_from_flat, save_yaml
from finetext.data.tokenize import encode_windows, kept_windows, tokenize_split
from finetext.errors import FinetextError
from finetext.evaluation.metrics import sigmoid, softmax
from finetext.evaluation.windows import aggregate_windows, per_document
from finetext.inference.loader import load_classifier_dir
from finetext.inference.predict import predict_logits
from finetext.serving.app import create_app
from finetext.serving.settings import ServeConfig
from finetext.training.objective import Objective

LONG = " ".join(f"word{i % 7} film" for i in range(60))  # well over 32 tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


# ---------------------------------------------------------------------------------------------------------------
# windows


def test_a_long_text_becomes_overlapping_windows_and_a_short_one_one_window(tokenizer):
    features, documents = encode_windows(tokenizer, [LONG, "short text"], max_length=32, stride=8)
    ids = features["input_ids"]
    content = [w[1:-1] for w in ids]  # without [CLS] and [SEP]
    whole = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    expected = 1 + -(-(len(whole) - 30) // (30 - 8))  # first window 30 tokens, then 22 new ones each
    assert documents == [0] * expected + [1] and len(ids[-1]) == 4
    assert all(len(w) == 32 for w in ids[:expected - 1]) and len(ids[expected - 1]) <= 32
    for before, after in zip(content[:expected - 1], content[1:expected], strict=True):
        assert before[-8:] == after[:8]  # consecutive windows share exactly stride tokens
    assert content[0] + [t for w in content[1:expected] for t in w[8:]] == whole  # and together hold the text


def test_the_cap_keeps_evenly_spaced_windows_with_the_first_and_the_last():
    documents = [0] * 10 + [1] + [2] * 3
    assert kept_windows(documents, 4).tolist() == [0, 3, 6, 9, 10, 11, 12, 13]
    assert kept_windows(documents, 2).tolist() == [0, 9, 10, 11, 13]
    assert kept_windows(documents, 1).tolist() == [0, 10, 11]
    assert kept_windows(documents, None).tolist() == list(range(14))


def test_training_windows_carry_their_documents_label_and_the_cache_key_knows_the_settings(tokenizer, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path))
    df = pd.DataFrame({"text": [LONG, "short", LONG], "label": [1, 0, 0]})
    windows = tokenize_split(df, tokenizer, 32, "dynamic", cache=True, stride=8, windows_per_document=3)
    assert windows["document"] == [0, 0, 0, 1, 2, 2, 2] and windows["labels"] == [1, 1, 1, 0, 0, 0, 0]
    every = tokenize_split(df, tokenizer, 32, "dynamic", cache=True, stride=8)
    other_stride = tokenize_split(df, tokenizer, 32, "dynamic", cache=True, stride=16)  # more overlap, more windows
    truncated = tokenize_split(df, tokenizer, 32, "dynamic", cache=True)
    assert len(every) > len(windows) and len(other_stride) > len(every)
    assert len(truncated) == 3 and "document" not in truncated.column_names
    assert len(list((tmp_path / "tokenized").iterdir())) == 4  # one cache entry per setting


# ---------------------------------------------------------------------------------------------------------------
# aggregation

WINDOW_LOGITS = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [-3.0, 4.0, 0.0], [1.0, 1.0, 1.0], [0.5, -0.5, 2.0]],
                         dtype=np.float32)
DOCUMENTS = [0, 0, 0, 1, 2]


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_aggregation_by_hand(multi_label, aggregation):
    p = sigmoid(WINDOW_LOGITS.astype(np.float64)) if multi_label else softmax(WINDOW_LOGITS.astype(np.float64))
    pick = np.mean if aggregation == "mean" else np.max
    expected = np.stack([pick(p[0:3], axis=0), p[3], p[4]])
    if aggregation == "max" and not multi_label:
        expected /= expected.sum(axis=1, keepdims=True)  # still a distribution
    logits = aggregate_windows(WINDOW_LOGITS, DOCUMENTS, multi_label, aggregation)
    assert logits.shape == (3, 3) and logits.dtype == np.float32
    back = sigmoid(logits) if multi_label else softmax(logits)  # what predictions, reports and mistakes compute
    np.testing.assert_allclose(back, expected, rtol=1e-6, atol=1e-7)


def test_per_document_takes_any_subset_in_any_order_and_each_documents_label():
    labels = np.array([1, 1, 1, 0, 2])
    order = [4, 1, 3, 0, 2]  # gathered rows come back in another order
    logits, doc_labels = per_document(WINDOW_LOGITS[order], labels[order], np.array(DOCUMENTS)[order], False, "mean")
    np.testing.assert_allclose(logits, aggregate_windows(WINDOW_LOGITS, DOCUMENTS, False, "mean"), rtol=1e-6)
    assert doc_labels.tolist() == [1, 0, 2]


def test_validation_scores_count_documents_for_both_engines():
    objective = Objective(["a", "b", "c"], window_aggregation="mean")
    labels = np.array([1, 1, 1, 0, 2])
    scores = objective.validation_scores(WINDOW_LOGITS, labels, np.array(DOCUMENTS))
    doc_logits = aggregate_windows(WINDOW_LOGITS, DOCUMENTS, False, "mean")
    expected_loss = -np.log(softmax(doc_logits)[[0, 1, 2], [1, 0, 2]]).mean()
    assert scores["num_examples"] == 3 and scores["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert scores["accuracy"] == pytest.approx(np.mean(doc_logits.argmax(1) == [1, 0, 2]))
    plain = Objective(["a", "b", "c"]).validation_scores(WINDOW_LOGITS, labels, None)
    assert plain["num_examples"] == 5


def test_multi_label_validation_scores_use_each_documents_label_set():
    objective = Objective(["a", "b", "c"], multi_label=True, window_aggregation="max")
    labels = np.array([[1, 0, 1]] * 3 + [[0, 1, 0], [0, 0, 1]], dtype=np.float32)
    scores = objective.validation_scores(WINDOW_LOGITS, labels, np.array(DOCUMENTS))
    p = sigmoid(aggregate_windows(WINDOW_LOGITS, DOCUMENTS, True, "max").astype(np.float64))
    truth = labels[[0, 3, 4]]
    expected_loss = -(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean()
    assert scores["num_examples"] == 3 and scores["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert scores["accuracy"] == pytest.approx(np.mean(((p >= 0.5) == truth).all(axis=1)))


# ---------------------------------------------------------------------------------------------------------------
# the predict path every command shares, checked window by window on a random model with spread-out logits


def random_classifier(folder, tiny_model: str, label_names: list[str], **data) -> str:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2,
                        id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
                        problem_type="multi_label_classification" if data.get("multi_label") else None)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    save_yaml(config_from_flat({"model": tiny_model, "output_dir": str(folder), "label_names": label_names,
                                **data}), folder / "finetext.yaml")
    return str(folder)


@pytest.mark.parametrize(("multi_label", "aggregation"), [(False, "mean"), (True, "max")])
def test_predict_combines_every_window_of_each_text(tiny_model, tmp_path, multi_label, aggregation):
    folder = random_classifier(tmp_path / "m", tiny_model, ["a", "b", "c"], long_text="chunk", max_length=32,
                               stride=8, window_aggregation=aggregation, multi_label=multi_label)
    clf = load_classifier_dir(folder, precision="fp32")
    assert (clf.long_text, clf.stride, clf.window_aggregation) == ("chunk", 8, aggregation)
    texts = [LONG, "short text", LONG[:150]]
    features, documents = encode_windows(clf.tokenizer, texts, 32, 8)
    with torch.inference_mode():
        windows = [clf.model(**{k: torch.tensor([v[i]]) for k, v in features.items()}).logits[0].numpy()
                   for i in range(len(documents))]
    expected = aggregate_windows(np.stack(windows), documents, multi_label, aggregation)
    got = predict_logits(clf, texts, batch_size=3, progress=False)
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    records = finetext.predict(folder, texts, precision="fp32")
    to_probability = sigmoid if multi_label else softmax
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in records], to_probability(expected),
                               atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize(("values", "message"), [
    ({"long_text": "chunk", "max_length": 64, "stride": 64}, "stride (64) must be smaller than max_length (64)"),
    ({"long_text": "chunk", "stride": -1}, "stride must be >= 0, got -1"),
    ({"long_text": "chunk", "text_pair_column": "q2"}, "long_text chunk splits single texts into windows"),
    ({"long_text": "chunk", "train_windows_per_document": 0}, "train_windows_per_document must be a positive"),
    ({"stride": 32}, "stride only apply to --long-text chunk"),
    ({"window_aggregation": "max"}, "window_aggregation only apply to --long-text chunk"),
])
def test_config_refusals(values, message):
    with pytest.raises(FinetextError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DataConfig(**values)


def test_a_stride_that_leaves_no_room_for_the_special_tokens_is_refused(tokenizer):
    with pytest.raises(FinetextError, match=r"stride \(31\) must be smaller than max_length \(32\) minus the "
                                            r"tokenizer's 2 special tokens, i.e. at most 29"):
        encode_windows(tokenizer, [LONG], 32, 31)


@pytest.mark.parametrize(("flags", "message"), [
    (["--dataset", "imdb", "--long-text", "chunk", "--max-length", "32", "--stride", "40"],
     "stride (40) must be smaller than max_length (32)"),
    (["--dataset", "glue/mrpc", "--long-text", "chunk"],
     "long_text chunk splits single texts into windows, but this data has sentence pairs"),
])
def test_cli_refusals_are_one_line_and_exit_2(flags, message, tmp_path, capsys):
    assert main(["train", *flags, "--output-dir", str(tmp_path / "out"), "--quiet"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]


# ---------------------------------------------------------------------------------------------------------------
# end to end: a tiny model trained on IMDB reviews cut into windows of 32 tokens

DOCS = {"train_samples": 48, "eval_samples": 16, "test_samples": 16}


@pytest.fixture(scope="module")
def chunked_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "imdb"
    finetext.train(tiny_run(tiny_model, out, dataset="imdb", epochs=1, max_length=32, long_text="chunk", stride=8,
                            train_windows_per_document=4, precision="fp32", **DOCS))
    return out


@pytest.mark.slow
def test_training_and_scoring_count_documents(chunked_run, data_dir):
    metrics = json.loads((chunked_run / "metrics.json").read_text())
    assert metrics["data"]["train"] == 48 and metrics["data"]["validation"] == 16 and metrics["data"]["test"] == 16
    windows = metrics["data"]["windows"]
    assert windows["validation"] > 16 and 48 < windows["train"] <= 48 * 4  # the cap held
    assert [h["validation"]["num_examples"] for h in metrics["history"]] == [16]
    assert metrics["final"]["validation"]["num_examples"] == 16 and metrics["test"]["num_examples"] == 16
    for key in ("accuracy", "f1", "loss"):  # in-training evaluation scores documents as the final one does
        if key in metrics["final"]["validation"]:
            assert metrics["history"][0]["validation"][key] == pytest.approx(metrics["final"]["validation"][key],
                                                                             abs=1e-4)
    mistakes = json.loads((chunked_run / "mistakes.json").read_text())
    reviews = set(pd.read_parquet(data_dir / "imdb" / "train.parquet")["text"].str[:1999])
    reviews |= set(pd.read_parquet(data_dir / "imdb" / "test.parquet")["text"].str[:1999])
    for split in ("validation", "test"):
        assert len(mistakes[split]) <= 16
        assert all(m["text"].rstrip("…")[:1999] in reviews for m in mistakes[split])  # whole documents
    assert "long texts" in (chunked_run / "README.md").read_text()
    assert "windows (long texts chunked)" in (chunked_run / "report.html").read_text()


@pytest.mark.slow
def test_native_engine_scores_documents_too(tiny_model, tmp_path):
    out = tmp_path / "native"
    finetext.train(tiny_run(tiny_model, out, dataset="imdb", epochs=1, max_length=32, long_text="chunk", stride=8,
                            engine="native", precision="fp32", train_samples=24, eval_samples=8, test_samples=8))
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["history"][-1]["validation"]
    assert entry["num_examples"] == 8 and metrics["final"]["validation"]["num_examples"] == 8
    assert entry["accuracy"] == metrics["final"]["validation"]["accuracy"]


@pytest.mark.slow
def test_predict_evaluate_serve_and_onnx_agree_per_document(chunked_run, data_dir, tmp_path, capsys):
    reviews = pd.read_parquet(data_dir / "imdb" / "test.parquet")["text"].head(3).tolist()
    texts = [max(reviews, key=len), "A short one.", reviews[0]]
    api = finetext.predict(chunked_run, texts, precision="fp32")
    expected = np.array([list(r["probabilities"].values()) for r in api])

    assert main(["predict", str(chunked_run), *texts, "--json", "--precision", "fp32"]) == 0
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in cli], expected, atol=1e-6)

    with TestClient(create_app(str(chunked_run), ServeConfig(precision="fp32"))) as client:
        served = client.post("/predict", json={"texts": texts}).json()
        info = client.get("/info").json()
    assert info["long_text"] == {"mode": "chunk", "stride": 8, "window_aggregation": "mean"}
    np.testing.assert_allclose([list(r["scores"].values()) for r in served], expected, atol=1e-6)

    onnx = finetext.export(chunked_run, tmp_path / "onnx")
    exported = finetext.predict(onnx, texts)
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in exported], expected, atol=1e-4)

    # finetext evaluate (PyTorch and ONNX) scores the same documents as the run's final test evaluation
    metrics = json.loads((chunked_run / "metrics.json").read_text())
    options = {"dataset": "imdb", "split": "test", "eval_samples": 16, "progress": False}
    for model_dir in (chunked_run, onnx):
        scores = finetext.evaluate(model_dir, **options)
        assert scores["num_examples"] == 16 and scores["accuracy"] == metrics["test"]["accuracy"]
        assert scores["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    truncated = finetext.evaluate(chunked_run, long_text="truncate", **options)  # evaluate may read it truncated
    assert truncated["num_examples"] == 16
