"""tune.html: the study page, from hand-built summaries (mixed, empty, one trial), checked in headless Chromium."""

import re
from datetime import datetime, timedelta

import pytest
from test_report import require_chromium

from finetext.evaluation.report_browser import check_page
from finetext.tuning.records import TrialRecord, TuneSummary
from finetext.tuning.report import best_so_far, history_axis, write_tune_report

HEADINGS = ["Overview", "Best settings", "Optimisation history", "Intermediate values", "Parameter importances",
            "Search space", "Trials"]
CHARTS = {"history.png", "intermediate.png", "importances.png"}
START = datetime(2025, 3, 1, 12, 0, 0)


def trial(number, state, score=None, params=None, intermediate=None, minutes=(0, 1), error=None):
    return TrialRecord(number=number, state=state, score=score, params=params or {},
                       intermediate=intermediate or {}, started=START + timedelta(minutes=minutes[0]),
                       finished=START + timedelta(minutes=minutes[1]), error=error)


def summary(trials, best=None, importances=None, started=START, **overrides):
    values = dict(study_name="sst2-search", storage="postgresql://tuner:***@db/optuna", metric="f1", maximize=True,
                  search_split="1,000 rows carved from train", held_back_split="validation",
                  space=["learning_rate: log-uniform 1e-05 .. 2e-04", "strategy: one of full, lora"],
                  trials=trials, best=best, importances=importances or {},
                  final_scores={"accuracy": 0.9123, "f1": 0.9045}, final_model_dir="runs/sst2-search/final",
                  wall_seconds=754.0, started=started)
    return TuneSummary(**(values | overrides))


BEST = trial(3, "complete", 0.91, {"learning_rate": 3.2e-05, "per_device_train_batch_size": 32,
                                   "strategy": "lora", "lora_r": 16, "fp16": True},
             {1: 0.80, 2: 0.88, 3: 0.91}, minutes=(9, 13))


@pytest.fixture
def mixed():
    return summary([
        trial(0, "complete", 0.85, {"learning_rate": 1e-4, "per_device_train_batch_size": 16, "strategy": "full"},
              {1: 0.70, 2: 0.80, 3: 0.85}, minutes=(0, 4)),
        trial(1, "pruned", None, {"learning_rate": 1.5e-5, "per_device_train_batch_size": 8,
                                  "strategy": "<script>alert(1)</script>"}, {1: 0.55}, minutes=(4, 5)),
        trial(2, "failed", None, {"learning_rate": 2e-4, "strategy": "lora", "lora_r": 8}, minutes=(5, 6),
              error="CUDA out of memory <b>& more</b>"),
        BEST,
        trial(4, "running", None, {"learning_rate": 5e-5, "strategy": "full"}, {1: 0.77}, minutes=(13, 14)),
    ], best=BEST, importances={"learning_rate": 0.7, "strategy": 0.2, "per_device_train_batch_size": 0.1})


def section(html, anchor):
    return re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S).group(1)


def assert_self_contained(html):
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    sources = re.findall(r'src="([^"]*)"', html)
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    return len(sources)


def test_mixed_study_page_shows_counts_best_settings_and_every_trial(mixed, tmp_path):
    page = write_tune_report(tmp_path, mixed)
    assert page == tmp_path / "tune.html"
    html = page.read_text()
    assert assert_self_contained(html) == len(CHARTS)
    assert {p.name for p in (tmp_path / "tune").iterdir()} == CHARTS
    assert "5: 2 complete · 1 pruned · 1 failed · 1 running" in section(html, "overview")
    assert "f1, higher is better" in html and "postgresql://tuner:***@db/optuna" in html
    assert "accuracy 0.9123 · f1 0.9045" in html and "runs/sst2-search/final" in html

    best = section(html, "best")
    assert "<strong>3</strong>" in best and "<strong>0.9100</strong>" in best
    for key, value in [("learning_rate", "3.2e-05"), ("per_device_train_batch_size", "32"),
                       ("strategy", "lora"), ("lora_r", "16"), ("fp16", "true")]:
        assert f"<td><code>{key}</code></td><td>{value}</td>" in best

    table = section(html, "trials")
    assert table.count("<tr") == 1 + len(mixed.trials)  # the head, then one row per trial
    header = re.search(r"<thead>(.*?)</thead>", table).group(1)
    assert re.findall(r"<code>(\w+)</code>", header) == ["learning_rate", "per_device_train_batch_size",
                                                         "strategy", "lora_r", "fp16"]
    assert re.search(r'<tr class="kept"><td>3</td>', table)
    assert '<tr class="pruned"><td>1</td>' in table and '<tr class="failed"><td>2</td>' in table
    assert "CUDA out of memory &lt;b&gt;&amp; more&lt;/b&gt;" in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "log-uniform 1e-05 .. 2e-04" in section(html, "space")


def test_empty_study_leaves_the_charts_out_with_notes(tmp_path):
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "history.png").write_bytes(b"from an earlier study")
    html = write_tune_report(tmp_path, summary([], space=[], final_scores=None, final_model_dir=None,
                                               held_back_split=None, started=None)).read_text()
    assert assert_self_contained(html) == 0
    assert list((tmp_path / "tune").iterdir()) == []  # the earlier study's chart is not kept
    assert "no best trial" in section(html, "best") and "no trials yet" in section(html, "trials")
    assert "need at least two complete trials" in section(html, "importances")
    assert "none (no final model)" in section(html, "overview")


@pytest.mark.parametrize("state", ["pruned", "failed"])
def test_a_study_without_a_complete_trial_still_writes_its_page(tmp_path, state):
    trials = [trial(n, state, None, {"learning_rate": 1e-5 * (n + 1)}, {1: 0.5} if state == "pruned" else None,
                    error="boom" if state == "failed" else None) for n in range(3)]
    html = write_tune_report(tmp_path, summary(trials)).read_text()
    drawn = {p.name for p in (tmp_path / "tune").iterdir()}
    assert drawn == ({"history.png", "intermediate.png"} if state == "pruned" else set())
    assert "no best trial" in section(html, "best")
    assert section(html, "trials").count(f'<tr class="{state}">') == 3


def test_single_trial_study_draws_its_history_without_importances(tmp_path):
    only = trial(0, "complete", 0.42, {"learning_rate": 2e-5}, {1: 0.40, 2: 0.42})
    html = write_tune_report(tmp_path, summary([only], best=only, maximize=False, metric="eval_loss")).read_text()
    assert {p.name for p in (tmp_path / "tune").iterdir()} == {"history.png", "intermediate.png"}
    assert "eval_loss, lower is better" in html and "need at least two complete trials" in html
    assert section(html, "trials").count('<tr class="kept">') == 1


def test_history_axis_is_minutes_since_the_start_else_the_trial_number(mixed):
    label, x = history_axis(mixed)
    assert label == "minutes since the study started" and x == {0: 4.0, 1: 5.0, 2: 6.0, 3: 13.0, 4: 14.0}
    assert history_axis(summary(mixed.trials, started=None)) == ("trial", {n: float(n) for n in range(5)})
    unfinished = [*mixed.trials[:4], TrialRecord(4, "running", None, {}, started=START)]
    assert history_axis(summary(unfinished))[0] == "trial"


def test_best_so_far_follows_the_direction():
    assert best_so_far([0.5, 0.7, 0.6, 0.8], maximize=True) == [0.5, 0.7, 0.7, 0.8]
    assert best_so_far([0.5, 0.7, 0.4, 0.6], maximize=False) == [0.5, 0.5, 0.4, 0.4]
    assert best_so_far([], maximize=True) == []


@pytest.mark.parametrize("study", ["mixed", "empty"])
def test_tune_page_loads_in_chromium_without_errors(mixed, tmp_path, study):
    require_chromium()
    tuned = mixed if study == "mixed" else summary([], importances={})
    check = check_page(write_tune_report(tmp_path, tuned))
    assert check.console_errors == [] and check.page_errors == []
    assert check.requests == []  # self-contained: nothing fetched, not even a favicon
    assert check.images == (len(CHARTS) if study == "mixed" else 0) and check.broken_images == []
    assert check.headings == ["sst2-search", *HEADINGS]
