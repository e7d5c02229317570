import json
import logging
import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetext.config import DataConfig
from finetext.data.files import EXTENSIONS, read_table, write_table
from finetext.data.sources import load_labelled_data
from finetext.errors import FinetextError

ROWS = pd.DataFrame({
    "review": ["good film", "bad film", "fine", "awful", "great", "boring", "lovely", "dull"],
    "sentiment": ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"],
})


def load(seed: int = 42, **options):
    return load_labelled_data(DataConfig(**options), seed)


def test_known_name_resolves_to_local_pairs_with_real_label_names(data_dir):
    data = load(dataset="glue/mrpc")
    assert data.source == str(data_dir / "mrpc")
    assert (data.text_column, data.text_pair_column, data.label_column) == ("sentence1", "sentence2", "label")
    assert data.label_names == ["not_equivalent", "equivalent"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 1200, "validation": 200, "test": 300}
    raw = pd.read_parquet(data_dir / "mrpc" / "validation.parquet")
    assert data.splits["validation"]["text_pair"].tolist() == raw["sentence2"].tolist()
    assert data.splits["validation"]["label"].tolist() == raw["label"].tolist()
    assert load(dataset="mrpc").splits["train"].equals(data.splits["train"])


def test_unlabelled_glue_test_split_is_kept_but_not_labelled():
    data = load(dataset="sst2")
    assert len(data.splits["test"]) == 200
    assert not data.is_labelled("test") and data.is_labelled("validation")


def test_missing_validation_is_carved_stratified_and_seeded(data_dir):
    data = load(dataset="imdb")
    train, validation = data.splits["train"], data.splits["validation"]
    assert (len(train), len(validation)) == (270, 30)
    assert validation["label"].value_counts().to_dict() == {0: 15, 1: 15}
    raw = pd.read_parquet(data_dir / "imdb" / "train.parquet")  # a partition of train (IMDB has duplicates)
    assert sorted(pd.concat([train, validation])["text"]) == sorted(raw["text"])
    assert load(dataset="imdb").splits["validation"].equals(validation)
    assert not load(seed=7, dataset="imdb").splits["validation"].equals(validation)


def test_subsets_are_seeded_shuffles():
    a = load(dataset="sst2", train_samples=100, eval_samples=20)
    assert (len(a.splits["train"]), len(a.splits["validation"])) == (100, 20)
    assert a.splits["train"].equals(load(dataset="sst2", train_samples=100, eval_samples=20).splits["train"])
    assert not a.splits["train"].equals(load(seed=1, dataset="sst2", train_samples=100).splits["train"])
    assert a.splits["train"]["label"].nunique() == 2  # shuffled, not the first rows of a sorted file


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_file_format_reads_the_same_rows(tmp_path, suffix):
    path = tmp_path / f"train{suffix}"
    writers = {
        ".csv": lambda: ROWS.to_csv(path, index=False),
        ".tsv": lambda: ROWS.to_csv(path, index=False, sep="\t"),
        ".json": lambda: ROWS.to_json(path, orient="records"),
        ".jsonl": lambda: ROWS.to_json(path, orient="records", lines=True),
        ".parquet": lambda: ROWS.to_parquet(path),
    }
    writers[suffix]()
    data = load(train_file=str(path), text_column="review", label_column="sentiment", validation_fraction=0.25)
    assert data.label_names == ["neg", "pos"]
    combined = pd.concat([data.splits["train"], data.splits["validation"]])
    expected = {(t, 1 if s == "pos" else 0) for t, s in zip(ROWS["review"], ROWS["sentiment"], strict=True)}
    assert set(zip(combined["text"], combined["label"], strict=True)) == expected
    assert data.splits["validation"]["label"].value_counts().to_dict() == {0: 1, 1: 1}


def test_string_labels_map_the_same_way_in_every_split(tmp_path):
    train = pd.DataFrame({"text": [f"t{i}" for i in range(9)], "label": ["sport", "world", "tech"] * 3})
    validation = pd.DataFrame({"text": ["a", "b"], "label": ["world", "world"]})
    train.to_csv(tmp_path / "train.csv", index=False)
    validation.to_csv(tmp_path / "dev.csv", index=False)
    data = load(dataset=str(tmp_path))
    assert data.label_names == ["sport", "tech", "world"]
    assert data.splits["validation"]["label"].tolist() == [2, 2]
    mapping = dict(zip(data.splits["train"]["text"], data.splits["train"]["label"], strict=True))
    assert mapping["t0"] == 0 and mapping["t1"] == 2 and mapping["t2"] == 1


def test_non_contiguous_integer_labels_get_their_own_names(tmp_path):
    pd.DataFrame({"text": [f"r{i}" for i in range(10)], "label": [1, 2, 3, 4, 5] * 2}).to_json(
        tmp_path / "train.jsonl", orient="records", lines=True)
    data = load(train_file=str(tmp_path / "train.jsonl"), validation_fraction=0.5)
    assert data.label_names == ["1", "2", "3", "4", "5"]
    assert sorted(data.splits["train"]["label"]) == [0, 1, 2, 3, 4]


def test_label_names_json_beside_a_directory_names_integer_labels(tmp_path):
    pd.DataFrame({"text": ["x", "y", "z", "w"], "label": [0, 1, 0, 1]}).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "label_names.json").write_text(json.dumps(["neg", "pos"]))
    assert load(dataset=str(tmp_path), validation_fraction=0.5).label_names == ["neg", "pos"]


def test_label_missing_from_train_is_an_error(tmp_path):
    ROWS.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"review": ["meh"], "sentiment": ["neutral"]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(FinetextError, match=r"test data has label\(s\) 'neutral' \(1 rows\) that are not among"):
        load(dataset=str(tmp_path), text_column="review", label_column="sentiment")


def test_missing_column_lists_the_available_ones(tmp_path):
    ROWS.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(FinetextError, match="column 'body' not found in the train data; available: review, sentiment"):
        load(train_file=str(tmp_path / "train.csv"), text_column="body", label_column="sentiment")
    assert load(train_file=str(tmp_path / "train.csv"), label_column="sentiment").text_column == "review"


def test_empty_text_fails_with_a_count_or_is_dropped(tmp_path, caplog):
    rows = ROWS.copy()
    rows.loc[2, "review"] = "   "
    rows.loc[5, "sentiment"] = None
    rows.to_csv(tmp_path / "train.csv", index=False)
    options = {"train_file": str(tmp_path / "train.csv"), "text_column": "review", "label_column": "sentiment",
               "validation_fraction": 0.34}
    with pytest.raises(FinetextError, match=r"2 of 8 rows in the train data .* first at row 2.*--bad-rows drop"):
        load(**options)
    with caplog.at_level(logging.WARNING, logger="finetext"):
        data = load(bad_rows="drop", **options)
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 6
    assert "Dropped" in caplog.text


def test_text_that_looks_like_na_stays_text(tmp_path):
    pd.DataFrame({"text": ["NA", "null", "None", "ok"], "label": [0, 1, 0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    data = load(train_file=str(tmp_path / "t.csv"), validation_fraction=0.5)
    assert sorted(pd.concat(data.splits.values())["text"]) == ["NA", "None", "null", "ok"]


def test_unreadable_inputs_have_clear_errors(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(FinetextError, match="latin.csv is not valid UTF-8 text"):
        load(train_file=str(latin))
    with pytest.raises(FinetextError, match="file not found: .*nope.csv"):
        load(train_file=str(tmp_path / "nope.csv"))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(FinetextError, match="unsupported file type '.xlsx'"):
        load(train_file=str(tmp_path / "data.xlsx"))


def test_two_columns_of_the_same_name_are_refused_naming_both(tmp_path):
    """pandas would rename the second one ('label.1') and the first would be used without a word."""
    (tmp_path / "train.csv").write_text("text,label,source,note,label\ngood film,pos,web,,neg\n", encoding="utf-8")
    with pytest.raises(FinetextError) as refused:
        load(train_file=str(tmp_path / "train.csv"))
    assert str(refused.value) == (f"{tmp_path / 'train.csv'} has two columns named 'label' (columns 2 and 5). "
                                  "Rename one of them.")
    (tmp_path / "train.tsv").write_text("text\ttext\tlabel\ttext\na\tb\t1\tc\n", encoding="utf-8")
    with pytest.raises(FinetextError, match=r"train.tsv has 3 columns named 'text' \(columns 1, 2 and 4\)\. "
                                            "Rename all but one of them."):
        read_table(tmp_path / "train.tsv")
    columns = [pa.array(["good film"]), pa.array(["pos"]), pa.array(["neg"])]
    pq.write_table(pa.table(columns, names=["text", "label", "label"]), tmp_path / "train.parquet")
    with pytest.raises(FinetextError, match=r"train.parquet has two columns named 'label' \(columns 2 and 3\)"):
        read_table(tmp_path / "train.parquet")


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_write_table_round_trips_every_format(tmp_path, extension):
    frame = pd.DataFrame({"text": ["café, \"quoted\"", "two\nlines", "NA"], "label": [1, 0, 1],
                          "prob_positive": [0.75, 0.125, 0.5]})
    path = write_table(frame, tmp_path / "sub" / f"predictions{extension}")
    pd.testing.assert_frame_equal(read_table(path), frame)
    assert os.listdir(path.parent) == [path.name] and stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(FinetextError, match=r"cannot write .*out.xlsx: unsupported output type '.xlsx'. Use one of "
                                            r"\.csv, \.tsv, \.json, \.jsonl, \.parquet"):
        write_table(frame, tmp_path / "out.xlsx")


def test_the_tokenization_cache_shows_no_datasets_bars(tiny_model, capsys):
    import datasets
    from transformers import AutoTokenizer

    from finetext.data.tokenize import tokenize_split

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    frame = pd.DataFrame({"text": ["a fine film", "a dull one"], "label": [1, 0]})
    datasets.enable_progress_bars()
    stored = tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    loaded = tokenize_split(frame, tokenizer, 32, "dynamic", cache=True)
    assert loaded["input_ids"] == stored["input_ids"]
    assert capsys.readouterr().err == ""  # no "Saving the dataset" / "Loading dataset from disk"
    assert datasets.is_progress_bar_enabled()  # switched back afterwards


def test_unknown_names_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(FinetextError, match="dataset 'imbd' is neither a file, a directory, nor a known name"):
        load(dataset="imbd")
    monkeypatch.setenv("FINETEXT_DATA_DIR", str(tmp_path))
    with pytest.raises(FinetextError, match="dataset 'yelp_review_full' is not in .* could not be loaded from the "
                                            "Hugging Face Hub .*HF_HUB_OFFLINE is set"):
        load(dataset="yelp_review_full")


@pytest.mark.parametrize("labels", [["spam"] * 6, [1] * 6])
def test_training_data_with_a_single_class_is_refused_naming_it(tmp_path, labels):
    pd.DataFrame({"text": [f"message {i}" for i in range(6)], "label": labels}).to_csv(tmp_path / "train.csv",
                                                                                      index=False)
    with pytest.raises(FinetextError, match=rf"the training data has a single class \('{labels[0]}'\)"):
        load(dataset=str(tmp_path / "train.csv"))


def test_a_single_class_in_train_is_refused_even_with_declared_names(tmp_path):
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [1, 1, 1, 1]}).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "label_names.json").write_text('["neg", "pos"]')
    with pytest.raises(FinetextError, match=r"single class \('pos'\)"):
        load(dataset=str(tmp_path))


def test_the_cli_refuses_a_single_class_file_with_one_line(tmp_path, capsys):
    from finetext.cli import main

    pd.DataFrame({"text": ["x", "y", "z"], "label": ["ham"] * 3}).to_csv(tmp_path / "train.csv", index=False)
    assert main(["train", "--train-file", str(tmp_path / "train.csv"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the training data has a single class ('ham')")
