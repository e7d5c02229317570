"""finetext audit: out-of-fold probabilities ranked by cleanlab, the files it writes, --exclude-rows, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from conftest import DATA_DIR, REPO, tiny_run
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from test_report import require_chromium

import finetext
from finetext.auditing.rows import assign_folds
from finetext.cli import main
from finetext.config import DataConfig
from finetext.data.sources import load_labelled_data
from finetext.evaluation.report_browser import check_page
from finetext.training import checkpoint as ckpt

# Every test here trains, embeds or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

ROWS, FLIPPED, FOLDS = 600, 60, 4
ISSUE_COLUMNS = ["row_id", "text", "given_label", "suggested_label", "score", "fold", "rank"]
PAGE_HEADINGS = ["Overview", "Estimated label errors per class", "Most confused labels", "Most likely label errors",
                 "What to do next"]


def noisy_sst2(folder, rows=ROWS, flipped=FLIPPED, seed=0):
    """SST-2 sentences (the fixture's) as a CSV with label names, a seeded few of them with the other label."""
    frame = pd.read_parquet(DATA_DIR / "sst2" / "train.parquet").head(rows)
    names = json.loads((DATA_DIR / "sst2" / "label_names.json").read_text())
    labels = np.array([names[i] for i in frame["label"]], dtype=object)
    wrong = np.random.default_rng(seed).choice(rows, flipped, replace=False)
    labels[wrong] = np.where(labels[wrong] == names[0], names[1], names[0])
    path = folder / "train.csv"
    pd.DataFrame({"text": frame["text"], "label": labels}).to_csv(path, index=False)
    return path, {int(i) for i in wrong}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    train, wrong = noisy_sst2(folder)
    result = finetext.audit({"train_file": str(train), "max_length": 64, "output_dir": str(folder / "out"),
                             "quiet": True}, folds=FOLDS)
    return result, train, wrong


def stored_probabilities(out, folds):
    """The out-of-fold probabilities exactly as the audit ranked them (float32, from each fold's file)."""
    assigned = pd.read_parquet(out / "out_of_fold.parquet")["fold"].to_numpy()
    probabilities = np.zeros((len(assigned), 2), dtype=np.float32)
    for fold in range(folds):
        probabilities[assigned == fold] = np.load(out / "folds" / f"fold-{fold}" / "probabilities.npy")
    return probabilities


def test_embeddings_audit_ranks_with_cleanlab_and_finds_the_flipped_labels(audited):
    result, train, wrong = audited
    out = result.output_dir
    assert {p.name for p in out.iterdir()} == {"label_issues.csv", "out_of_fold.parquet", "audit.json", "audit.html",
                                                "audit-state.json", "embeddings.npy", "folds"}
    assert sorted(p.name for p in (out / "folds").iterdir()) == [f"fold-{k}" for k in range(FOLDS)]
    source = pd.read_csv(train)
    every = pd.read_parquet(out / "out_of_fold.parquet")
    assert list(every.columns) == ISSUE_COLUMNS[:-1] + ["prob_negative", "prob_positive"]
    assert every["row_id"].tolist() == list(range(ROWS))
    assert every["text"].tolist() == source["text"].tolist()
    assert every["given_label"].tolist() == source["label"].tolist()

    # Stratified, seeded folds: each holds a quarter of the rows and of each class.
    counts = every.groupby(["fold", "given_label"]).size().unstack()
    assert (counts.max() - counts.min()).max() <= 1

    # The probabilities are out of fold: fold 0's are a regression fitted on the other folds' embeddings only.
    probabilities = stored_probabilities(out, FOLDS)
    features, held = np.load(out / "embeddings.npy"), every["fold"].to_numpy() == 0
    given = (every["given_label"] == "positive").to_numpy().astype(int)
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features[~held], given[~held])
    np.testing.assert_allclose(probabilities[held], head.predict_proba(features[held]), atol=1e-5)

    # Scores and ranking are cleanlab's on those probabilities.
    np.testing.assert_allclose(every["score"], get_label_quality_scores(given, probabilities), atol=1e-6)
    issues = pd.read_csv(out / "label_issues.csv")
    assert list(issues.columns) == ISSUE_COLUMNS and issues["rank"].tolist() == list(range(1, len(issues) + 1))
    ranked = find_label_issues(given, probabilities, return_indices_ranked_by="self_confidence")
    assert issues["row_id"].tolist() == ranked.tolist()
    assert (issues["text"] == source["text"][issues["row_id"]].to_numpy()).all()
    assert (issues["given_label"] == source["label"][issues["row_id"]].to_numpy()).all()
    assert (issues["suggested_label"] != issues["given_label"]).mean() > 0.9

    # It finds the flipped rows far above chance (10% of the rows).
    flagged = set(issues["row_id"])
    assert len(flagged & wrong) / len(wrong) >= 0.5, len(flagged & wrong)
    top = set(every.sort_values("score", kind="stable")["row_id"].head(FLIPPED))
    assert len(top & wrong) / FLIPPED >= 0.2  # 0.28 measured here; chance is 0.1

    summary = json.loads((out / "audit.json").read_text())
    assert summary["rows"] == ROWS and summary["flagged"] == len(issues) == result.flagged
    assert summary["out_of_fold_accuracy"] == pytest.approx((probabilities.argmax(1) == given).mean(), abs=1e-5)
    assert [c["label"] for c in summary["per_class"]] == ["negative", "positive"]
    assert sum(c["rows"] for c in summary["per_class"]) == ROWS
    assert {(p["given"], p["likely"]) for p in summary["confused_pairs"]} <= {("negative", "positive"),
                                                                                ("positive", "negative")}


def test_audit_page_loads_in_chromium(audited):
    require_chromium()
    result, _, _ = audited
    page = result.output_dir / "audit.html"
    check = check_page(page)
    assert check.console_errors == [] and check.page_errors == [] and check.requests == []
    assert check.headings == ["out", *PAGE_HEADINGS]
    html = page.read_text()
    shown = html.split('id="issues"')[1].split("</section>")[0].count("<tr>") - 1  # minus the header row
    assert shown == min(result.flagged, 200)
    assert "--exclude-rows" in html


def test_a_second_audit_is_refused_and_resume_reuses_the_embeddings(audited, capsys):
    result, train, _ = audited
    out = result.output_dir
    argv = ["audit", "--train-file", str(train), "--max-length", "64", "--output-dir", str(out), "--folds",
            str(FOLDS), "--quiet"]
    assert main(argv) == 2
    assert "holds an audit already. Pass --resume" in capsys.readouterr().err
    assert main([*argv[:-3], "--folds", "5", "--resume", "--quiet"]) == 2
    assert "was made with other rows" in capsys.readouterr().err
    before = {p: p.stat().st_mtime_ns for p in (out / "embeddings.npy", out / "folds" / "fold-1" / "fold.json")}
    issues = (out / "label_issues.csv").read_bytes()
    assert main([*argv, "--resume"]) == 0
    assert f"{result.flagged:,} of {ROWS} rows flagged" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (out / "label_issues.csv").read_bytes() == issues


def test_exclude_rows_leaves_out_exactly_the_listed_rows(audited, tiny_model, tmp_path):
    result, train, _ = audited
    issues = pd.read_csv(result.output_dir / "label_issues.csv")
    listed = str(result.output_dir / "label_issues.csv")
    top = set(issues["row_id"].head(10))
    validation = str(DATA_DIR / "sst2" / "validation.parquet")
    data = load_labelled_data(DataConfig(train_file=str(train), validation_file=validation, exclude_rows=listed,
                                         exclude_top=10), seed=42)
    assert sorted(data.source_rows["train"]) == sorted(set(range(ROWS)) - top)
    assert len(data.splits["validation"]) == 400  # a validation file is not the training file's rows
    # A validation split carved from train loses the listed rows too.
    carved = load_labelled_data(DataConfig(train_file=str(train), exclude_rows=listed), seed=42)
    kept = [*carved.source_rows["train"], *carved.source_rows["validation"]]
    assert sorted(kept) == sorted(set(range(ROWS)) - set(issues["row_id"]))
    # train_samples takes the same seeded subset as without the list, then leaves the listed rows out.
    subset = load_labelled_data(DataConfig(train_file=str(train), validation_file=validation, train_samples=300),
                                seed=42).source_rows["train"]
    both = load_labelled_data(DataConfig(train_file=str(train), validation_file=validation, train_samples=300,
                                         exclude_rows=listed), seed=42).source_rows["train"]
    assert sorted(both) == sorted(set(subset) - set(issues["row_id"]))

    out = tmp_path / "retrained"
    assert main(["train", "--train-file", str(train), "--validation-file", validation, "--exclude-rows", listed,
                 "--exclude-top", "10", "--model", tiny_model, "--output-dir", str(out), "--epochs", "1",
                 "--max-length", "32", "--eval-samples", "32", "--quiet", "--no-report"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["train"] == ROWS - 10


@pytest.mark.parametrize(("make_list", "message"), [
    (lambda rows: rows.assign(row_id=rows["row_id"] + 10_000), "lists row 10"),
    (lambda rows: rows.assign(text=rows["text"].iloc[::-1].to_numpy()), "has another text than row"),
    (lambda rows: rows.drop(columns="row_id"), "has no 'row_id' column"),
    (lambda rows: rows.assign(row_id="x"), "row_id must hold non-negative whole numbers"),
])
def test_exclude_rows_refuses_a_list_made_from_other_data(audited, tmp_path, capsys, make_list, message):
    result, train, _ = audited
    listed = tmp_path / "list.csv"
    make_list(pd.read_csv(result.output_dir / "label_issues.csv").head(5)).to_csv(listed, index=False)
    assert main(["train", "--train-file", str(train), "--exclude-rows", str(listed), "--output-dir",
                 str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_audit_refusals_are_one_line(tmp_path, capsys):
    train = noisy_sst2(tmp_path, rows=40, flipped=4)[0]
    base = ["audit", "--train-file", str(train), "--output-dir", str(tmp_path / "out"), "--quiet"]
    for extra, message in (
            (["--folds", "1"], "folds must be between 2 and 20"),
            (["--method", "knn"], "method must be one of embeddings, train"),
            (["--model", "scratch"], "--method embeddings needs a pretrained model"),
            (["--folds", "20", "--train-samples", "30"], "too few for 20 folds"),
            (["--exclude-top", "5"], "exclude_top needs exclude_rows"),
            (["--resume", "--overwrite"], "contradict each other")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "out").exists()


def test_sentence_pairs_are_audited_as_pairs(tmp_path):
    result = finetext.audit({"dataset": "glue/mrpc", "train_samples": 200, "max_length": 64,
                             "output_dir": str(tmp_path / "out"), "quiet": True}, folds=2)
    every = pd.read_parquet(result.output_dir / "out_of_fold.parquet")
    assert list(every.columns[:4]) == ["row_id", "text", "text_pair", "given_label"]
    assert np.load(result.output_dir / "embeddings.npy").shape == (200, 4 * 384)  # u, v, |u - v|, u * v
    source = pd.read_parquet(DATA_DIR / "mrpc" / "train.parquet")
    assert (every["text_pair"] == source["sentence2"][every["row_id"]].to_numpy()).all()
    issues = pd.read_csv(result.output_dir / "label_issues.csv")
    assert "text_pair" in issues.columns


TOPICS = {"sports": ["match", "goal", "team"], "politics": ["vote", "election", "senate"],
          "tech": ["software", "chip", "phone"]}


def test_multi_label_data_is_audited_per_label(tmp_path):
    from cleanlab.multilabel_classification.rank import get_label_quality_scores as multi_scores

    rng = np.random.default_rng(0)
    rows, wrong = [], set()
    for i in range(300):
        labels = [t for t in TOPICS if rng.random() < 0.4] or ["tech"]
        words = [str(rng.choice(TOPICS[t])) for t in labels for _ in range(3)]
        given = list(labels)
        if i % 10 == 0:  # one topic added or dropped
            topic = str(rng.choice(list(TOPICS)))
            given = [t for t in given if t != topic] if topic in given else [*given, topic]
            wrong.add(i)
        rows.append({"text": " ".join(rng.permutation(words)), "labels": given})
    path = tmp_path / "train.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    result = finetext.audit({"train_file": str(path), "max_length": 32, "output_dir": str(tmp_path / "out"),
                             "quiet": True}, folds=3)
    every = pd.read_parquet(result.output_dir / "out_of_fold.parquet")
    names = ["politics", "sports", "tech"]
    assert every["given_label"].tolist() == ["|".join(sorted(r["labels"])) for r in rows]
    probabilities = every[[f"prob_{n}" for n in names]].to_numpy()
    given = [[names.index(t) for t in sorted(r["labels"])] for r in rows]
    np.testing.assert_allclose(every["score"], multi_scores(given, probabilities), atol=1e-4)
    flagged = set(pd.read_csv(result.output_dir / "label_issues.csv")["row_id"])
    assert len(flagged & wrong) / len(wrong) >= 0.6
    summary = json.loads((result.output_dir / "audit.json").read_text())
    assert summary["multi_label"] and [c["label"] for c in summary["per_class"]] == names


def test_folds_are_stratified_and_seeded():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    folds, stratified = assign_folds(labels, 5, seed=1)
    assert stratified and np.array_equal(folds, assign_folds(labels, 5, seed=1)[0])
    assert not np.array_equal(folds, assign_folds(labels, 5, seed=2)[0])
    for k in range(5):
        assert np.bincount(labels[folds == k]).tolist() == [10, 6, 4]
    assert assign_folds(np.array([0] * 20 + [1] * 3), 5, seed=1)[1] is False  # a class under 5 rows
    multi = np.eye(3)[np.arange(30) % 3]
    folds, stratified = assign_folds(multi, 3, seed=1)
    assert not stratified and np.bincount(folds).tolist() == [10, 10, 10]


def audit_argv(tiny_model, train, out, folds=3, save_steps=3):
    run = tiny_run(tiny_model, out, train_samples=None, eval_samples=None, test_samples=None, epochs=2)
    flags = []
    for key in ("model", "epochs", "batch_size", "learning_rate", "max_length", "batch_tokens"):
        flags += [f"--{key.replace('_', '-')}", str(run[key])]
    return ["audit", "--train-file", str(train), "--output-dir", str(out), "--method", "train", "--folds", str(folds),
            "--engine", "native", "--save-steps", str(save_steps), "--precision", "fp32", "--quiet", *flags]


def test_train_method_runs_finetext_per_fold_and_a_killed_audit_resumes_exactly(tiny_model, tmp_path, capsys):
    train = noisy_sst2(tmp_path, rows=180, flipped=18)[0]
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    argv = audit_argv(tiny_model, train, killed)
    sentinel = killed / "folds" / "fold-1" / "model" / "checkpoints" / "step-6" / ckpt.STATE
    child = subprocess.Popen([sys.executable, "-m", "finetext", *argv], cwd=REPO, env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not sentinel.is_file():
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = killed / "folds" / "fold-0" / "fold.json"
    assert finished.is_file() and not (killed / "folds" / "fold-1" / "fold.json").exists()
    mtime = finished.stat().st_mtime_ns

    assert main([*argv, "--learning-rate", "0.5", "--resume"]) == 2
    assert "was made with other training" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert finished.stat().st_mtime_ns == mtime
    assert main(audit_argv(tiny_model, train, reference)) == 0
    capsys.readouterr()

    # Each fold was a finetext run: its metrics.json is kept, its model is not (no --keep-fold-models).
    for fold in range(3):
        folder = killed / "folds" / f"fold-{fold}"
        assert {p.name for p in folder.iterdir()} == {"fold.json", "probabilities.npy", "metrics.json"}
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["data"]["train"] + metrics["data"]["validation"] == 180
        assert metrics["data"]["validation"] == json.loads((folder / "fold.json").read_text())["rows"]
    resumed, fresh = (pd.read_parquet(d / "out_of_fold.parquet") for d in (killed, reference))
    pd.testing.assert_frame_equal(resumed, fresh)
    assert (killed / "label_issues.csv").read_bytes() == (reference / "label_issues.csv").read_bytes()


def test_fold_runs_keep_their_last_weights_and_find_their_rows_tokenized(tiny_model, tmp_path, monkeypatch):
    from finetext.auditing.training_folds import FOLD_RUN_FIXED

    monkeypatch.setenv("FINETEXT_CACHE_DIR", str(tmp_path / "cache"))

    assert FOLD_RUN_FIXED["load_best_model_at_end"] is False and FOLD_RUN_FIXED["early_stopping_patience"] is None
    train = noisy_sst2(tmp_path, rows=60, flipped=6)[0]
    argv = audit_argv(tiny_model, train, tmp_path / "out", folds=2, save_steps=100)
    assert main([*argv, "--load-best-model-at-end", "--epochs", "3"]) == 0
    for fold in range(2):
        metrics = json.loads((tmp_path / "out" / "folds" / f"fold-{fold}" / "metrics.json").read_text())
        assert len(metrics["history"]) == 3
        assert metrics["best"]["step"] == metrics["history"][-1]["step"]  # the last weights, whatever scored best
    # Every row was tokenized once into the entries the fold runs looked up (with 2 folds, one fold's training rows
    # are the other's held-out rows: 2 entries); a run that missed them would have added its own.
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 2
