"""Inference backends: a third backend is one class and one registration; saved settings come back typed; a
loaded Classifier is never changed by its users."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from transformers import AutoTokenizer, PreTrainedConfig

import finetext
from finetext.artifacts import open_artifact
from finetext.cli import main
from finetext.config import DataConfig, config_from_flat, save_yaml
from finetext.errors import FinetextError
from finetext.inference import loader
from finetext.inference.classifier import PLAIN_MODEL_MAX_LENGTH, Classifier, classifier_for
from finetext.models.pretrained import packaged_model_dir
from finetext.serving.app import create_app

MARKER = "model.echo"


class LengthModel:
    """Scores 'long' for inputs of more than 6 tokens, 'short' otherwise; remembers the widest batch it saw."""

    def __init__(self):
        self.config = PreTrainedConfig(num_labels=2)
        self.device = torch.device("cpu")
        self.widest = 0

    def __call__(self, input_ids, attention_mask, **_):
        self.widest = max(self.widest, input_ids.shape[1])
        tokens = attention_mask.sum(-1).float()
        return SimpleNamespace(logits=torch.stack([6 - tokens, tokens - 6], dim=-1))


class EchoBackend:
    """A third backend, as a newcomer would add one (OpenVINO, TensorRT): it claims directories by a file of
    its own and builds the Classifier with classifier_for."""

    name = "echo"

    def __init__(self):
        self.models: list[LengthModel] = []

    def can_load(self, artifact) -> bool:
        return (artifact.path / MARKER).is_file()

    def load(self, artifact, options) -> Classifier:
        self.models.append(LengthModel())
        tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir())
        return classifier_for(artifact, self.models[-1], tokenizer, "fp32", self.name)


def model_dir(folder: Path, settings: dict | None = None, marker: bool = True) -> Path:
    """config.json with the labels, finetext.yaml from settings (none: a plain HF directory), the marker."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"id2label": {"0": "short", "1": "long"}}')
    if settings is not None:
        save_yaml(config_from_flat({"output_dir": str(folder), **settings}), folder / "finetext.yaml")
    if marker:
        (folder / MARKER).write_text("")
    return folder


@pytest.fixture
def echo(monkeypatch) -> EchoBackend:
    backend = EchoBackend()
    monkeypatch.setattr(loader, "BACKENDS", (backend, *loader.BACKENDS))  # the one registration
    return backend


TEXTS = ["fine", "a much longer text that runs well past six tokens"]


def test_a_registered_backend_serves_predict_evaluate_and_the_server(echo, tmp_path):
    folder = model_dir(tmp_path / "model", {"max_length": 32, "threshold": 0.3})
    assert [r["label"] for r in finetext.predict(folder, TEXTS)] == ["short", "long"]
    clf = loader.load_classifier_dir(folder)
    assert (clf.backend, clf.max_length, clf.threshold, clf.settings_known) == ("echo", 32, 0.3, True)

    pd.DataFrame({"text": TEXTS * 5, "label": ["short", "long"] * 5}).to_csv(tmp_path / "test.csv", index=False)
    report = finetext.evaluate(folder, test_file=str(tmp_path / "test.csv"), max_length=4, progress=False)
    assert report["num_examples"] == 10 and echo.models[-1].widest == 4  # evaluate's --max-length applied
    assert report["accuracy"] == 0.5  # every text truncated to 4 tokens reads as short

    with TestClient(create_app(str(folder))) as client:
        assert client.get("/info").json()["backend"] == "echo"
        assert [p["label"] for p in client.post("/predict", json={"texts": TEXTS}).json()] == ["short", "long"]


def test_a_backend_that_cannot_load_the_directory_is_refused_by_name(echo, tmp_path):
    folder = model_dir(tmp_path / "model", {"max_length": 32}, marker=False)
    with pytest.raises(FinetextError, match=r"cannot be loaded by the echo backend"):
        loader.load_classifier_dir(folder, backend="echo")


def test_a_classifier_is_not_changed_after_loading(echo, tmp_path):
    clf = loader.load_classifier_dir(model_dir(tmp_path / "model", {"max_length": 32}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        clf.max_length = 8  # type: ignore[misc]
    assert dataclasses.replace(clf, max_length=8).max_length == 8 and clf.max_length == 32


def test_saved_settings_come_back_as_the_typed_config(tmp_path):
    saved = open_artifact(model_dir(tmp_path / "run", {"max_length": 77, "seed": 7, "strategy": "head"})).config
    assert (saved.data.max_length, saved.training.seed, saved.model.strategy) == (77, 7, "head")
    assert saved.data.threshold == DataConfig().threshold  # defaults from config.py, not restated


def test_a_plain_hugging_face_directory_gets_the_config_defaults(echo, tmp_path):
    folder = model_dir(tmp_path / "plain")
    assert open_artifact(folder).config is None
    clf = loader.load_classifier_dir(folder)
    assert not clf.settings_known and clf.threshold == DataConfig().threshold and clf.text_column == "text"
    assert clf.max_length == 512  # the tokenizer's own limit (MiniLM: 512)
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir(), model_max_length=int(1e30))  # no stated limit
    capped = classifier_for(open_artifact(folder), LengthModel(), tokenizer, "fp32", "echo")
    assert capped.max_length == PLAIN_MODEL_MAX_LENGTH == 512


BAD_SETTINGS = {
    "unknown key": ({"data": {"max_length": 64, "no_such_setting": 1}}, "unknown config key 'no_such_setting'"),
    "bad value": ({"data": {"threshold": 2}}, "threshold must be between 0 and 1"),
    "wrong type": ({"training": {"seed": "seven"}}, "seed must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_unreadable_saved_settings_are_one_error_naming_the_file(case, tmp_path, capsys):
    settings, message = BAD_SETTINGS[case]
    folder = model_dir(tmp_path / "run", marker=False)
    (folder / "finetext.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(FinetextError, match=message) as caught:
        open_artifact(folder)
    assert str(folder / "finetext.yaml") in str(caught.value)
    capsys.readouterr()
    assert main(["predict", str(folder), "a fine film", "--quiet"]) == 2
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and str(folder / "finetext.yaml") in line and message in line, line
