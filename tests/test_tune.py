"""finetext tune: the search space checks, the study's files, pruning, resuming and honest selection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import REPO, tiny_run, without_timing

import finetext
from finetext.cli import main
from finetext.config import config_from_flat
from finetext.tuning import study as study_module
from finetext.tuning.settings import TuneConfig
from finetext.tuning.space import Choice, Range, default_space
from finetext.tuning.study import STUDY_DB, Study

TINY_TUNE = {"dataset": "sst2", "train_samples": 160, "eval_samples": 48, "epochs": 2}


def tune_values(tiny_model: str, out: Path, **overrides) -> dict:
    return tiny_run(tiny_model, out, **{**TINY_TUNE, **overrides})


def write_space(folder: Path, space: dict) -> str:
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    return str(path)


def run_cli(*args: str) -> int:
    return main(["tune", *args])


# -- the search space -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("space", "message"), [
    ({"learnin_rate": {"low": 1e-5, "high": 1e-4}}, "'learnin_rate' is not a config field"),
    ({"seed": [1, 2]}, "'seed' cannot be searched"),
    ({"learning_rate": {"low": 1e-4, "high": 1e-5}}, "is empty (low must be below high)"),
    ({"weight_decay": {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs a positive low"),
    ({"strategy": ["full", "prefix"]}, "the value 'prefix' is refused: strategy must be one of"),
    ({"epochs": {"low": -1, "high": 2}}, "the value -1.0 is refused: epochs must be positive"),
    ({"batch_size": {"low": 8.5, "high": 32}}, "takes integers"),
    ({"lr_scheduler": {"low": 1, "high": 2}}, "is not a number: it takes choices"),
    ({"batch_size": []}, "choices must be a non-empty list"),
    ({"batch_size": {"choices": [8], "low": 1}}, "choices must be a non-empty list, alone"),
    ({"warmup": 0.1}, "must be a list of choices or a range"),
])
def test_bad_search_space_is_one_line_before_any_trial(tmp_path, capsys, tiny_model, space, message):
    values = tune_values(tiny_model, tmp_path / "out")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in values.items() if k != "quiet"]
    code = run_cli(*flags, "--quiet", "--search-space", write_space(tmp_path, space), "--trials", "2")
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()  # refused before the output directory or the study was made


def test_default_space_follows_the_strategy():
    def names(**values):
        return [p.name for p in default_space(config_from_flat(values), 3668, search_epochs=True, model_layers=6)]

    assert names() == ["learning_rate", "epochs", "batch_size", "warmup", "weight_decay"]
    assert names(strategy="lora")[-2:] == ["lora_rank", "lora_alpha"]
    space = default_space(config_from_flat({"strategy": "top_k"}), 3668, search_epochs=False, model_layers=6)
    assert "epochs" not in [p.name for p in space]  # a search on a subset: its epochs would not carry over
    assert space[-1] == Range("top_k", 1, 6, integer=True)
    rate = default_space(config_from_flat({"strategy": "lora"}), 100, True, 6)[0]
    assert (rate.low, rate.high, rate.log) == (5e-4 / 4, 5e-4 * 4, True)  # around the strategy's default
    assert Choice("batch_size", (8, 16, 32)) in space


@pytest.mark.parametrize("bad", [{"trials": 0}, {"timeout": "soon"}, {"pruner": "hyperband"},
                                 {"final": "trial", "tune_samples": 50}])
def test_bad_tune_settings_are_refused(bad):
    with pytest.raises(Exception, match="trials must be|timeout must be|pruner must be|--final trial keeps"):
        TuneConfig(**bad)


def test_timeout_durations():
    assert [TuneConfig(timeout=t).timeout_s for t in ("90m", "2h", "3600s", "45", "none")] == [5400, 7200, 3600, 45,
                                                                                                None]


# -- a whole study --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_study_writes_its_files_and_best_yaml_reproduces_the_final_model(tmp_path, tiny_model):
    out = tmp_path / "study"
    space = write_space(tmp_path, {"learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}, "batch_size": [8, 16]})
    result = Study(tune_values(tiny_model, out), TuneConfig(trials=3, search_space=space, pruner="none")).run()
    assert {p.name for p in out.iterdir()} == {"study.db", "model", "best.yaml", "trials.csv", "final.json",
                                               "tune.html", "tune", "search-data"}  # other trials' models deleted
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2] and set(trials["state"]) == {"complete"}
    assert list(trials.columns[:5]) == ["number", "state", "score", "seconds", "evaluations"]
    assert (trials["evaluations"] == 4).all()  # 2 epochs x evaluations_per_epoch
    best = result.summary.best
    assert best.score == trials["score"].max() and best.number == trials.loc[trials["score"].idxmax(), "number"]
    # the sst2 sample has an unlabelled test split: validation is held back, trials scored on a carved split
    assert result.summary.held_back_split == "validation" and "carved from train" in result.summary.search_split
    final = (out / "model" / "metrics.json").read_text()
    assert '"best"' in final
    reproduced = subprocess.run([sys.executable, "-m", "finetext", "train", str(out / "best.yaml"), "--output-dir",
                                 str(tmp_path / "again"), "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert reproduced.returncode == 0, reproduced.stderr
    first, again = (json.loads((folder / "metrics.json").read_text()) for folder in (out / "model", tmp_path / "again"))
    assert without_timing([h for h in first["history"]]) == without_timing(again["history"])
    assert first["final"] == again["final"]
    saved = yaml.safe_load((out / "best.yaml").read_text())
    assert saved["training"]["learning_rate"] == pytest.approx(best.params["learning_rate"])
    assert saved["training"]["load_best_model_at_end"] is False  # validation is held back: nothing chosen on it


@pytest.mark.slow
def test_trials_never_see_the_held_back_split(tmp_path, tiny_model):
    out = tmp_path / "study"
    Study(tune_values(tiny_model, out, dataset="mrpc"), TuneConfig(trials=1, final="none", keep_trials=True,
                                                                   pruner="none")).run()
    searched = pd.read_parquet(out / "search-data" / "search.parquet")
    trial = yaml.safe_load((out / "trials" / "trial-0000" / "finetext.yaml").read_text())
    assert trial["data"]["validation_file"] == str(out / "search-data" / "search.parquet")
    assert trial["data"]["test_file"] is None and trial["data"]["dataset"] is None
    # mrpc's test split has labels: auto searches on validation and holds test back
    validation = pd.read_parquet(REPO / "tests" / "data" / "mrpc" / "validation.parquet")
    test = pd.read_parquet(REPO / "tests" / "data" / "mrpc" / "test.parquet")
    assert set(searched["text"]) <= set(validation["sentence1"])
    assert not set(searched["text"]) & set(test["sentence1"])


@pytest.mark.slow
def test_final_trial_keeps_the_best_trials_model_and_scores_the_held_back_split(tmp_path, tiny_model):
    out = tmp_path / "study"
    result = Study(tune_values(tiny_model, out, dataset="mrpc"),
                   TuneConfig(trials=2, final="trial", pruner="none")).run()
    final = json.loads((out / "final.json").read_text())
    assert final["split"] == result.summary.held_back_split == "test"
    assert final["best_trial"] == result.summary.best.number
    assert not (out / "trials").exists()  # the best trial's model now lives in model/
    rescored = finetext.evaluate(out / "model", dataset="mrpc", split="test", test_samples=48, progress=False)
    assert final["scores"] == pytest.approx({k: rescored[k] for k in final["scores"]})
    assert rescored["num_examples"] == 48


class PruneFromTrialOne(optuna.pruners.BasePruner):
    """Prunes every trial after the first at its second evaluation: pruning's wiring, without chance."""

    def prune(self, study, trial) -> bool:
        return trial.number > 0 and trial.last_step is not None and trial.last_step >= 2


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trainer", "native"])
def test_pruned_trials_stop_at_the_evaluation_the_pruner_names(tmp_path, tiny_model, monkeypatch, engine):
    monkeypatch.setattr(study_module, "make_pruner", lambda tune: PruneFromTrialOne())
    out = tmp_path / "study"
    result = Study(tune_values(tiny_model, out, engine=engine, epochs=3),
                   TuneConfig(trials=3, final="none", evaluations_per_epoch=2)).run()
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["state"]) == ["complete", "pruned", "pruned"]
    assert list(trials["evaluations"])[1:] == [2, 2]  # the pruned ones stopped at their second evaluation
    assert trials.loc[0, "evaluations"] >= 6  # 3 epochs x 2
    assert [p.name for p in (out / "trials").iterdir()] == ["trial-0000"]  # pruned trials keep nothing
    assert result.summary.counts() == {"complete": 1, "pruned": 2}


class PruneAtTheLastEvaluation(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number > 0 and trial.last_step is not None and trial.last_step >= 4


@pytest.mark.slow
def test_the_last_evaluation_is_never_pruned(tmp_path, tiny_model, monkeypatch):
    """Pruning at the last evaluation saves no training and would throw a finished trial's score away."""
    monkeypatch.setattr(study_module, "make_pruner", lambda tune: PruneAtTheLastEvaluation())
    space = write_space(tmp_path, {"learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}})
    Study(tune_values(tiny_model, tmp_path / "study", epochs=2),
          TuneConfig(trials=2, final="none", search_space=space)).run()
    trials = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert list(trials["state"]) == ["complete", "complete"] and list(trials["evaluations"]) == [4, 4]


@pytest.mark.slow
def test_resume_runs_only_the_missing_trials_and_reruns_a_killed_one(tmp_path, tiny_model):
    out = tmp_path / "study"
    values = tune_values(tiny_model, out)
    Study(values, TuneConfig(trials=2, final="none", pruner="none")).run()
    before = pd.read_csv(out / "trials.csv")
    # a worker killed mid-trial leaves it running in the storage, with its (now dead) process id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stored = optuna.load_study(study_name="finetext", storage=f"sqlite:///{out / STUDY_DB}")
    killed = stored.ask({"learning_rate": optuna.distributions.FloatDistribution(2.5e-4, 4e-3, log=True)})
    killed.set_user_attr("host", study_module.HOST)
    killed.set_user_attr("pid", dead.pid)
    code = run_cli(*[f"--{k.replace('_', '-')}={v}" for k, v in values.items() if k != "quiet"], "--quiet",
                   "--trials", "4", "--resume", "--final", "none", "--pruner", "none")
    assert code == 0
    after = pd.read_csv(out / "trials.csv")
    assert list(after["number"]) == [0, 1, 2, 3, 4]
    kept = before.columns.drop("error")
    pd.testing.assert_frame_equal(after.loc[:1, kept], before[kept], check_dtype=False)  # never run again
    assert list(after["state"]) == ["complete", "complete", "failed", "complete", "complete"]
    assert after.loc[2, "error"] == "stopped (worker interrupted)"
    assert after.loc[3, "learning_rate"] == after.loc[2, "learning_rate"]  # the killed trial's setting, run again


def test_an_earlier_study_is_neither_mixed_in_nor_lost(tmp_path, capsys, tiny_model):
    out = tmp_path / "study"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in tune_values(tiny_model, out).items() if k != "quiet"]
    assert run_cli(*flags, "--quiet", "--resume") == 2
    assert "no study to resume" in capsys.readouterr().err
    out.mkdir()
    (out / STUDY_DB).write_bytes(b"")
    assert run_cli(*flags, "--quiet") == 2
    assert "already holds a study (study.db)" in capsys.readouterr().err
    assert (out / STUDY_DB).exists()


def test_a_bad_storage_url_is_one_line(tmp_path, capsys, tiny_model):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in tune_values(tiny_model, tmp_path / "o").items() if k != "quiet"]
    assert run_cli(*flags, "--quiet", "--storage", "nosuchdb://x/y") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the study storage") and err.count("\n") == 1


# -- several workers on one study -----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_on_postgresql_finish_exactly_the_requested_trials(tmp_path, tiny_model, postgres_url):
    values = tune_values(tiny_model, tmp_path / "unused")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in values.items() if k not in ("quiet", "output_dir")]
    workers = [subprocess.Popen([sys.executable, "-m", "finetext", "tune", *flags, "--quiet", "--output-dir",
                                 str(tmp_path / f"worker{i}"), "--storage", postgres_url, "--study-name", "two",
                                 "--trials", "5", "--final", "none", "--pruner", "none"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    stored = optuna.load_study(study_name="two", storage=postgres_url)
    ran = [t for t in stored.trials if not t.user_attrs.get("surplus")]
    assert len(ran) == 5 and {t.state for t in ran} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.number for t in ran}) == 5
    assert len({t.user_attrs["pid"] for t in ran}) == 2  # both workers took part
    for i in range(2):  # each worker's trials.csv shows the whole study
        assert len(pd.read_csv(tmp_path / f"worker{i}" / "trials.csv")) == 5
