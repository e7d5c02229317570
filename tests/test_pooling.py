"""pooling: cls | mean. Mean pooling equals sentence-transformers' embedding of the same checkpoint, 'auto' follows
the checkpoint, and a mean-pooled artifact works everywhere a [CLS] one does (predict, ONNX, pipeline)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_run

import finetext
from finetext.cli import main
from finetext.config import DEFAULT_MODEL, ModelConfig
from finetext.errors import FinetextError


def test_auto_pooling_of_the_default_model_is_its_sentence_embedding():
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    from finetext.models.mean_pooling import MeanPoolingForSequenceClassification
    from finetext.models.pretrained import load_classifier, packaged_model_dir

    assert load_classifier(ModelConfig(), ["neg", "pos"]).config.normalize is False  # trained heads read the raw mean
    model = load_classifier(ModelConfig(strategy="fewshot"), ["neg", "pos"]).eval()
    assert isinstance(model, MeanPoolingForSequenceClassification) and model.config.normalize
    assert model.encoder.pooler is None  # never trained, never saved
    texts = ["a gripping, beautifully acted film", "dull", "the plot, such as it is, goes nowhere at all"]
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir())
    with torch.inference_mode():
        ours = model.embed(**tokenizer(texts, padding=True, return_tensors="pt")).numpy()
    theirs = SentenceTransformer(str(packaged_model_dir()), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_the_model_types_finetext_names_are_the_ones_it_registers():
    from finetext.artifacts import FINETEXT_MODEL_TYPES
    from finetext.models import mean_pooling, scratch

    assert set(FINETEXT_MODEL_TYPES) == {mean_pooling.MODEL_TYPE, scratch.MODEL_TYPE}


def test_auto_pooling_keeps_the_cls_pooler_of_a_plain_checkpoint(tiny_model):
    from finetext.models.pretrained import load_classifier

    assert type(load_classifier(ModelConfig(model=tiny_model), ["a", "b"])).__name__ == "BertForSequenceClassification"
    assert load_classifier(ModelConfig(model=tiny_model, pooling="mean"), ["a", "b"]).config.normalize is False


@pytest.fixture(scope="module")
def mean_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("mean") / "run"
    return finetext.train(tiny_run(tiny_model, out, dataset="sst2", pooling="mean", epochs=1))


@pytest.mark.slow
def test_a_mean_pooled_artifact_predicts_exports_and_loads_in_pipeline(mean_run, tmp_path):
    out = mean_run.output_dir
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "finetext-mean-pooling" and config["id2label"] == {"0": "negative", "1": "positive"}
    assert "pooling: mean" in (out / "finetext.yaml").read_text()
    texts = ["a gem of a film", "dreadful, dull and long"]
    ours = [r["probabilities"]["positive"] for r in finetext.predict(out, texts)]
    # a fresh process: transformers alone refuses the model type; after `import finetext.architectures` it loads
    script = ("import json, sys\n{imp}from transformers import pipeline\n"
              "p = pipeline('text-classification', model=sys.argv[1], top_k=None)\n"
              "print(json.dumps([{{d['label']: d['score'] for d in r}}['positive'] for r in p({texts!r})]))")
    bare = subprocess.run([sys.executable, "-c", script.format(imp="", texts=texts), str(out)], capture_output=True,
                          text=True)
    assert bare.returncode != 0 and "finetext-mean-pooling" in bare.stderr
    loaded = subprocess.run([sys.executable, "-c", script.format(imp="import finetext.architectures\n", texts=texts),
                             str(out)], capture_output=True, text=True, check=True)
    np.testing.assert_allclose(json.loads(loaded.stdout.strip().splitlines()[-1]), ours, atol=1e-5)
    onnx_dir = tmp_path / "onnx"
    finetext.export(out, onnx_dir)
    exported = [r["probabilities"]["positive"] for r in finetext.predict(onnx_dir, texts)]
    np.testing.assert_allclose(exported, ours, atol=1e-4)


@pytest.mark.slow
def test_lora_and_top_k_train_a_mean_pooled_model(tiny_model, tmp_path):
    lora = finetext.train(tiny_run(tiny_model, tmp_path / "lora", dataset="sst2", pooling="mean", strategy="lora",
                                   epochs=1))
    counts = lora.metrics["parameters"]
    assert 0 < counts["trainable"] < counts["total"] / 10  # query/value adapters (BERT's targets) + the head
    assert json.loads((lora.output_dir / "config.json").read_text())["model_type"] == "finetext-mean-pooling"
    top = finetext.train(tiny_run(tiny_model, tmp_path / "top", dataset="sst2", pooling="mean", strategy="top_k",
                                  top_k=1, epochs=1))
    assert 0 < top.metrics["parameters"]["trainable"] < top.metrics["parameters"]["total"]


@pytest.mark.slow
def test_init_from_a_mean_pooled_model_keeps_its_pooling(mean_run, tmp_path):
    result = finetext.train(tiny_run(DEFAULT_MODEL, tmp_path / "again", dataset="sst2", init_from=str(
        mean_run.output_dir), model=DEFAULT_MODEL, epochs=1, learning_rate=1e-4))
    assert json.loads((result.output_dir / "config.json").read_text())["model_type"] == "finetext-mean-pooling"


@pytest.mark.parametrize(("flags", "message"), [
    (["--model", "scratch", "--pooling", "cls"], "a scratch model always mean-pools"),
    (["--init-from", "somewhere", "--pooling", "mean"], "--init-from keeps the pooling"),
])
def test_pooling_refusals_are_one_line(flags, message, capsys):
    assert main(["train", "--dataset", "sst2", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cls_pooling_of_a_mean_pooled_model_is_refused(mean_run):
    from finetext.models.pretrained import load_classifier

    with pytest.raises(FinetextError, match="mean-pooled finetext model"):
        load_classifier(ModelConfig(model=str(mean_run.output_dir), pooling="cls"), ["a", "b"])
