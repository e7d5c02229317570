"""A process killed while saving an artifact leaves the previous model intact and loadable, or the new one
complete: never a mix, never a folder that looks finished but is not.

The child process replaces a trained artifact with a changed model (one class's bias raised by 5) and is
SIGKILLed at a chosen point of save_artifact."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_run

import finetext
from finetext.artifacts import prepare_output_dir
from finetext.config import config_from_flat
from finetext.errors import FinetextError

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

TEXTS = ["a gripping, beautifully acted film", "a dull and lifeless mess"]

CHILD = r"""
import os, signal, sys
from pathlib import Path
import torch, yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from finetext import artifacts
from finetext.config import config_from_flat, flatten

out, point = Path(sys.argv[1]), sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained(out)
with torch.no_grad():
    model.classifier.bias[0] += 5.0
tokenizer = AutoTokenizer.from_pretrained(out)
cfg = config_from_flat(flatten(yaml.safe_load((out / "finetext.yaml").read_text())))

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_exchange, real_move = artifacts.exchange_folders, artifacts.shutil.move
moves = []

def exchange_then_die(a, b):
    real_exchange(a, b)
    die()

def move_twice_then_die(src, dst):
    moves.append(src)
    if len(moves) == 3:
        die()
    return real_move(src, dst)

extras = None
if point == "after_weights":
    artifacts.write_json = die
elif point == "before_swap":
    extras = die
elif point == "swapping":
    artifacts.exchange_folders = die
elif point == "after_swap":
    artifacts.exchange_folders = exchange_then_die
elif point == "no_swap_mid_move":
    artifacts.exchange_folders = lambda a, b: False
    artifacts.shutil.move = move_twice_then_die
artifacts.save_artifact(out, model, tokenizer, cfg, {"changed": True}, "card", write_extras=extras)
print("saved")
"""


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("atomic") / "model"
    finetext.train(tiny_run(tiny_model, out, dataset="sst2", epochs=1))
    return out


@pytest.fixture
def artifact(trained, tmp_path) -> Path:
    """A fresh copy of the trained artifact for each kill."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    return copy


def scores(folder: Path) -> list[float]:
    return [r["score"] for r in finetext.predict(folder, TEXTS, precision="fp32")]


def kill_while_saving(artifact: Path, point: str) -> None:
    child = subprocess.run([sys.executable, "-c", CHILD, str(artifact), point], capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def staging_leftovers(artifact: Path) -> list[Path]:
    return list(artifact.parent.glob(f".{artifact.name}.staging-*"))


@pytest.mark.parametrize("point", ["after_weights", "before_swap", "swapping"])
def test_killed_before_the_swap_leaves_the_previous_model(artifact, point):
    before_scores, before_metrics = scores(artifact), (artifact / "metrics.json").read_text()
    kill_while_saving(artifact, point)
    assert scores(artifact) == before_scores
    assert (artifact / "metrics.json").read_text() == before_metrics
    assert staging_leftovers(artifact)  # the half-written new model, beside and hidden
    cfg = config_from_flat({"output_dir": str(artifact), "overwrite_output_dir": True, "dataset": "sst2"})
    prepare_output_dir(cfg)  # the next run clears what the killed one left
    assert not staging_leftovers(artifact)


def test_killed_right_after_the_swap_leaves_the_new_model_complete(artifact):
    before = scores(artifact)
    kill_while_saving(artifact, "after_swap")
    after = scores(artifact)
    assert after != before  # the changed model, whole: its own config, weights and metrics
    assert json.loads((artifact / "metrics.json").read_text()) == {"changed": True}
    assert (artifact / "finetext.yaml").is_file()


def test_a_save_without_the_swap_never_looks_finished_when_interrupted(artifact):
    kill_while_saving(artifact, "no_swap_mid_move")
    assert not (artifact / "finetext.yaml").exists()
    with pytest.raises(FinetextError, match="incomplete model|no trained model"):
        finetext.predict(artifact, TEXTS)


def test_a_completed_save_keeps_the_users_files_and_drops_the_previous_report(artifact):
    (artifact / "notes.txt").write_text("mine")
    (artifact / "report.html").write_text("<html>old</html>")
    subprocess.run([sys.executable, "-c", CHILD, str(artifact), "none"], check=True, capture_output=True,
                   timeout=300)
    assert (artifact / "notes.txt").read_text() == "mine"
    assert not (artifact / "report.html").exists()  # the changed model's save wrote none
    assert json.loads((artifact / "metrics.json").read_text()) == {"changed": True}
    assert not staging_leftovers(artifact)
