"""Bad input: one line naming the problem and the fix, exit code 2, never a traceback."""

import subprocess
import sys

import pandas as pd
import pytest

from finetext.cli import main


@pytest.fixture
def files(tmp_path):
    pd.DataFrame({"text": ["good", "bad", "fine", "awful"] * 3, "label": ["pos", "neg"] * 6}).to_csv(
        tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": ["good", "", "so so"], "label": ["pos", "neg", "pos"]}).to_csv(
        tmp_path / "empty.csv", index=False)
    pd.DataFrame({"text": ["meh"], "label": ["neutral"]}).to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    return tmp_path


CASES = {
    "missing file": (["--train-file", "{d}/nope.csv"], "file not found: {d}/nope.csv"),
    "unknown dataset offline": (["--dataset", "yelp_review_full", "--data-dir", "{d}"],
                                "dataset 'yelp_review_full' is not in {d}/yelp_review_full and could not be loaded"),
    "missing column": (["--train-file", "{d}/train.csv", "--text-column", "review"],
                       "column 'review' not found in the train data; available: text, label"),
    "empty text": (["--train-file", "{d}/empty.csv"], "1 of 3 rows in the train data have empty or missing text"),
    "label train lacks": (["--train-file", "{d}/train.csv", "--test-file", "{d}/test.csv"],
                          "the test data has label(s) 'neutral' (1 rows) that are not among the 2 training labels"),
    "not utf-8": (["--train-file", "{d}/latin.csv"], "latin.csv is not valid UTF-8 text. Re-save it with UTF-8"),
    "model path": (["--train-file", "{d}/train.csv", "--model", "./no/such/model"],
                   "model path does not exist: ./no/such/model"),
    "hardware": (["--train-file", "{d}/train.csv", "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    "bad value": (["--train-file", "{d}/train.csv", "--epochs", "many"], "epochs must be a number; got 'many'"),
    "no data": ([], "no data given. Pass --dataset NAME_OR_PATH or --train-file FILE."),
    "both sources": (["--dataset", "sst2", "--train-file", "{d}/train.csv"],
                     "--dataset and --train-file/--validation-file/--test-file were both given"),
    "trainer save_steps": (["--train-file", "{d}/train.csv", "--save-steps", "5"],
                           "save_steps is a native-engine option: the Trainer checkpoints at each evaluation"),
    "bad engine": (["--engine", "jax"], "argument --engine: invalid choice: 'jax'"),
    "bad choice": (["--padding", "longest"], "argument --padding: invalid choice: 'longest'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_train_input_is_one_line_and_exit_2(case, files, capsys):
    flags, message = CASES[case]
    argv = ["train", *(f.format(d=files) for f in flags), "--output-dir", str(files / "out"), "--quiet"]
    with pytest.raises(SystemExit) as raised:
        raise SystemExit(main(argv))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message.format(d=files) in errors[0], err
    assert "Traceback" not in err


def test_evaluate_and_predict_errors(files, capsys):
    assert main(["predict", str(files / "missing-model"), "text"]) == 2
    assert "model directory not found" in capsys.readouterr().err
    assert main(["evaluate", str(files), "--dataset", "sst2"]) == 2
    assert "holds no trained model (config.json missing)" in capsys.readouterr().err


@pytest.mark.slow
def test_real_process_prints_one_line_without_traceback(files):
    result = subprocess.run([sys.executable, "-m", "finetext", "train", "--train-file", str(files / "nope.csv")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: file not found: {files}/nope.csv. Check the path."]
