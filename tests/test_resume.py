"""Checkpoints and --resume: a run killed with SIGKILL mid-epoch, resumed, ends exactly like an uninterrupted one."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import without_timing
from safetensors.torch import load_file

from finetext.cli import main
from finetext.training import checkpoint as ckpt

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 150  # 1,200 pairs / batch 8


def run_args(tiny_model: str, out: Path, engine: str = "native", train_samples: int = 1200) -> list[str]:
    argv = ["train", "--dataset", "glue/mrpc", "--model", tiny_model, "--engine", engine, "--output-dir", str(out),
            "--train-samples", str(train_samples), "--eval-samples", "100", "--test-samples", "100",
            "--epochs", "2", "--batch-size", "8", "--max-length", "64", "--learning-rate", "1e-3", "--quiet"]
    return [*argv, "--save-steps", "7"] if engine == "native" else argv


def kill_after(argv: list[str], sentinel: Path, settled=lambda: True) -> None:
    """Start training in a child process and SIGKILL it once the sentinel checkpoint file exists (and settled()
    holds: the run may still be pruning older checkpoints right after writing the sentinel)."""
    child = subprocess.Popen([sys.executable, "-m", "finetext", *argv], env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (sentinel.is_file() and settled()):
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_killed_run_resumes_to_exactly_the_same_model(tiny_model, tmp_path, capsys):
    argv = run_args(tiny_model, tmp_path / "killed")
    killed = tmp_path / "killed"
    kill_after(argv, killed / "checkpoints" / "step-21" / ckpt.STATE,
               settled=lambda: len(ckpt.complete_checkpoints(killed / "checkpoints")) <= 2)

    assert not (killed / "finetext.yaml").exists()
    steps = [int(p.name.split("-")[1]) for p in ckpt.complete_checkpoints(killed / "checkpoints")]
    assert len(steps) == 2 and steps[-1] >= 21  # save_total_limit 2: older ones pruned
    assert steps[-1] % STEPS_PER_EPOCH != 0  # the newest checkpoint is in the middle of epoch 1

    # Starting over by accident, or resuming with other settings, is refused with the reason.
    assert main(argv) == 2
    assert "holds the checkpoints of an interrupted run. Pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume", "--learning-rate", "0.5"]) == 2
    assert "checkpoint was made with other settings (learning_rate: 0.001 -> 0.5)" in capsys.readouterr().err

    # --resume with only the output directory reads the settings from the checkpoint.
    assert main(["train", "--resume", "--output-dir", str(killed), "--quiet"]) == 0
    assert "model saved to" in capsys.readouterr().out
    assert not (killed / "checkpoints").exists()

    reference = tmp_path / "reference"
    assert main(run_args(tiny_model, reference)) == 0
    resumed_metrics, reference_metrics = (json.loads((d / "metrics.json").read_text()) for d in (killed, reference))
    assert without_timing(resumed_metrics["history"]) == without_timing(reference_metrics["history"])
    assert without_timing([resumed_metrics["best"]]) == without_timing([reference_metrics["best"]])
    for key in ("final", "test"):
        assert resumed_metrics[key] == reference_metrics[key], key
    resumed_weights, reference_weights = (load_file(d / "model.safetensors") for d in (killed, reference))
    assert resumed_weights.keys() == reference_weights.keys()
    assert all(torch.equal(resumed_weights[k], reference_weights[k]) for k in reference_weights)


def test_resume_without_an_interrupted_run_says_so(tmp_path, capsys):
    assert main(["train", "--resume", "--output-dir", str(tmp_path / "nothing")]) == 2
    assert "no interrupted run to resume in" in capsys.readouterr().err
    assert main(["train", "--resume", "--overwrite-output-dir", "--dataset", "sst2"]) == 2
    assert "--resume continues the run in output_dir; --overwrite-output-dir starts it over" in capsys.readouterr().err


def test_optimizer_and_rng_state_round_trip_without_pickle(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    tensors, rest = ckpt.optimizer_parts(optimizer.state_dict())
    rebuilt = ckpt.optimizer_state_dict(tensors, json.loads(json.dumps(rest)))
    fresh = torch.optim.AdamW(model.parameters(), lr=0.5)
    fresh.load_state_dict(rebuilt)
    for before, after in zip(optimizer.state.values(), fresh.state.values(), strict=True):
        assert all(torch.equal(before[k], after[k]) for k in before)
    assert fresh.param_groups[0]["lr"] == 0.1

    ckpt.save_rng(tmp_path, rank=0)
    expected = (torch.rand(3), random.random(), np.random.rand())
    ckpt.load_rng(tmp_path, rank=0)
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]
    assert {p.suffix for p in tmp_path.iterdir()} == {".safetensors", ".json"}


def test_trainer_engine_resumes_to_the_same_metrics(tiny_model, tmp_path):
    killed = tmp_path / "killed"
    # 600 pairs: 75 steps per epoch; the Trainer checkpoints after each evaluation.
    kill_after(run_args(tiny_model, killed, "trainer", 600),
               killed / "checkpoints" / "checkpoint-75" / "trainer_state.json")
    assert not (killed / "finetext.yaml").exists()
    assert main(["train", "--resume", "--output-dir", str(killed), "--quiet"]) == 0
    reference = tmp_path / "reference"
    assert main(run_args(tiny_model, reference, "trainer", 600)) == 0
    resumed_metrics, reference_metrics = (json.loads((d / "metrics.json").read_text()) for d in (killed, reference))
    for key in ("final", "test"):
        assert resumed_metrics[key] == reference_metrics[key], key
    # The Trainer's own loss log restarts its window on resume, so compare the validation scores only.
    assert [h["validation"] for h in resumed_metrics["history"]] == [h["validation"] for h in
                                                                     reference_metrics["history"]]
