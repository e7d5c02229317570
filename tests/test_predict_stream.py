"""finetext predict --input, streamed: chunked reading with the whole file's column types, parts joined into the
output, resume after a kill, the refusals, and two processes writing what one writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_classifier

import finetext
from finetext.api import predict_file
from finetext.cli import main
from finetext.data.files import FORMATS, read_table, write_table
from finetext.inference import streaming
from finetext.inference.table_parts import PARTS
from finetext.inference.table_survey import conformed_chunks, survey_table

PROBABILITIES = ["score", "prob_negative", "prob_positive"]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def classifier(tiny_model, tmp_path_factory) -> Path:
    """A one-layer random BERT classifier (a plain Hugging Face directory): predicts in milliseconds."""
    folder = tmp_path_factory.mktemp("stream") / "model"
    return random_classifier(folder, tiny_model)


@pytest.fixture(scope="module")
def sentences(data_dir) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "sst2" / "train.parquet").head(150)


def whole_file_predict(model: Path, input_path: Path, output: Path, text_column: str = "text",
                       pair_column: str | None = None) -> Path:
    """What predict_file did before streaming: the whole table read, predicted, written."""
    table = read_table(input_path)
    pairs = table[pair_column].tolist() if pair_column else None
    records = finetext.predict(model, table[text_column].tolist(), pairs, precision="fp32")
    result = table.copy()
    result["predicted_label"] = [r["label"] for r in records]
    result["score"] = [r["score"] for r in records]
    for name in ("negative", "positive"):
        result[f"prob_{name}"] = [r["probabilities"][name] for r in records]
    return write_table(result, output)


def tricky_csv(path: Path, rows: int) -> Path:
    """Columns a chunk alone reads otherwise than the whole file: whole numbers with one missing value late,
    booleans with one missing, numbers then text, text that pandas would take for missing ('NA')."""
    frame = pd.DataFrame({
        "id": [str(i) if i != rows - 3 else "" for i in range(rows)],
        "text": [f"review {i}: {'great fun' if i % 3 else 'a dull mess'}" for i in range(rows)],
        "flag": ["" if i == rows - 2 else str(i % 2 == 0) for i in range(rows)],
        "code": [f"0{i}" if i < rows // 2 else f"x{i}" for i in range(rows)],
        "note": ["NA"] * rows,
    })
    frame.to_csv(path, index=False)
    return path


def equal_but_rounding(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal tables but for the last float32 bits of the probabilities (batches padded to other lengths)."""
    pd.testing.assert_frame_equal(a.drop(columns=PROBABILITIES), b.drop(columns=PROBABILITIES))
    np.testing.assert_allclose(a[PROBABILITIES].to_numpy(), b[PROBABILITIES].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_an_input_within_one_chunk_gives_the_whole_file_output_byte_for_byte(classifier, sentences, tmp_path,
                                                                             suffix):
    source = tmp_path / "in.parquet"
    sentences.to_parquet(source, index=False)
    expected = whole_file_predict(classifier, source, tmp_path / f"expected{suffix}")
    out = predict_file(classifier, source, tmp_path / f"out{suffix}", progress=False, precision="fp32")
    assert out.read_bytes() == expected.read_bytes()
    assert not (tmp_path / f"out{suffix}.parts").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_chunks_give_the_whole_file_types_and_input_order(classifier, tmp_path, suffix):
    source = tricky_csv(tmp_path / "in.csv", 150)
    expected = read_table(whole_file_predict(classifier, source, tmp_path / f"expected{suffix}"))
    got = read_table(predict_file(classifier, source, tmp_path / f"out{suffix}", chunk_rows=16, batch_size=8,
                                  progress=False, precision="fp32"))
    equal_but_rounding(got, expected)
    assert got["text"].tolist() == pd.read_csv(source)["text"].tolist()
    assert got["code"].tolist()[:3] == ["00", "01", "02"]  # read as text, as the whole file reads it


def test_sentence_pairs_are_streamed_as_pairs(classifier, data_dir, tmp_path):
    pairs = pd.read_parquet(data_dir / "mrpc" / "test.parquet").head(100)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    expected = whole_file_predict(classifier, tmp_path / "pairs.csv", tmp_path / "expected.jsonl", "sentence1",
                                  "sentence2")
    got = predict_file(classifier, tmp_path / "pairs.csv", tmp_path / "out.jsonl", "sentence1", "sentence2",
                       chunk_rows=30, batch_size=8, progress=False, precision="fp32")
    equal_but_rounding(read_table(got), read_table(expected))


def write_tricky_json_lines(path: Path) -> None:
    """Whole numbers with one missing value late, a key first seen late, numbers then text (a chunk with only
    numbers and missing values would read them as floats: docs/decisions.md)."""
    records = [{"text": f"t{i}", "n": None if i == 9 else i, "mixed": i} for i in range(8)]
    records += [{"text": f"t{i}", "n": i, "late": True} for i in range(8, 12)]
    records[10]["mixed"] = "ten"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_tricky_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [f"t{i}" for i in range(12)],
                             "n": pa.array([None if i == 9 else i for i in range(12)]),
                             "b": pa.array([None if i == 10 else i % 2 == 0 for i in range(12)]),
                             "s": pa.array([None if i < 4 else "z" for i in range(12)])}), path, row_group_size=5)


@pytest.mark.parametrize("write", [tricky_csv, write_tricky_json_lines, write_tricky_parquet],
                         ids=["csv", "jsonl", "parquet"])
def test_survey_then_conformed_chunks_equal_the_whole_file_read(tmp_path, write):
    path = tmp_path / {"tricky_csv": "t.csv", "write_tricky_json_lines": "t.jsonl"}.get(write.__name__, "t.parquet")
    write(path, 12) if write is tricky_csv else write(path)
    survey = survey_table(path, 4, ["text"])
    chunks = [chunk for _, chunk in conformed_chunks(survey, set(range(survey.chunks)))]
    assert [len(c) for c in chunks] == [4, 4, 4]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_table(path))


@pytest.mark.parametrize("table_format", FORMATS, ids=lambda f: f.name)
def test_parts_join_into_what_the_whole_table_writer_writes(tmp_path, table_format):
    frame = pd.DataFrame({"text": ["a", "b, \"c\"", "d\ne", "é", "f"], "score": [0.5, 0.25, 1e-7, 1.0, 0.0],
                          "note": [None, "x", None, None, None]})
    suffix = table_format.extensions[0]
    expected = write_table(frame, tmp_path / f"whole{suffix}")
    part_format = PARTS[table_format.name]
    parts = []
    for index, start in enumerate(range(0, len(frame), 2)):
        parts.append(tmp_path / f"part-{index}{suffix}")
        part_format.write(frame.iloc[start:start + 2].reset_index(drop=True), parts[-1])
    part_format.join(parts, list(frame.columns), tmp_path / f"joined{suffix}")
    if table_format.name == "PARQUET":  # one row group per part
        pd.testing.assert_frame_equal(read_table(tmp_path / f"joined{suffix}"), read_table(expected))
    else:
        assert (tmp_path / f"joined{suffix}").read_bytes() == expected.read_bytes()


def test_only_a_chunk_is_held_and_the_backend_choice_sees_only_the_first(classifier, sentences, tmp_path,
                                                                         monkeypatch):
    sentences.to_parquet(tmp_path / "in.parquet", index=False)
    sizes, sampled = [], []
    real_logits, real_workload = streaming.predict_logits, streaming.input_workload
    monkeypatch.setattr(streaming, "predict_logits", lambda clf, texts, *a, **k: sizes.append(len(texts)) or
                        real_logits(clf, texts, *a, **k))
    monkeypatch.setattr(streaming, "input_workload", lambda clf, texts, *a: sampled.append(len(texts)) or
                        real_workload(clf, texts, *a))
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("the whole table was read"))
    predict_file(classifier, tmp_path / "in.parquet", tmp_path / "out.csv", chunk_rows=40, progress=False)
    assert sizes == [40, 40, 40, 30] and sampled == [40]


def test_the_progress_bar_counts_rows_with_rate_and_time_left(classifier, sentences, tmp_path, capsys):
    sentences.to_parquet(tmp_path / "in.parquet", index=False)
    predict_file(classifier, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=50, precision="fp32")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "150/150 [" in last and "<" in last and " rows/s]" in last, last  # [elapsed<left, rate]


def test_default_output_is_parquet_beside_the_input(classifier, sentences, tmp_path, capsys):
    sentences.to_csv(tmp_path / "reviews.csv", index=False)
    assert main(["predict", str(classifier), "--input", str(tmp_path / "reviews.csv"), "--quiet"]) == 0
    out = tmp_path / "reviews.predictions.parquet"
    assert f"predictions written to {out}" in capsys.readouterr().out
    assert list(pd.read_parquet(out).columns) == ["text", "label", "predicted_label", "score", "prob_negative",
                                                  "prob_positive"]


def refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_the_refusals(classifier, sentences, tmp_path, capsys):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    sentences.to_csv(source, index=False)
    argv = ["predict", str(classifier), "--input", str(source), "--output", str(out), "--quiet", "--chunk-rows", "50"]
    assert "nothing to resume: no out.csv.parts/" in refused([*argv, "--resume"], capsys)
    assert "--resume or --overwrite, not both" in refused([*argv, "--resume", "--overwrite"], capsys)
    (tmp_path / "out.csv.parts").mkdir()
    assert "holds an interrupted prediction. Pass --resume to continue it, or --overwrite" in refused(argv, capsys)
    assert main([*argv, "--overwrite"]) == 0 and not (tmp_path / "out.csv.parts").exists()
    assert "nothing to resume: " + str(out) + " is complete" in refused([*argv, "--resume"], capsys)

    blank = sentences.copy()
    blank.loc[[120, 137], "text"] = ["  ", None]  # in the third chunk: refused before the first is predicted
    blank.to_csv(source, index=False)
    assert "2 empty or missing text(s), first at position 120." in refused(argv, capsys)
    assert not (tmp_path / "out.csv.parts").exists()
    assert "column 'review' not found" in refused([*argv, "--text-column", "review"], capsys)


def test_a_resume_with_another_input_or_setting_is_refused(classifier, sentences, tmp_path, capsys):
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    sentences.to_parquet(source, index=False)
    work = tmp_path / "out.parquet.parts"
    argv = ["predict", str(classifier), "--input", str(source), "--output", str(out), "--quiet", "--chunk-rows", "50"]
    stop_after_first_part(work, lambda: predict_file(classifier, source, out, chunk_rows=50, progress=False))
    assert "was started with settings chunk_rows 50, this run has 60." in refused(
        [*argv[:-1], "60", "--resume"], capsys)
    sentences.head(149).to_parquet(source, index=False)
    assert "was started with input size" in refused([*argv, "--resume"], capsys)


def stop_after_first_part(work: Path, run) -> None:
    """Run until the first part is written, then stop as a crash would (the work folder stays)."""
    real = streaming.add_predictions
    calls = []

    def stop_at_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    streaming.add_predictions = stop_at_second
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
    finally:
        streaming.add_predictions = real
    assert sorted(p.name for p in work.iterdir()) == ["part-000000.parquet", "state.json"]


KILLED = r"""
import os, signal, sys
from finetext.inference import streaming, table_parts
from finetext.api import predict_file

real = table_parts.PARTS["PARQUET"]
written = []

def write_then_die(frame, path):
    if len(written) == 2:  # the third part: half written, then killed
        path.write_bytes(b"PAR1")
        os.kill(os.getpid(), signal.SIGKILL)
    written.append(path)
    real.write(frame, path)

streaming.PARTS["PARQUET"] = table_parts.PartFormat(write_then_die, real.join)
model, source, out = sys.argv[1:4]
predict_file(model, source, out, chunk_rows=30, progress=False)
"""


def test_a_killed_prediction_resumed_writes_the_uninterrupted_output_byte_for_byte(classifier, sentences, tmp_path):
    source = tmp_path / "in.parquet"
    sentences.to_parquet(source, index=False)
    expected = predict_file(classifier, source, tmp_path / "expected.parquet", chunk_rows=30, progress=False)
    out = tmp_path / "out.parquet"
    child = subprocess.run([sys.executable, "-c", KILLED, str(classifier), str(source), str(out)],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    work = tmp_path / "out.parquet.parts"
    names = sorted(p.name for p in work.iterdir())
    assert names[-3:] == ["part-000000.parquet", "part-000001.parquet", "state.json"] and names[0].startswith(".")
    assert not out.exists()
    assert main(["predict", str(classifier), "--input", str(source), "--output", str(out), "--chunk-rows", "30",
                 "--resume", "--quiet"]) == 0
    assert out.read_bytes() == expected.read_bytes() and not work.exists()
    assert pd.read_parquet(out)["text"].tolist() == sentences["text"].tolist()


def test_mixed_types_refused_for_parquet_before_predicting_and_written_to_csv(classifier, tmp_path, capsys):
    write_tricky_json_lines(tmp_path / "in.jsonl")
    argv = ["predict", str(classifier), "--input", str(tmp_path / "in.jsonl"), "--quiet", "--chunk-rows", "4"]
    assert "column 'mixed' of" in refused(argv, capsys)
    assert main([*argv, "--output", str(tmp_path / "out.csv")]) == 0
    equal_but_rounding(read_table(tmp_path / "out.csv"),
                       read_table(whole_file_predict(classifier, tmp_path / "in.jsonl", tmp_path / "expected.csv")))


def launch(argv: list[str], processes: int, port: int) -> subprocess.CompletedProcess:
    launcher = [str(BIN / "torchrun"), "--nproc_per_node", str(processes), "--master_port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run([*launcher, "-m", "finetext", *argv], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_write_what_one_writes(classifier, sentences, tmp_path):
    source = tmp_path / "in.csv"
    tricky = pd.read_csv(tricky_csv(tmp_path / "t.csv", 150), keep_default_na=False, dtype=str)
    tricky.assign(text=sentences["text"].tolist()).to_csv(source, index=False)
    argv = ["predict", str(classifier), "--input", str(source), "--chunk-rows", "20", "--batch-size", "8",
            "--precision", "fp32"]  # no measurement: both launches run the same kernels on any CPU
    one = launch([*argv, "--output", str(tmp_path / "one.parquet")], 1, 29531)
    two = launch([*argv, "--output", str(tmp_path / "two.parquet")], 2, 29532)
    assert "process 0 of 2 predicts 4 of the 8 parts" in two.stderr
    assert "process 1 of 2 predicts 4 of the 8 parts" in two.stderr
    assert two.stdout.count("predictions written to") == one.stdout.count("predictions written to") == 1
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    assert not (tmp_path / "two.parquet.parts").exists()
