"""Reliability: a damaged or foreign model directory gets one line naming the file and the fix (exit code 2);
only safetensors weights are loaded and nothing is unpickled; a model's own code runs only with
--trust-remote-code; the same config and seed give the same model on CPU."""

from __future__ import annotations

import _pickle
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_run, without_timing
from safetensors.torch import load_file

import finetext
from finetext.cli import main
from finetext.errors import FinetextError
from finetext.training import checkpoint as ckpt
from finetext.training import run as run_module

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

# sst5 rather than sst2: the same kind of data, and its test split has labels, so test metrics are compared too.
DATA = {"dataset": "sst5", "epochs": 1, "report": False}


def train(tiny_model: str, out: Path, **overrides) -> Path:
    return finetext.train(tiny_run(tiny_model, out, **{**DATA, **overrides})).output_dir


@pytest.fixture(scope="module")
def artifact(tiny_model, tmp_path_factory) -> Path:
    """A finished run of the Trainer engine (also the first of the determinism pair)."""
    return train(tiny_model, tmp_path_factory.mktemp("trainer") / "run")


@pytest.fixture
def copy(artifact, tmp_path) -> Path:
    """A copy of the artifact to damage."""
    return Path(shutil.copytree(artifact, tmp_path / "model"))


@pytest.fixture(scope="module")
def lora_artifact(tiny_model, tmp_path_factory) -> Path:
    """An adapter-only LoRA artifact: adapter/ plus the base model named in finetext.yaml."""
    return train(tiny_model, tmp_path_factory.mktemp("lora") / "run", strategy="lora", lora_merge=False)


@pytest.fixture(scope="module")
def interrupted(tiny_model, tmp_path_factory) -> Path:
    """A native-engine run stopped after training, before its artifact: checkpoints step-10 and step-12 (of 12)."""
    out = tmp_path_factory.mktemp("native") / "run"

    def interrupt(*args):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module.TrainingRun, "finish_model", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_model, out, engine="native", save_steps=2, epochs=2)
    return out


@pytest.fixture
def resumable(interrupted, tmp_path) -> Path:
    return Path(shutil.copytree(interrupted, tmp_path / "interrupted"))


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit code 2 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def evil_pickle(marker: Path) -> bytes:
    """A pickle that creates marker when unpickled: proof of whether anything unpickled it."""

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    return pickle.dumps(Payload())


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any unpickling (pickle, its C module, torch.load, dill) raises. Code that imported one of these
    functions by name before this fixture ran is not covered; transformers, peft and torch call them
    through their modules."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    if "dill" in sys.modules:
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(sys.modules["dill"], name, refuse)


# ---------------------------------------------------------------------------------------------------------
# Damaged files: the message names the file.


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated": truncate,
    "garbage": lambda path: path.write_bytes(os.urandom(4096)),
    "empty": lambda path: path.write_bytes(b""),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_weights_are_named(damage, copy, capsys):
    weights = copy / "model.safetensors"
    DAMAGE[damage](weights)
    line = cli_error(["predict", str(copy), "a fine film", "--quiet"], capsys)
    assert f"{weights} is damaged or truncated" in line and "Re-run training" in line
    with pytest.raises(FinetextError, match="model.safetensors is damaged or truncated"):
        finetext.predict(copy, ["a fine film"])


DAMAGED_FILES = {
    "config.json invalid": ("config.json", lambda p: p.write_text("{not json"), "is not valid JSON"),
    "config.json not a config": ("config.json", lambda p: p.write_text("[1, 2]"), "is not a model config"),
    "tokenizer.json invalid": ("tokenizer.json", lambda p: p.write_text("{not json"), "is not valid JSON"),
    "tokenizer.json truncated": ("tokenizer.json", truncate, "is not valid JSON"),
    "tokenizer.json missing": ("tokenizer.json", Path.unlink, "has no vocabulary"),
    "tokenizer_config.json invalid": ("tokenizer_config.json", lambda p: p.write_bytes(b"\xff\xfe"),
                                      "is not valid JSON"),
    "finetext.yaml invalid": ("finetext.yaml", lambda p: p.write_text("data: [unclosed\n"), "is not valid YAML"),
    "finetext.yaml a list": ("finetext.yaml", lambda p: p.write_text("- a\n"), "is not a finetext config"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_FILES))
def test_damaged_config_and_tokenizer_files_are_named(case, copy, capsys):
    name, damage, message = DAMAGED_FILES[case]
    damage(copy / name)
    line = cli_error(["predict", str(copy), "a fine film", "--quiet"], capsys)
    assert str(copy / name) in line and message in line, line
    assert "re-run training" in line.lower()
    with pytest.raises(FinetextError, match=message):
        finetext.predict(copy, ["a fine film"])


def test_damaged_base_model_is_named_before_the_data_is_read(tiny_model, tmp_path, capsys):
    model = Path(shutil.copytree(tiny_model, tmp_path / "base"))
    truncate(model / "model.safetensors")
    line = cli_error(["train", "--dataset", "no-such-dataset", "--model", str(model), "--output-dir",
                      str(tmp_path / "out"), "--quiet"], capsys)
    assert f"{model / 'model.safetensors'} is damaged or truncated" in line and "--model" in line


NOT_ARTIFACTS = {
    "empty directory": (lambda d: d.mkdir(), "holds no trained model (config.json missing)"),
    "random files": (lambda d: (d.mkdir(), (d / "notes.txt").write_text("hi"),
                                (d / "blob.dat").write_bytes(os.urandom(64))), "holds no trained model"),
    "a file": (lambda d: d.write_text("not a directory"), "is a file, not a model directory"),
    "no such path": (lambda d: None, "model directory not found"),
    "only checkpoints (interrupted run)": (lambda d: (d / "checkpoints" / "step-7").mkdir(parents=True),
                                           "holds no trained model (config.json missing). Training did not "
                                           "finish there"),
}


@pytest.mark.parametrize("case", sorted(NOT_ARTIFACTS))
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_what_is_not_an_artifact_is_one_line(case, command, tmp_path, capsys):
    make, message = NOT_ARTIFACTS[case]
    folder = tmp_path / "thing"
    make(folder)
    extra = ["a fine film"] if command == "predict" else ["--dataset", "sst5"]
    line = cli_error([command, str(folder), *extra, "--quiet"], capsys)
    assert f"{folder}" in line and message in line, line


# ---------------------------------------------------------------------------------------------------------
# Only safetensors; nothing is unpickled.


def test_pickle_weights_are_refused_and_never_unpickled(copy, lora_artifact, tiny_model, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    (copy / "model.safetensors").unlink()
    (copy / "pytorch_model.bin").write_bytes(evil_pickle(marker))
    line = cli_error(["predict", str(copy), "a fine film", "--quiet"], capsys)
    assert f"{copy / 'pytorch_model.bin'} holds pickle weights" in line
    assert "finetext loads only safetensors weights" in line and "save_pretrained" in line

    base = Path(shutil.copytree(tiny_model, tmp_path / "base"))
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(evil_pickle(marker))
    line = cli_error(["train", "--dataset", "sst5", "--model", str(base), "--output-dir", str(tmp_path / "out"),
                      "--quiet"], capsys)
    assert f"{base / 'pytorch_model.bin'} holds pickle weights" in line

    lora = Path(shutil.copytree(lora_artifact, tmp_path / "lora"))
    (lora / "adapter" / "adapter_model.safetensors").unlink()
    (lora / "adapter" / "adapter_model.bin").write_bytes(evil_pickle(marker))
    line = cli_error(["predict", str(lora), "a fine film", "--quiet"], capsys)
    assert f"{lora / 'adapter' / 'adapter_model.bin'} holds pickle weights" in line
    assert not marker.exists()


def test_loading_and_predicting_unpickle_nothing(artifact, lora_artifact, no_unpickling):
    assert not (lora_artifact / "model.safetensors").exists()
    for folder in (artifact, lora_artifact):
        records = finetext.predict(folder, ["a fine film", "dreadful"])
        assert {r["label"] for r in records} <= {"very negative", "negative", "neutral", "positive",
                                                 "very positive"}


def test_resuming_a_native_checkpoint_unpickles_nothing(resumable, tmp_path, no_unpickling, capsys):
    marker = tmp_path / "unpickled"
    latest = ckpt.latest_checkpoint(resumable / "checkpoints")
    for name in ("optimizer.pt", "rng.pth", "scheduler.pt", "training_args.bin"):  # the Trainer's names
        (latest / name).write_bytes(evil_pickle(marker))
    assert main(["train", "--resume", "--output-dir", str(resumable), "--quiet"]) == 0
    assert "model saved to" in capsys.readouterr().out
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------
# A model's own Python code runs only with --trust-remote-code.


def with_custom_code(source: Path, folder: Path, marker: Path) -> Path:
    """A copy of source whose config.json maps to a class in modeling_evil.py, which creates marker on import."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil"  # a type transformers does not know: only the directory's code can load it
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel",
                          "AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n\n"
        "from transformers import BertConfig, BertForSequenceClassification\n\n\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil'\n\n\n"
        "class EvilModel(BertForSequenceClassification):\n    config_class = EvilConfig\n")
    return folder


@pytest.fixture
def modules_cache(tmp_path, monkeypatch) -> None:
    """transformers copies trusted code into HF_MODULES_CACHE and puts it on sys.path: both kept to this test."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", [*sys.path])


def test_remote_code_runs_only_when_asked(artifact, tiny_model, tmp_path, modules_cache, capsys):
    marker = tmp_path / "code-ran"
    model = with_custom_code(Path(tiny_model), tmp_path / "base", marker)
    line = cli_error(["train", "--dataset", "sst5", "--model", str(model), "--output-dir", str(tmp_path / "out"),
                      "--quiet"], capsys)
    assert f"{model} needs custom code to load" in line and "Pass --trust-remote-code if you trust it" in line
    evil = with_custom_code(artifact, tmp_path / "evil-run", marker)
    line = cli_error(["predict", str(evil), "a fine film", "--quiet"], capsys)
    assert f"{evil} needs custom code to load" in line and "Pass --trust-remote-code if you trust it" in line
    with pytest.raises(FinetextError, match="needs custom code"):
        finetext.predict(evil, ["a fine film"])
    assert not marker.exists()

    assert main(["predict", str(evil), "a fine film", "--quiet", "--trust-remote-code"]) == 0
    assert marker.exists()  # the check above can fail: this code does run when trusted


# ---------------------------------------------------------------------------------------------------------
# Determinism on CPU.


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def same_run(a: Path, b: Path) -> None:
    """The same metrics (timings aside) and bitwise the same weights."""
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert without_timing(first["history"]) == without_timing(second["history"])
    assert without_timing([first["best"]]) == without_timing([second["best"]])
    assert first["final"] == second["final"] and first["test"] == second["test"]
    ours, theirs = weights(a), weights(b)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_same_seed_gives_the_same_model_with_either_engine(artifact, tiny_model, tmp_path):
    same_run(artifact, train(tiny_model, tmp_path / "trainer-again"))
    native = train(tiny_model, tmp_path / "native", engine="native")
    same_run(native, train(tiny_model, tmp_path / "native-again", engine="native"))
    other_seed = weights(train(tiny_model, tmp_path / "other-seed", engine="native", seed=7))
    assert not all(torch.equal(tensor, other_seed[k]) for k, tensor in weights(native).items())


# ---------------------------------------------------------------------------------------------------------
# A damaged checkpoint.


def test_damaged_checkpoint_is_named_and_the_one_before_resumes(resumable, capsys):
    checkpoints = ckpt.complete_checkpoints(resumable / "checkpoints")
    assert [p.name for p in checkpoints] == ["step-10", "step-12"]
    truncate(checkpoints[-1] / "model.safetensors")
    line = cli_error(["train", "--resume", "--output-dir", str(resumable), "--quiet"], capsys)
    assert f"cannot read {checkpoints[-1] / 'model.safetensors'}" in line
    assert f"The checkpoint is damaged; delete {checkpoints[-1]} to resume from the one before." in line

    shutil.rmtree(checkpoints[-1])  # what the message says to do
    assert main(["train", "--resume", "--output-dir", str(resumable), "--quiet"]) == 0
    assert (resumable / "finetext.yaml").is_file()


def test_damaged_optimizer_state_is_named(resumable, capsys):
    latest = ckpt.latest_checkpoint(resumable / "checkpoints")
    (latest / "optimizer.safetensors").write_bytes(b"")
    line = cli_error(["train", "--resume", "--output-dir", str(resumable), "--quiet"], capsys)
    assert f"cannot read {latest / 'optimizer.safetensors'}" in line and f"delete {latest}" in line
