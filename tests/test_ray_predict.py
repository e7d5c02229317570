"""examples/ray_predict.py: finetext's classifier in Ray Data actors (a local Ray instance with 2 CPUs) predicts
what finetext's own predict_file predicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import random_classifier

from finetext.api import predict_file

pytest.importorskip("ray")
# Starting Ray and its actors takes tens of seconds on 2 cores.
pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ray_predict.py"


@pytest.fixture(scope="module")
def classifier(tiny_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray") / "model"
    return random_classifier(folder, tiny_model, seed=1)


def test_ray_data_actors_predict_what_predict_file_predicts(classifier, data_dir, tmp_path):
    rows = pd.read_parquet(data_dir / "sst2" / "train.parquet").head(300)
    rows.insert(0, "id", range(len(rows)))
    source = tmp_path / "in"
    source.mkdir()
    rows.iloc[:150].to_parquet(source / "a.parquet", index=False)  # a dataset of two files, as Ray reads them
    rows.iloc[150:].to_parquet(source / "b.parquet", index=False)
    # Two actors of half a CPU each leave Ray's read and write tasks the rest of the 2 CPUs.
    done = subprocess.run([sys.executable, str(EXAMPLE), str(classifier), str(source), str(tmp_path / "out"),
                           "--num-cpus", "2", "--concurrency", "2", "--actor-cpus", "0.5", "--batch-rows", "64",
                           "--precision", "fp32"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = pq.read_table(tmp_path / "out").sort_by("id")
    rows.to_parquet(tmp_path / "all.parquet", index=False)
    reference = pq.read_table(predict_file(classifier, tmp_path / "all.parquet", tmp_path / "reference.parquet",
                                           progress=False, precision="fp32"))
    # Ray's pandas batches hold Arrow-backed columns: the same Parquet types, other pandas metadata.
    assert ours.schema.remove_metadata() == reference.schema.remove_metadata()
    assert ours["id"].to_pylist() == list(range(300))
    for name in ("text", "label", "predicted_label"):
        assert ours[name].to_pylist() == reference[name].to_pylist()
    for name in ("score", "prob_negative", "prob_positive"):
        np.testing.assert_allclose(ours[name].to_numpy(), reference[name].to_numpy(), atol=1e-5)
