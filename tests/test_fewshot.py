"""strategy fewshot: SetFit's pairs, a body trained on them, and a logistic-regression head that the saved
classifier reproduces exactly, for single-label (binary and multi-class) and multi-label data."""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import DATA_DIR, tiny_run

import finetext
from finetext.cli import main
from finetext.comparison import parse_strategies
from finetext.errors import FinetextError
from finetext.training.fewshot import contrastive_pairs


def test_pairs_follow_setfits_oversampling_and_are_seeded():
    labels = np.array([0, 0, 0, 1, 1, 2])  # 15 pairs: 4 with the same label, 11 without
    pairs, targets = contrastive_pairs(labels, per_example=20, seed=0)
    assert len(pairs) == 22 and targets.sum() == 11  # both sides the larger side's size
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert np.array_equal(same, targets == 1)
    negatives = {tuple(p) for p in pairs[targets == 0]}
    assert len(negatives) == 11  # every negative pair once; the 4 positives repeated
    assert np.array_equal(contrastive_pairs(labels, 20, 0)[0], pairs)
    assert not np.array_equal(contrastive_pairs(labels, 20, 1)[0], pairs)
    capped, _ = contrastive_pairs(labels, per_example=1, seed=0)
    assert len(capped) == 12  # 1 x 6 texts per side


def test_multi_label_pairs_are_positive_when_a_label_is_shared():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    pairs, targets = contrastive_pairs(labels, 20, 0)
    shared = (labels[pairs[:, 0]] * labels[pairs[:, 1]]).sum(axis=1) > 0
    assert np.array_equal(shared, targets == 1)


def test_one_kind_of_pair_is_refused():
    with pytest.raises(FinetextError, match="only one kind of pair"):
        contrastive_pairs(np.array([1, 1, 1]), 20, 0)


def few_per_class(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.groupby("label").sample(n, random_state=seed).reset_index(drop=True)


def head_probabilities(output_dir, train: pd.DataFrame, texts: list[str]) -> np.ndarray:
    """What scikit-learn's logistic regression, fitted on the saved model's embeddings of the training texts,
    predicts for texts."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import finetext.architectures  # noqa: F401

    model = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    with torch.inference_mode():
        def embed(batch):
            return model.embed(**tokenizer(batch, padding=True, truncation=True, max_length=64,
                                           return_tensors="pt")).numpy()
        head = LogisticRegression(max_iter=1000).fit(embed(train["text"].tolist()), train["label"])
        return head.predict_proba(embed(texts))


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "per_class"), [("sst2", 8), ("ag_news", 4)])
def test_the_saved_classifier_is_the_logistic_regression(dataset, per_class, tiny_model, tmp_path):
    split = "train" if dataset == "sst2" else "test"
    frame = pd.read_parquet(DATA_DIR / dataset / f"{split}.parquet")
    train = few_per_class(frame, per_class, 0)
    train.to_parquet(tmp_path / "train.parquet")
    frame.drop(frame.index[frame["text"].isin(train["text"])]).head(40).to_parquet(tmp_path / "validation.parquet")
    result = finetext.train(tiny_run(tiny_model, tmp_path / "run", train_file=str(tmp_path / "train.parquet"),
                                     validation_file=str(tmp_path / "validation.parquet"), strategy="fewshot",
                                     learning_rate=None, epochs=None, train_samples=None, eval_samples=None))
    metrics = result.metrics
    assert metrics["parameters"]["strategy"] == "fewshot" and len(metrics["history"]) == 1
    assert metrics["train"]["epochs_completed"] == 1.0  # fewshot's default: one pass over the pairs
    assert metrics["train"]["engine"] == "fewshot (sentence-transformers)"
    assert "learning_rate: 2.0e-05" in (result.output_dir / "finetext.yaml").read_text()
    texts = frame["text"].tail(5).tolist()
    ours = np.array([[r["probabilities"][name] for name in r["probabilities"]]
                     for r in finetext.predict(result.output_dir, texts)])
    np.testing.assert_allclose(ours, head_probabilities(result.output_dir, train, texts), atol=1e-4)


@pytest.mark.slow
def test_multi_label_fewshot_is_one_vs_rest(tiny_model, tmp_path):
    from test_multilabel import topic_rows

    topic_rows(40, 0).to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    topic_rows(20, 1).to_json(tmp_path / "validation.jsonl", orient="records", lines=True)
    result = finetext.train(tiny_run(tiny_model, tmp_path / "run", train_file=str(tmp_path / "train.jsonl"),
                                     validation_file=str(tmp_path / "validation.jsonl"), strategy="fewshot",
                                     learning_rate=None, epochs=None, train_samples=None, eval_samples=None))
    assert result.metrics["multi_label"] and result.metrics["final"]["validation"]["num_examples"] == 20
    record = finetext.predict(result.output_dir, ["goal team match"])[0]
    assert set(record["probabilities"]) == {"politics", "sports", "tech"}


def test_sentence_pairs_are_refused_with_the_fix(tiny_model, tmp_path, capsys):
    code = main(["train", "--dataset", "glue/mrpc", "--model", tiny_model, "--strategy", "fewshot",
                 "--train-samples", "20", "--eval-samples", "10", "--output-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "sentence pairs" in err and "--strategy full or lora" in err


def test_few_examples_per_class_suggest_fewshot(tiny_model, tmp_path, caplog):
    from finetext.data.sources import LabelledData
    from finetext.training.run import suggest_fewshot

    def data(n: int) -> LabelledData:
        return LabelledData({"train": pd.DataFrame({"text": ["a"] * 2 * n, "label": [0, 1] * n})}, ["no", "yes"],
                            "text", None, "label", "x")

    few, many = data(30), data(100)
    with caplog.at_level(logging.WARNING, logger="finetext"):
        suggest_fewshot(few, "fewshot")
        suggest_fewshot(many, "full")
        assert not caplog.records
        suggest_fewshot(few, "full")
    assert "--strategy fewshot" in caplog.text and "at most 64 examples per class (30)" in caplog.text


def test_compare_runs_fewshot_only_when_named():
    assert "fewshot" not in parse_strategies(None) and parse_strategies("full,fewshot") == ["full", "fewshot"]


def test_tune_searches_fewshots_own_settings():
    from finetext.config import config_from_flat
    from finetext.tuning.space import default_space

    space = {p.name: p for p in default_space(config_from_flat({"strategy": "fewshot"}), 40, True, None)}
    assert space["epochs"].low == 1 and space["epochs"].high == 2  # passes over the pairs, not the 1,200-step rule
    assert space["fewshot_pairs"].values == (10, 20, 40)
