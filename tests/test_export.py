"""finetext export: ONNX directories (fp32 and int8) that predict, predict_file and evaluate load like a run's."""

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

import finetext
from finetext.cli import main
from finetext.config import config_from_flat, save_yaml
from finetext.errors import FinetextError
from finetext.inference.loader import load_classifier_dir
from finetext.inference.onnx_runtime import OnnxSequenceClassifier

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

# int8's tolerance on every CPU (docs/performance.md): probabilities within 0.15 of fp32's, and the same label
# for every text whose fp32 probability is at least 0.1 from the decision boundary.
INT8_MAX_PROBABILITY_SHIFT = 0.15
INT8_CLEAR_MARGIN = 0.1
EXPORT_FILES = {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "finetext.yaml",
                "export.json"}


def build_classifier(folder, tiny_model: str, label_names: list[str], texts: list[str], pairs: list[str] | None,
                     **data: str):
    """A one-layer random BERT classifier saved as a run saves it (finetext.yaml included), without training.

    A run of a few seconds gives nearly constant probabilities, which would make label agreement meaningless.
    Here the weights are drawn 10x wider than BERT's default so the logits spread, and the head's bias puts
    half of ``texts`` on each side of the decision boundary: the hard case for int8."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2,
                        id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)})
    model = BertForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    with torch.no_grad():
        logits = model(**tokenizer(texts, pairs, padding=True, truncation=True, max_length=64,
                                   return_tensors="pt")).logits
        margins = (logits[:, 1] - logits[:, 0]).sort().values
        middle = len(margins) // 2
        model.classifier.bias[1] -= (margins[middle - 1] + margins[middle]) / 2  # no text right on the boundary
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_yaml(config_from_flat({"model": tiny_model, "output_dir": str(folder), "max_length": 64,
                                "label_names": label_names, **data}), folder / "finetext.yaml")
    return folder


@pytest.fixture(scope="module")
def texts(data_dir) -> list[str]:
    """200 real sentences; the test model's decision boundary runs through the middle of them."""
    return pd.read_parquet(data_dir / "sst2" / "validation.parquet")["text"].head(200).tolist()


@pytest.fixture(scope="module")
def sst2_model(tiny_model, tmp_path_factory, texts):
    folder = tmp_path_factory.mktemp("export-sst2") / "run"
    return build_classifier(folder, tiny_model, ["negative", "positive"], texts, None, dataset="sst2")


@pytest.fixture(scope="module")
def fp32_dir(sst2_model, tmp_path_factory):
    return finetext.export(sst2_model, tmp_path_factory.mktemp("export-fp32") / "onnx")


def probabilities(records: list[dict]) -> np.ndarray:
    return np.array([list(r["probabilities"].values()) for r in records])


def test_fp32_export_writes_exactly_the_onnx_directory(fp32_dir, sst2_model):
    assert {p.name for p in fp32_dir.iterdir()} == EXPORT_FILES
    assert [p.name for p in fp32_dir.parent.iterdir()] == ["onnx"]  # no staging folder left behind
    info = json.loads((fp32_dir / "export.json").read_text())
    assert info["format"] == "onnx" and info["quantize"] is None and info["opset"] >= 18
    assert info["source"] == str(sst2_model.resolve()) and info["finetext_version"] == finetext.__version__
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and info["outputs"] == ["logits"]
    assert {"torch_version", "onnx_version", "onnxruntime_version"} <= set(info)
    assert 0 <= info["max_probability_difference"] < 1e-5
    assert json.loads((fp32_dir / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    assert (fp32_dir / "finetext.yaml").read_text() == (sst2_model / "finetext.yaml").read_text()


def test_fp32_predictions_match_pytorch(fp32_dir, sst2_model, texts):
    clf = load_classifier_dir(str(fp32_dir))
    assert isinstance(clf.model, OnnxSequenceClassifier) and clf.precision == "fp32"
    assert clf.label_names == ["negative", "positive"] and clf.max_length == 64 and clf.settings_known
    ours = finetext.predict(fp32_dir, texts)
    reference = finetext.predict(sst2_model, texts, precision="fp32")
    assert [r["label"] for r in ours] == [r["label"] for r in reference]
    assert {r["label"] for r in ours} == {"negative", "positive"}
    print(f"fp32: max probability difference {np.abs(probabilities(ours) - probabilities(reference)).max():.2e}")
    np.testing.assert_allclose(probabilities(ours), probabilities(reference), atol=1e-4)
    logits = clf.model(**clf.tokenizer(texts[:3], padding=True, return_tensors="pt")).logits
    assert logits.dtype == torch.float32 and logits.shape == (3, 2)


def test_evaluate_predict_file_and_cli_predict_run_through_onnx(fp32_dir, sst2_model, tmp_path, capsys):
    options = {"dataset": "sst2", "split": "validation", "eval_samples": 48, "progress": False}
    ours, reference = finetext.evaluate(fp32_dir, **options), finetext.evaluate(sst2_model, **options)
    assert ours["num_examples"] == 48 and ours["accuracy"] == reference["accuracy"]
    assert ours["confusion_matrix"] == reference["confusion_matrix"]
    pd.DataFrame({"text": ["a gem of a film", "dreadful and long"]}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(fp32_dir), "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.csv"), "--quiet"]) == 0
    written = pd.read_csv(tmp_path / "out.csv")
    assert set(written["predicted_label"]) <= {"negative", "positive"} and "prob_positive" in written
    assert main(["predict", str(fp32_dir), "a gem of a film", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["text"] == "a gem of a film"


def test_sentence_pair_model_exports_to_int8_through_the_cli(tiny_model, fp32_dir, data_dir, tmp_path, capsys):
    """int8, a sentence-pair model and the CLI in one export (each export takes seconds)."""
    rows = pd.read_parquet(data_dir / "mrpc" / "test.parquet").head(200)
    first, second = rows["sentence1"].tolist(), rows["sentence2"].tolist()
    run = build_classifier(tmp_path / "mrpc", tiny_model, ["not_equivalent", "equivalent"], first, second,
                           dataset="mrpc", text_column="sentence1", text_pair_column="sentence2")
    out = tmp_path / "int8"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier export")
    assert main(["export", str(run), "--format", "onnx", "--quantize", "int8", "--output-dir", str(out),
                 "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert f"written to {out}" in printed and "max probability difference from PyTorch" in printed
    assert {p.name for p in out.iterdir()} == EXPORT_FILES  # stale.txt went with the directory it was in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8", "mrpc"]  # no staging or old folder left
    info = json.loads((out / "export.json").read_text())
    assert info["quantize"] == "int8" and f"{info['max_probability_difference']:.2e}" in printed
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert (out / "model.onnx").stat().st_size < 0.5 * (fp32_dir / "model.onnx").stat().st_size
    ours, reference = finetext.predict(out, first, second), finetext.predict(run, first, second, precision="fp32")
    agree = np.array([a["label"] == b["label"] for a, b in zip(ours, reference, strict=True)])
    difference = np.abs(probabilities(ours) - probabilities(reference)).max()
    clear = np.abs(probabilities(reference)[:, 1] - 0.5) >= INT8_CLEAR_MARGIN  # texts away from the boundary
    summary = (f"int8: labels agree on {agree.mean():.1%} ({agree[clear].mean():.1%} of the {clear.sum()} texts "
               f"at least {INT8_CLEAR_MARGIN} from the boundary), max probability difference {difference:.2e}")
    print(summary)  # shown by pytest -rP
    # int8 kernels differ between CPUs (VNNI or not, AMX): measured 0.02-0.07 here. What holds on every CPU: a
    # bounded shift (docs/performance.md states it) and the same label wherever fp32 is not close to a tie.
    assert difference < INT8_MAX_PROBABILITY_SHIFT and agree[clear].all() and agree.mean() >= 0.85, summary
    assert {r["label"] for r in ours} == {"not_equivalent", "equivalent"}
    with pytest.raises(FinetextError, match="trained on sentence pairs"):
        finetext.predict(out, ["only one sentence"])


def test_corrupt_model_file_is_a_one_line_error_naming_it(fp32_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(fp32_dir, broken)
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    assert main(["predict", str(broken), "some text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load {broken}/model.onnx") and len(err.strip().splitlines()) == 1


def test_a_failed_export_leaves_the_output_directory_as_it_was(sst2_model, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(FinetextError, match="torch.onnx could not export the model: exporter crashed"):
        finetext.export(sst2_model, tmp_path / "new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("an earlier export")
    with pytest.raises(FinetextError, match="exporter crashed"):
        finetext.export(sst2_model, tmp_path / "old", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (tmp_path / "old" / "keep.txt").is_file()


CLI_ERRORS = {
    "missing dir": (["{tmp}/nope", "--output-dir", "{tmp}/out"], "model directory not found: {tmp}/nope."),
    "unknown quantize": (["{model}", "--quantize", "int4", "--output-dir", "{tmp}/out"],
                         "unknown --quantize value 'int4'; valid values: int8."),
    "unknown format": (["{model}", "--format", "tflite", "--output-dir", "{tmp}/out"],
                       "unknown export format 'tflite'; valid formats: onnx."),
    "existing output": (["{model}", "--output-dir", "{tmp}/full"],
                        "output directory {tmp}/full already exists and is not empty. Pass --overwrite"),
    "output is the source": (["{model}", "--output-dir", "{model}", "--overwrite"],
                             "--output-dir {model} would replace the model being exported."),
    "already onnx": (["{onnx}", "--output-dir", "{tmp}/out"], "{onnx} is already an ONNX export."),
    "no output dir": (["{model}"], "the following arguments are required: --output-dir"),
}


@pytest.mark.parametrize("case", sorted(CLI_ERRORS))
def test_export_errors_are_one_line_and_exit_2(case, sst2_model, fp32_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "model.onnx").write_text("someone else's file")
    flags, message = CLI_ERRORS[case]
    paths = {"tmp": tmp_path, "model": sst2_model, "onnx": fp32_dir}
    try:
        code = main(["export", *(f.format(**paths) for f in flags)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message.format(**paths) in errors[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert (tmp_path / "full" / "model.onnx").read_text() == "someone else's file"


def write_weights(clf, staging, quantize, opset):
    """A toy export format: the PyTorch weights again (what a real one writes is its own model files)."""
    clf.model.save_pretrained(staging)
    return {"files": ["model.safetensors"]}


def test_a_new_export_format_is_one_function_and_one_registration(sst2_model, tmp_path, monkeypatch, capsys):
    from finetext.inference.export_formats import EXPORT_FORMATS, ExportFormat

    monkeypatch.setitem(EXPORT_FORMATS, "weights", ExportFormat("weights", "the PyTorch weights again",
                                                                f"{__name__}:write_weights", backend="pytorch"))
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "weights: the PyTorch weights again" in " ".join(capsys.readouterr().out.split())
    assert main(["export", str(sst2_model), "--format", "weights", "--output-dir", str(tmp_path / "out")]) == 0
    assert "weights model (fp32) written to" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "export.json").read_text())
    assert info["format"] == "weights" and info["files"] == ["model.safetensors"]
    assert info["max_probability_difference"] < 1e-5  # checked through the format's backend (same weights)
    assert finetext.predict(tmp_path / "out", ["a gem"])[0]["label"] in {"negative", "positive"}
    with pytest.raises(FinetextError, match=r"unknown --quantize value 'int8'; valid values: none"):
        finetext.export(sst2_model, tmp_path / "q", format="weights", quantize="int8")


# ------------------------------------------------------------------------------------- backend chosen by speed


@pytest.fixture()
def own_cache(tmp_path, monkeypatch):
    from finetext.hardware import choices

    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(choices, "_memo", {})
    return tmp_path / "cache"


def test_backend_onnxruntime_on_a_training_directory_runs_its_cached_onnx_copy(sst2_model, texts, own_cache,
                                                                               monkeypatch):
    from finetext.inference import export

    ours = finetext.predict(sst2_model, texts, backend="onnxruntime")
    [copy] = (own_cache / "onnx").iterdir()
    assert (copy / "model.onnx").is_file() and (copy / "finetext.yaml").is_file()
    reference = finetext.predict(sst2_model, texts, precision="fp32")
    np.testing.assert_allclose(probabilities(ours), probabilities(reference), atol=1e-4)
    monkeypatch.setattr(export, "export_model", lambda *a, **k: pytest.fail("exported twice"))
    finetext.predict(sst2_model, texts[:4], backend="onnxruntime")  # the copy is reused


def test_backend_auto_switches_to_onnxruntime_only_where_it_measured_faster(sst2_model, texts, own_cache,
                                                                            monkeypatch, caplog):
    from finetext.hardware.choices import Choice
    from finetext.inference import backend_choice

    monkeypatch.setattr(backend_choice, "MIN_BACKEND_SECONDS", 0.0)
    winner = {"value": "onnxruntime"}
    measured = []

    def measure(clf, onnx, workload, precision):
        measured.append(workload.shape())
        return Choice("backend", winner["value"], {"pytorch fp32": 0.2, "onnxruntime": 0.1}, {}, workload.shape())

    monkeypatch.setattr(backend_choice, "measure", measure)
    loaded = []
    original = backend_choice.faster_backend

    def spy(clf, model_dir, workload):
        loaded.append(result := original(clf, model_dir, workload))
        return result

    monkeypatch.setattr(backend_choice, "faster_backend", spy)
    with caplog.at_level(logging.INFO, logger="finetext"):
        finetext.predict(sst2_model, texts, batch_size=8)
    assert loaded[-1].backend == "onnxruntime" and len(measured) == 1
    assert any("inference backend onnxruntime: measured at 8 x" in r.getMessage() for r in caplog.records)
    finetext.predict(sst2_model, texts, batch_size=8, precision="fp32")  # exact numbers asked: PyTorch
    assert loaded[-1].backend == "pytorch"
    short = texts[:8]
    monkeypatch.setattr(backend_choice, "MIN_BACKEND_SECONDS", 1e9)  # a prediction too short to matter
    finetext.predict(sst2_model, short, batch_size=8)
    assert loaded[-1].backend == "pytorch" and len(measured) == 1


def test_a_cached_pytorch_choice_never_exports(sst2_model, texts, own_cache, monkeypatch):
    from finetext.hardware.choices import Choice
    from finetext.inference import backend_choice, export

    monkeypatch.setattr(backend_choice, "MIN_BACKEND_SECONDS", 0.0)
    monkeypatch.setattr(backend_choice, "measure", lambda clf, onnx, workload, precision: Choice(
        "backend", "pytorch", {"pytorch fp32": 0.1, "onnxruntime": 0.2}, {}, workload.shape()))
    finetext.predict(sst2_model, texts, batch_size=8)  # measured once: the export was needed to measure
    monkeypatch.setattr(export, "export_model", lambda *a, **k: pytest.fail("exported although PyTorch won"))
    shutil.rmtree(own_cache / "onnx")
    records = finetext.predict(sst2_model, texts, batch_size=8)
    assert len(records) == len(texts) and not (own_cache / "onnx").exists()
