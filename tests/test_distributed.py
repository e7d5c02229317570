"""Data-parallel training on 2 CPU processes (gloo) through torchrun and accelerate launch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ARTIFACT_FILES

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def launch(launcher: list[str], tiny_model: str, out: Path, engine: str) -> str:
    argv = [*launcher, "-m", "finetext", "train", "--dataset", "sst2", "--model", tiny_model, "--engine", engine,
            "--output-dir", str(out), "--train-samples", "96", "--eval-samples", "47", "--epochs", "2",
            "--max-length", "64", "--learning-rate", "1e-3", "--no-load-best-model-at-end", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


TORCHRUN = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29517"]
ACCELERATE = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "29518"]


@pytest.mark.parametrize(("launcher", "engine"), [(TORCHRUN, "native"), (ACCELERATE, "native"), (TORCHRUN, "trainer")],
                         ids=["torchrun-native", "accelerate-native", "torchrun-trainer"])
def test_two_processes_train_once_and_score_every_row_once(launcher, engine, tiny_model, tmp_path):
    out = tmp_path / "run"
    stdout = launch(launcher, tiny_model, out, engine)
    assert stdout.count("model saved to") == 1  # only the main process reports and writes
    assert {p.name for p in out.iterdir()} == ARTIFACT_FILES
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["num_processes"] == 2
    # 96 examples, batch 16 per process, 2 processes: 3 optimizer steps per epoch.
    assert [h["step"] for h in metrics["history"]] == [3, 6]
    # 47 rows split over 2 processes: gathering must neither repeat the padded row nor drop one. The last
    # evaluation during training (gathered) must equal the final single-process scoring of the same model.
    last, final = metrics["history"][-1]["validation"], metrics["final"]["validation"]
    assert last["num_examples"] == final["num_examples"] == 47
    for key in ("accuracy", "f1", "precision", "recall", "mcc"):
        assert last[key] == pytest.approx(final[key], abs=1e-5)
