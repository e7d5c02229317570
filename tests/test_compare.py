"""`finetext compare`: one run per strategy, then comparison.csv/.md/.png that agree with the runs."""

import json

import pandas as pd
import pytest
import yaml

from finetext.cli import main

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def comparison(tiny_model, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("compare") / "out"
    argv = ["compare", "--strategies", "head,lora", "--model", tiny_model, "--dataset", "sst2", "--data-dir",
            str(data_dir), "--train-samples", "64", "--eval-samples", "32", "--epochs", "1", "--max-length", "32",
            "--output-dir", str(out), "--quiet"]
    assert main(argv) == 0
    return out, argv


def test_compare_writes_one_run_per_strategy_and_the_comparison(comparison):
    out, _ = comparison
    assert {p.name for p in out.iterdir()} == {"head", "lora", "comparison.csv", "comparison.md", "comparison.png"}
    assert (out / "lora" / "adapter").is_dir() and not (out / "head" / "adapter").exists()
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_rows_agree_with_each_runs_metrics(comparison):
    out, _ = comparison
    table = pd.read_csv(out / "comparison.csv")
    assert table["strategy"].tolist() == ["head", "lora"]
    assert {"trainable_params", "total_params", "val_accuracy", "val_f1", "train_time_s", "peak_rss_mb",
            "size_on_disk_mb", "adapter_mb"} <= set(table.columns)
    for row in table.itertuples():
        metrics = json.loads((out / row.strategy / "metrics.json").read_text())
        assert metrics["parameters"]["strategy"] == row.strategy
        assert row.trainable_params == metrics["parameters"]["trainable"]
        assert row.val_accuracy == pytest.approx(100 * metrics["final"]["validation"]["accuracy"], abs=0.01)
        assert row.train_time_s == metrics["train"]["train_runtime_s"]
        assert row.peak_rss_mb > 100 and row.size_on_disk_mb > 1
    assert table.set_index("strategy").loc["head", "trainable_params"] == 32 * 2 + 2
    # no --learning-rate given: each strategy trained with its own default, saved with the run
    saved = {s: yaml.safe_load((out / s / "finetext.yaml").read_text())["training"]["learning_rate"]
             for s in ("head", "lora")}
    assert saved == {"head": 1e-3, "lora": 5e-4}
    markdown = (out / "comparison.md").read_text()
    assert "| head | 66 |" in markdown and "--strategies head,lora" in markdown


def test_an_existing_comparison_is_not_overwritten_by_accident(comparison, capsys):
    _, argv = comparison
    assert main(argv) == 2
    assert "already holds a comparison. Pass --overwrite-output-dir" in capsys.readouterr().err


def test_unknown_strategy_is_refused(tmp_path, capsys):
    assert main(["compare", "--strategies", "full,bitfit", "--dataset", "sst2"]) == 2
    assert "unknown strategy 'bitfit'. Use a comma-separated list of full, head, top_k, lora" in capsys.readouterr().err


def test_a_strategy_the_model_cannot_take_fails_before_any_run(tiny_model, tmp_path, capsys):
    argv = ["compare", "--strategies", "full,top_k", "--top-k", "5", "--model", tiny_model, "--dataset", "sst2",
            "--output-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "--top-k 5 is out of range: the model has 2 encoder layers" in capsys.readouterr().err
    assert not (tmp_path / "out" / "full").exists()
