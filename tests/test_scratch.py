"""The scratch GloVe transformer (--model scratch) and transfer between tasks (--init-from)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ARTIFACT_FILES, tiny_run
from safetensors.torch import load_file
from transformers import pipeline

import finetext
from finetext.cli import main
from finetext.config import ModelConfig
from finetext.errors import FinetextError
from finetext.models.glove import load_word_vectors, packaged_glove_dir
from finetext.models.scratch import build_scratch
from finetext.models.strategies import apply_strategy, parameter_counts
from finetext.models.strategies.lora import lora_targets
from finetext.models.transfer import load_for_transfer

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

WIDTH = 16
TINY = {"model": "scratch", "scratch_width": WIDTH, "scratch_heads": 2, "scratch_layers": 1,
        "scratch_vocab_size": 20_000}


def glove_rows(limit: int) -> tuple[list[str], np.ndarray]:
    """The packaged GloVe words and vectors, read independently of finetext's loader."""
    folder = packaged_glove_dir()
    words = pd.read_parquet(folder / "glove_6B_index.parquet").iloc[:limit, 0].tolist()
    return words, np.load(folder / "glove_6B_50d_emb.npy")[:limit]


def scratch_run(out, tiny: bool = True, **overrides) -> dict:
    """A seconds-long IMDB run; without ``tiny`` the architecture options are left out (init_from brings it)."""
    values = {**(TINY if tiny else {}), "dataset": "imdb", "output_dir": str(out), "epochs": 1, "batch_size": 16,
              "max_length": 64, "train_samples": 160, "eval_samples": 48, "test_samples": 48, "quiet": True,
              "logging_steps": 5}
    return {**values, **overrides}


@pytest.fixture(scope="module")
def tiny_scratch():
    return build_scratch(ModelConfig(**TINY), 64, ["neg", "pos"], False)


@pytest.fixture(scope="module")
def agnews_model(tmp_path_factory, data_dir):
    """A tiny scratch model trained on (a subset of) AG News: 4 topic labels."""
    out = tmp_path_factory.mktemp("agnews")
    finetext.train(scratch_run(out, dataset=None, train_file=str(data_dir / "ag_news" / "test.parquet"),
                               train_samples=200, test_samples=None, eval_samples=None, max_length=48))
    return out


def test_tokenizer_splits_words_as_glove_does(tiny_scratch):
    tokenizer, _ = tiny_scratch
    ids = tokenizer("I don't like it.<br /><br />It's a BAD movie, zzqxv!")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["i", "do", "n't", "like", "it", ".", "it", "'s", "a", "bad",
                                                    "movie", ",", "[UNK]", "!"]
    words, _ = glove_rows(20_000)
    assert ids[:3] == [3 + words.index("i"), 3 + words.index("do"), 3 + words.index("n't")]  # 3 special tokens
    pair = tokenizer("good film", "bad film")["input_ids"]
    assert pair[2] == tokenizer.sep_token_id == 2 and tokenizer.pad_token_id == 0 and tokenizer.unk_token_id == 1


def test_embeddings_are_the_glove_vectors(tiny_scratch):
    tokenizer, model = tiny_scratch
    words, vectors = glove_rows(20_000)
    table = model.get_input_embeddings().weight.detach().numpy()
    assert table.shape == (20_003, 50)
    for word in ("movie", "the", "terrible"):
        np.testing.assert_array_equal(table[tokenizer.convert_tokens_to_ids(word)], vectors[words.index(word)])
    np.testing.assert_array_equal(table[0], 0.0)  # [PAD]
    np.testing.assert_allclose(table[1], vectors.mean(axis=0), atol=1e-6)  # [UNK]: the average word


def test_padding_does_not_change_a_prediction(tiny_scratch):
    """Mean pooling and attention ignore padding: a text scores the same alone and padded in a batch."""
    tokenizer, model = tiny_scratch
    model.eval()
    texts = ["a short one", "a much longer review that goes on and on about the plot and the actors"]
    with torch.no_grad():
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
        batch = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=1e-5)


def test_glove_text_and_parquet_files_give_the_packaged_vectors(tmp_path, data_dir):
    words, vectors = glove_rows(50)
    text = tmp_path / "glove.txt"
    lines = [f"{word} {' '.join(repr(float(v)) for v in row)}\n" for word, row in zip(words, vectors, strict=True)]
    text.write_text("".join(lines))
    from_text = load_word_vectors(str(text), 50)
    from_parquet = load_word_vectors(str(data_dir / "glove" / "glove.6B.50d.top1k.parquet"), 50)
    for loaded in (from_text, from_parquet):
        assert loaded.words == words
        np.testing.assert_array_equal(loaded.vectors, vectors)


@pytest.mark.parametrize("engine,freeze", [("trainer", False), ("native", True)])
def test_scratch_run_writes_an_artifact_that_evaluate_predict_and_pipeline_load(engine, freeze, tmp_path):
    out = tmp_path / "run"
    result = finetext.train(scratch_run(out, engine=engine, freeze_embeddings=freeze))
    assert {p.name for p in out.iterdir()} == ARTIFACT_FILES
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "finetext-glove-transformer"
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (WIDTH, 1, 20_003)
    params = result.metrics["parameters"]
    embeddings = 20_003 * 50
    assert params["total"] - params["trainable"] == (embeddings if freeze else 0)
    saved = load_file(out / "model.safetensors")["glove_transformer.embeddings.weight"].numpy()
    _, vectors = glove_rows(20_000)
    assert np.array_equal(saved[3:], vectors) == freeze  # trained embeddings move; frozen ones stay GloVe
    assert result.metrics["data"]["test"] == 48 and 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    card = (out / "README.md").read_text()
    assert "trained from scratch on GloVe" in card and "import finetext" in card and "base_model:" not in card

    records = finetext.predict(out, ["a wonderful, moving film", "dull and far too long"])
    assert [set(r["probabilities"]) for r in records] == [{"neg", "pos"}] * 2
    classify = pipeline("text-classification", model=str(out))  # works in any process that imported finetext
    piped = classify(["a wonderful, moving film"])[0]
    assert piped["label"] == records[0]["label"] and piped["score"] == pytest.approx(records[0]["score"], abs=1e-5)
    evaluated = finetext.evaluate(out, dataset="imdb", split="test", eval_samples=48, progress=False)
    assert evaluated["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])


def test_transfer_with_new_labels_replaces_the_classifier_and_head_trains_only_it(agnews_model, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="finetext")
    out = tmp_path / "imdb-head"
    result = finetext.train(scratch_run(out, tiny=False, init_from=str(agnews_model), strategy="head"))
    assert ("its labels (World, Sports, Business, Sci/Tech) differ from the data's (neg, pos); the classifier is "
            "replaced by a new one") in caplog.text
    assert result.metrics["parameters"]["trainable"] == WIDTH * 2 + 2  # the final layer only
    before, after = load_file(agnews_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before["classifier.weight"].shape == (4, WIDTH) and after["classifier.weight"].shape == (2, WIDTH)
    encoder = [name for name in before if not name.startswith("classifier.")]
    assert encoder and all(torch.equal(before[name], after[name]) for name in encoder)
    saved = (out / "finetext.yaml").read_text()
    assert "model: scratch" in saved and f"init_from: {agnews_model}" in saved and "strategy: head" in saved


def test_full_transfer_trains_the_pretrained_encoder(agnews_model, tmp_path):
    out = tmp_path / "imdb-full"
    finetext.train(scratch_run(out, tiny=False, model="scratch", init_from=str(agnews_model)))
    before, after = load_file(agnews_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert not torch.equal(before["glove_transformer.encoder.layers.0.linear1.weight"],
                           after["glove_transformer.encoder.layers.0.linear1.weight"])
    assert json.loads((out / "config.json").read_text())["hidden_size"] == WIDTH  # the architecture came along


def test_same_labels_keep_the_classifier_other_names_replace_it(agnews_model, caplog):
    caplog.set_level(logging.INFO, logger="finetext")
    topics = ["World", "Sports", "Business", "Sci/Tech"]
    cfg = ModelConfig(init_from=str(agnews_model))
    source = load_file(agnews_model / "model.safetensors")["classifier.weight"]
    _, kept = load_for_transfer(cfg, topics, False)
    assert torch.equal(kept.classifier.weight, source) and "its classifier is kept" in caplog.text
    _, renamed = load_for_transfer(cfg, ["a", "b", "c", "d"], False)  # same size, other meaning
    assert not torch.equal(renamed.classifier.weight, source)
    assert renamed.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}


def test_lora_on_a_transferred_scratch_model_adapts_the_feed_forward_layers(agnews_model):
    cfg = ModelConfig(init_from=str(agnews_model), strategy="lora", lora_rank=2)
    _, model = load_for_transfer(cfg, ["neg", "pos"], False)
    assert lora_targets(model, cfg) == ["linear1", "linear2"]
    counts = parameter_counts(apply_strategy(model, cfg))
    ffn = 4 * WIDTH
    assert counts["trainable"] == 2 * ((WIDTH + ffn) + (ffn + WIDTH)) + (WIDTH * 2 + 2)  # A and B of both + head


@pytest.mark.parametrize("argv,message", [
    (["--model", "scratch", "--strategy", "head"],
     "--strategy head freezes weights, but a new scratch model's are random: only --strategy full trains it."),
    (["--scratch-layers", "3"], "scratch_layers only apply to --model scratch."),
    (["--model", "scratch", "--scratch-width", "30", "--scratch-heads", "4"],
     "scratch_heads (4) must divide scratch_width (30)."),
    (["--model", "scratch", "--glove-file", "nowhere/glove.txt"], "glove_file not found: nowhere/glove.txt."),
    (["--init-from", "nowhere"], "--init-from: model directory not found: nowhere."),
])
def test_bad_scratch_and_transfer_options_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = main(["train", "--dataset", "imdb", "--output-dir", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_init_from_refuses_options_that_contradict_the_saved_model(agnews_model, tiny_model, tmp_path):
    with pytest.raises(FinetextError, match="cannot be changed with --init-from"):
        ModelConfig(init_from=str(agnews_model), scratch_layers=3)
    with pytest.raises(FinetextError, match=f"--model {tiny_model} conflicts with --init-from"):
        finetext.train(scratch_run(tmp_path / "x", tiny=False, model=tiny_model, init_from=str(agnews_model)))
    adapter_only = tmp_path / "adapter-only"
    adapter_only.mkdir()
    for name in ("config.json", "finetext.yaml"):
        (adapter_only / name).write_bytes((agnews_model / name).read_bytes())
    (adapter_only / "adapter").mkdir()
    (adapter_only / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(FinetextError, match="holds only a LoRA adapter"):
        load_for_transfer(ModelConfig(init_from=str(adapter_only)), ["neg", "pos"], False)


def test_init_from_works_for_a_pretrained_family_too(tiny_model, tmp_path, caplog):
    """SST-2 (negative/positive) -> IMDB (neg/pos): same count, other names, so the head is new; with head only,
    every BERT weight, pooler included, stays as the SST-2 run left it."""
    caplog.set_level(logging.INFO, logger="finetext")
    sst2 = tmp_path / "sst2"
    finetext.train(tiny_run(tiny_model, sst2, dataset="sst2", epochs=1))
    out = tmp_path / "imdb"
    values = tiny_run(tiny_model, out, dataset="imdb", epochs=1, init_from=str(sst2), strategy="head")
    del values["model"]  # init_from brings the model
    result = finetext.train(values)
    assert "its labels (negative, positive) differ from the data's (neg, pos)" in caplog.text
    before, after = load_file(sst2 / "model.safetensors"), load_file(out / "model.safetensors")
    bert = [name for name in before if name.startswith("bert.")]
    assert bert and all(torch.equal(before[name], after[name]) for name in bert)
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert result.metrics["parameters"]["trainable"] == 32 * 2 + 2
    saved = (out / "finetext.yaml").read_text()
    assert f"model: {tiny_model}" in saved  # the family of the init_from model, recorded
