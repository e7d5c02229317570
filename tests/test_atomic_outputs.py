"""A process killed while writing an export or predict's output file leaves the previous one intact, or the
new one complete: never half of one (as tests/test_atomic_artifacts.py checks for a training run's artifact).

Each child process replaces an existing output and is SIGKILLed at a chosen point of the write. The export's
child copies a prepared export into the staging folder instead of converting the model again (the ONNX
conversion takes seconds and is not what is tested here); everything else is export_model's own path. Predict's
output file is written by data.files.write_table: one child runs predict_file, the others (quick: no model)
write_table itself, for several formats and moments."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import random_classifier
from transformers import BertForSequenceClassification

import finetext
from finetext.api import predict_file
from finetext.data.files import read_table, write_table
from finetext.storage import remove_stale_staging

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

TEXTS = ["a gripping, beautifully acted film", "a dull and lifeless mess"]

KILL = r"""
import os, signal, sys
from pathlib import Path
from finetext import storage

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_exchange, real_replace = storage.exchange_folders, os.replace

def exchange_then_die(a, b):
    real_exchange(a, b)
    die()

def replace_then_die(src, dst):
    real_replace(src, dst)
    die()

def no_exchange_and_die_after_the_first_rename(a, b):
    os.replace = replace_then_die  # the previous folder is set aside, the new one not yet renamed in
    return False

def half_written_then_die(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    die()

def flushed_then(rename):
    def fsync_then_arm(path):  # the file is written in full; now its rename
        real_fsync(path)
        os.replace = rename
    return fsync_then_arm

real_fsync = storage._fsync_file

point = sys.argv[1]
if point == "after_swap":
    storage.exchange_folders = exchange_then_die
elif point == "set_aside":
    storage.exchange_folders = no_exchange_and_die_after_the_first_rename
elif point == "half_written":
    storage._fsync_file = half_written_then_die
elif point == "renaming":
    storage._fsync_file = flushed_then(die)
elif point == "after_rename":
    storage._fsync_file = flushed_then(replace_then_die)
"""

EXPORT_CHILD = KILL + r"""
import shutil
from finetext.inference import export

source, prepared, out = map(Path, sys.argv[2:5])

def copy_prepared(chosen, clf, source, staging, quantize, opset):
    for item in prepared.iterdir():
        if item.name != export.EXPORT_INFO:
            shutil.copy(item, staging / item.name)
    if point == "writing":
        die()  # every file but export.json written
    export.write_json(staging / export.EXPORT_INFO, {"format": "onnx", "new": True})

export._write_export = copy_prepared
export.export_model(source, out, overwrite=True)
print("exported")
"""

PREDICT_CHILD = KILL + r"""
from finetext.api import predict_file

model, table, out = sys.argv[2:5]
predict_file(model, table, out, progress=False)
print("written")
"""

TABLE_CHILD = KILL + r"""
import pandas as pd
from finetext.data.files import write_table

write_table(pd.DataFrame({"text": ["fine", "awful", "lovely"], "score": [0.5, 0.25, 0.125]}), Path(sys.argv[2]))
print("written")
"""


def run_child(script: str, point: str, *args: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, point, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def kill_child(script: str, point: str, *args: Path) -> None:
    child = run_child(script, point, *args)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def classifier(tiny_model, tmp_path_factory) -> Path:
    """A one-layer random BERT classifier saved as a plain Hugging Face model directory."""
    folder = tmp_path_factory.mktemp("classifier") / "model"
    return random_classifier(folder, tiny_model)


@pytest.fixture(scope="module")
def exports(classifier, tmp_path_factory) -> tuple[Path, Path]:
    """The export a child replaces, and the (different) one it writes: the same model, its bias changed."""
    root = tmp_path_factory.mktemp("exports")
    old = finetext.export(classifier, root / "old")
    changed = root / "changed-model"
    shutil.copytree(classifier, changed)
    model = BertForSequenceClassification.from_pretrained(changed)
    with torch.no_grad():
        model.classifier.bias[0] += 5.0
    model.save_pretrained(changed)
    return old, finetext.export(changed, root / "new")


@pytest.fixture
def export_dir(exports, tmp_path) -> Path:
    """A fresh copy of the old export for each kill."""
    return Path(shutil.copytree(exports[0], tmp_path / "onnx"))


def scores(folder: Path) -> list[float]:
    return [r["score"] for r in finetext.predict(folder, TEXTS)]


def test_an_export_killed_before_the_swap_leaves_the_previous_export(export_dir, exports, classifier):
    before = scores(export_dir)
    kill_child(EXPORT_CHILD, "writing", classifier, exports[1], export_dir)
    assert scores(export_dir) == before
    assert "new" not in json.loads((export_dir / "export.json").read_text())
    assert hidden_leftovers(export_dir.parent)  # the half-written export, beside and hidden
    remove_stale_staging(export_dir)  # what the next export does first
    assert not hidden_leftovers(export_dir.parent) and scores(export_dir) == before


def test_an_export_killed_right_after_the_swap_leaves_the_new_export_complete(export_dir, exports, classifier):
    before = scores(export_dir)
    kill_child(EXPORT_CHILD, "after_swap", classifier, exports[1], export_dir)
    assert scores(export_dir) == scores(exports[1]) != before
    assert json.loads((export_dir / "export.json").read_text())["new"] is True
    assert {p.name for p in export_dir.iterdir()} == {p.name for p in exports[1].iterdir()}


def test_an_export_without_the_swap_killed_between_renames_gets_the_previous_export_back(export_dir, exports,
                                                                                         classifier):
    before = scores(export_dir)
    kill_child(EXPORT_CHILD, "set_aside", classifier, exports[1], export_dir)
    assert not export_dir.exists()  # missing for a moment, never half-written
    remove_stale_staging(export_dir)
    assert scores(export_dir) == before and not hidden_leftovers(export_dir.parent)


def test_predict_killed_while_writing_its_output_leaves_the_previous_file(classifier, tmp_path):
    """predict_file writes through data.files.write_table; the kills at each moment are checked below."""
    pd.DataFrame({"text": TEXTS}).to_csv(tmp_path / "old.csv", index=False)
    pd.DataFrame({"text": ["fine", "awful", "lovely"]}).to_csv(tmp_path / "new.csv", index=False)
    out = predict_file(classifier, tmp_path / "old.csv", tmp_path / "out.csv", progress=False)
    before = out.read_bytes()
    kill_child(PREDICT_CHILD, "half_written", classifier, tmp_path / "new.csv", out)
    assert out.read_bytes() == before and read_table(out)["text"].tolist() == TEXTS


@pytest.fixture
def table_file(tmp_path, request) -> Path:
    """An existing two-row table in the format given by the test's suffix."""
    path = tmp_path / f"out{request.param}"
    write_table(pd.DataFrame({"text": TEXTS, "score": [1.0, 0.0]}), path)
    return path


@pytest.mark.parametrize(("point", "table_file"), [("half_written", ".csv"), ("half_written", ".parquet"),
                                                    ("renaming", ".jsonl")], indirect=["table_file"])
def test_a_table_write_killed_before_the_rename_leaves_the_previous_file(table_file, point):
    before = table_file.read_bytes()
    kill_child(TABLE_CHILD, point, table_file)
    assert table_file.read_bytes() == before
    assert read_table(table_file)["text"].tolist() == TEXTS


@pytest.mark.parametrize("table_file", [".parquet", ".tsv"], indirect=True)
def test_a_table_write_killed_right_after_the_rename_leaves_the_new_file_complete(table_file):
    kill_child(TABLE_CHILD, "after_rename", table_file)
    assert read_table(table_file)["text"].tolist() == ["fine", "awful", "lovely"]
    assert hidden_leftovers(table_file.parent) == []
