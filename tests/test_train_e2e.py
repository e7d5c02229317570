"""End-to-end runs of the tiny random BERT on real data subsets: files written, labels, metrics, reuse."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ARTIFACT_FILES, tiny_run
from sklearn.metrics import accuracy_score, f1_score

import finetext
from finetext.cli import main
from finetext.data.sources import load_labelled_data
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import read_run_metrics

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sst2_run(tiny_model, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("sst2") / "run"
    return finetext.train(tiny_run(tiny_model, out, dataset="sst2", data_dir=str(data_dir)))


def test_run_writes_exactly_the_artifact(sst2_run):
    assert {p.name for p in sst2_run.output_dir.iterdir()} == ARTIFACT_FILES


def test_metrics_json_has_history_best_final_and_the_parameter_count(sst2_run):
    metrics = json.loads((sst2_run.output_dir / "metrics.json").read_text())
    assert metrics == sst2_run.metrics
    assert [h["epoch"] for h in metrics["history"]] == [1.0, 2.0]
    assert all(h["train_loss"] is not None for h in metrics["history"])
    assert metrics["best"] in metrics["history"]
    assert metrics["best"]["validation"]["f1"] == max(h["validation"]["f1"] for h in metrics["history"])
    assert metrics["data"]["train"] == 96 and metrics["data"]["validation"] == 48
    assert "test" not in metrics  # GLUE's SST-2 test split has no labels
    assert metrics["final"]["validation"]["num_examples"] == 48
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"] > 900_000


def test_metrics_json_reads_back_into_the_same_records(sst2_run):
    path = sst2_run.output_dir / "metrics.json"
    metrics = read_run_metrics(path)
    assert metrics.to_dict() == json.loads(path.read_text())
    assert metrics.multi_label is False and metrics.best in metrics.history


def test_resolved_config_and_label_names_are_saved(sst2_run):
    saved = yaml.safe_load((sst2_run.output_dir / "finetext.yaml").read_text())
    assert saved["data"]["text_column"] == "text" and saved["data"]["label_names"] == ["negative", "positive"]
    hf_config = json.loads((sst2_run.output_dir / "config.json").read_text())
    assert hf_config["id2label"] == {"0": "negative", "1": "positive"}
    card = (sst2_run.output_dir / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "| validation | 48 |" in card


def test_pipeline_returns_real_label_names(sst2_run):
    from transformers import pipeline

    outputs = pipeline("text-classification", model=str(sst2_run.output_dir))(["a gem of a film", "dreadful"])
    assert {o["label"] for o in outputs} <= {"negative", "positive"}


def test_predict_matches_pipeline_probabilities(sst2_run):
    from transformers import pipeline

    texts = ["a gem of a film", "dreadful and long", "fine"]
    ours = finetext.predict(sst2_run.output_dir, texts, precision="fp32")
    fast = finetext.predict(sst2_run.output_dir, texts, precision="bf16")  # autocast; emulated on old CPUs
    theirs = pipeline("text-classification", model=str(sst2_run.output_dir), top_k=None)(texts)
    for mine, quick, their in zip(ours, fast, theirs, strict=True):
        assert sum(mine["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for entry in their:
            assert mine["probabilities"][entry["label"]] == pytest.approx(entry["score"], abs=1e-5)
            assert quick["probabilities"][entry["label"]] == pytest.approx(entry["score"], abs=1e-2)


def test_sentence_pairs_are_encoded_as_pairs_and_test_is_scored(tiny_model, tmp_path, data_dir):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "mrpc", dataset="glue/mrpc", epochs=1))
    test = result.metrics["test"]
    data = pd.read_parquet(data_dir / "mrpc" / "test.parquet")
    assert test["num_examples"] == 48 and set(test) >= {"accuracy", "f1", "confusion_matrix"}
    saved = yaml.safe_load((result.output_dir / "finetext.yaml").read_text())
    assert (saved["data"]["text_column"], saved["data"]["text_pair_column"]) == ("sentence1", "sentence2")
    from finetext.inference.loader import load_classifier_dir

    clf = load_classifier_dir(str(result.output_dir))
    encoded = clf.tokenizer(data["sentence1"][0], data["sentence2"][0])
    assert 1 in encoded["token_type_ids"] and encoded["input_ids"].count(clf.tokenizer.sep_token_id) == 2
    # evaluate on the full test split agrees with sklearn on the predictions of finetext.predict
    report = finetext.evaluate(result.output_dir, dataset="mrpc", test_samples=200, progress=False)
    subset = load_labelled_data(finetext.DataConfig(dataset="mrpc", test_samples=200), seed=42)
    preds = finetext.predict(result.output_dir, subset.splits["test"]["text"].tolist(),
                             subset.splits["test"]["text_pair"].tolist())
    ids = np.array([clf.label_names.index(p["label"]) for p in preds])
    truth = subset.splits["test"]["label"].to_numpy()
    assert report["accuracy"] == pytest.approx(accuracy_score(truth, ids))
    assert report["f1"] == pytest.approx(f1_score(truth, ids))
    with pytest.raises(FinetextError, match="trained on sentence pairs"):
        finetext.predict(result.output_dir, ["only one sentence"])


def test_cli_train_predict_evaluate_round_trip(tiny_model, tmp_path, capsys):
    rows = pd.DataFrame({"comment": ["love it", "hate it", "superb", "awful", "nice one", "bad one"] * 8,
                         "tag": ["happy", "sad", "happy", "sad", "happy", "sad"] * 8})
    rows.to_csv(tmp_path / "train.csv", index=False)
    rows.head(12).to_json(tmp_path / "test.jsonl", orient="records", lines=True)
    out = tmp_path / "model"
    argv = ["train", "--train-file", str(tmp_path / "train.csv"), "--test-file", str(tmp_path / "test.jsonl"),
            "--text-column", "comment", "--label-column", "tag", "--model", tiny_model, "--output-dir", str(out),
            "--epochs", "1", "--batch-size", "8", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation: accuracy" in printed and "test: accuracy" in printed and f"model saved to {out}" in printed

    assert main(["predict", str(out), "love it", "hate it", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["love it", "hate it"]
    assert all(set(line["probabilities"]) == {"happy", "sad"} for line in lines)

    pd.DataFrame({"comment": ["superb", "awful", "ok"]}).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(out), "--input", str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv"),
                 "--quiet"]) == 0
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["comment", "predicted_label", "score", "prob_happy", "prob_sad"]
    assert np.allclose(predictions["prob_happy"] + predictions["prob_sad"], 1.0, atol=1e-5)

    assert main(["evaluate", str(out), "--test-file", str(tmp_path / "test.jsonl"), "--text-column", "comment",
                 "--label-column", "tag", "--output", str(tmp_path / "reports" / "eval.json"), "--quiet"]) == 0
    saved = json.loads((tmp_path / "reports" / "eval.json").read_text())
    assert saved["split"] == "test" and saved["num_examples"] == 12
    assert saved["accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["test"]["accuracy"])
    assert main(["evaluate", str(out), "--test-file", str(tmp_path / "test.jsonl"), "--text-column", "comment",
                 "--label-column", "tag", "--eval-samples", "5", "--quiet"]) == 0
    assert "test (5 examples)" in capsys.readouterr().out

    assert main(argv) == 2  # a finished model is never overwritten by accident
    assert "already holds a trained model" in capsys.readouterr().err
    assert main([*argv, "--overwrite-output-dir"]) == 0


def test_padding_max_length_pads_every_example(tiny_model, tmp_path, monkeypatch):
    from finetext.training.trainer_engine import TrainerEngine

    seen = {}
    original = TrainerEngine.fit

    def spy(self, run):
        seen["lengths"] = {len(ids) for ids in run.encoded_train["input_ids"]}
        return original(self, run)

    monkeypatch.setattr(TrainerEngine, "fit", spy)
    finetext.train(tiny_run(tiny_model, tmp_path / "pad", dataset="sst2", padding="max_length", max_length=40,
                            epochs=1))
    assert seen["lengths"] == {40}


def test_interrupted_run_leaves_no_finished_artifact(tiny_model, tmp_path, monkeypatch):
    from finetext.training import run as run_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "save_artifact", interrupt)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        finetext.train(tiny_run(tiny_model, out, dataset="sst2", epochs=1))
    assert not (out / "finetext.yaml").exists()
    with pytest.raises(FinetextError, match="holds no trained model"):
        finetext.predict(out, ["text"])


def test_library_progress_bars_stay_out_of_a_run(tiny_model, tmp_path, capfd):
    """transformers' "Loading weights"/"Writing model shards" and datasets' "Saving the dataset" bars say
    nothing to the user; finetext's own bars (quiet here) are the only ones a run draws."""
    from transformers.utils import logging as hf_logging

    from finetext.library_output import set_library_bars

    set_library_bars(True)  # as in a user's process (a CLI test earlier in this one turned them off)
    try:
        run = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", epochs=1, report=False))
        finetext.predict(run.output_dir, ["a fine film"])
        err = capfd.readouterr().err
        assert not [bar for bar in ("Loading weights", "Writing model shards", "Saving the dataset", "Map")
                    if bar in err]
        assert hf_logging.is_progress_bar_enabled()  # switched back on after each call
    finally:
        set_library_bars(False)
