"""The packaged default model trains offline end to end and loads in a transformers pipeline."""

import json

import pytest
from transformers import pipeline

import finetext

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow


def test_default_model_offline_on_a_real_pair_subset(tmp_path):
    result = finetext.train({"dataset": "glue/mrpc", "train_samples": 32, "eval_samples": 16, "test_samples": 16,
                             "epochs": 1, "batch_size": 16, "max_length": 64, "output_dir": str(tmp_path / "m"),
                             "quiet": True})
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "not_equivalent", "1": "equivalent"}
    # the default model is mean-pooled (pooling auto): MiniLM's encoder config inside, no [CLS] pooler weights
    assert config["model_type"] == "finetext-mean-pooling"
    assert config["encoder"]["num_hidden_layers"] == 6 and config["encoder"]["hidden_size"] == 384
    assert result.metrics["parameters"]["total"] == 22_566_146
    classify = pipeline("text-classification", model=str(result.output_dir))
    output = classify({"text": "The cat sat on the mat.", "text_pair": "A cat was sitting on the mat."})
    output = output[0] if isinstance(output, list) else output
    assert output["label"] in {"not_equivalent", "equivalent"}
