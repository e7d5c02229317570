"""report_to: what TensorBoard's and MLflow's own readers find after a run equals the run's metrics.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import tiny_run

from finetext.api import train
from finetext.cli import main
from finetext.config import config_from_flat
from finetext.errors import FinetextError

pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    """A throwaway MLflow store (sqlite, artifacts beside it) for this test only."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact root (./mlruns) lands in the test's folder
    mlflow.set_tracking_uri(uri)
    return uri


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a TensorBoard run folder, read with tensorboard's event reader: tag -> step -> value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def tensorboard_hparams(folder: Path) -> dict[str, object]:
    """The hyperparameters written with add_hparams (a sub-run of folder), through the hparams plugin's protos."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        events = EventAccumulator(str(sub))
        events.Reload()
        content = events.PluginTagToContent("hparams")
        for raw in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if data.HasField("session_start_info"):
                hparams = data.session_start_info.hparams
                return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in hparams.items()}
    raise AssertionError(f"no hparams under {folder}")


def mlflow_run(experiment: str, run_name: str):
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              filter_string=f"attributes.run_name = '{run_name}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


def history_of(client, run, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


@pytest.mark.slow
def test_native_run_logs_config_steps_evaluations_results_and_files(tmp_path, tiny_model, mlflow_uri):
    out = tmp_path / "run"
    result = train(tiny_run(tiny_model, out, dataset="glue/mrpc", engine="native", report_to=["tensorboard", "mlflow"],
                            run_name="tiny", experiment="tracking-test"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.metrics == metrics
    losses = {e["step"]: e["loss"] for e in metrics["loss_log"]}
    rates = {e["step"]: e["learning_rate"] for e in metrics["loss_log"]}
    f1s = {e["step"]: e["validation"]["f1"] for e in metrics["history"]}
    accuracies = {e["step"]: e["validation"]["accuracy"] for e in metrics["history"]}
    last_step = max(*losses, *f1s)
    assert len(losses) >= 5 and len(f1s) == 2  # logging_steps 2, one evaluation per epoch

    # TensorBoard (float32 events): output_dir/runs/<run_name>
    scalars = tensorboard_scalars(out / "runs" / "tiny")
    assert scalars["train/loss"] == pytest.approx(losses, rel=1e-6)
    assert scalars["train/learning_rate"] == pytest.approx(rates, rel=1e-6)
    assert scalars["eval/f1"] == pytest.approx(f1s, rel=1e-6)
    assert scalars["eval/accuracy"] == pytest.approx(accuracies, rel=1e-6)
    assert scalars["final/validation/f1"] == pytest.approx({last_step: metrics["final"]["validation"]["f1"]})
    assert scalars["test/accuracy"] == pytest.approx({last_step: metrics["test"]["accuracy"]})
    hparams = tensorboard_hparams(out / "runs" / "tiny")
    assert hparams["training.learning_rate"] == pytest.approx(1e-3)
    assert hparams["training.engine"] == "native" and hparams["data.max_length"] == 64
    assert json.loads(hparams["data.label_names"]) == metrics["label_names"]

    # MLflow (float64): the experiment and run named, parameters, per-step metrics, files
    client, run = mlflow_run("tracking-test", "tiny")
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["training.learning_rate"] == "0.001" and params["training.engine"] == "native"
    assert params["model.strategy"] == "full" and params["run.output_dir"] == str(out)
    assert history_of(client, run, "train/loss") == losses
    assert history_of(client, run, "eval/f1") == f1s
    assert history_of(client, run, "eval/loss") == {e["step"]: e["validation"]["loss"] for e in metrics["history"]}
    assert run.data.metrics["final/validation/mcc"] == metrics["final"]["validation"]["mcc"]
    assert run.data.metrics["test/f1"] == metrics["test"]["f1"]
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.html", "README.md", "finetext.yaml", "report"} <= files
    downloaded = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="metrics.json",
                                                          dst_path=str(tmp_path / "download")))
    assert downloaded.read_bytes() == (out / "metrics.json").read_bytes()
    charts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "report")}
    assert "loss.png" in charts


@pytest.mark.slow
def test_trainer_engine_passes_report_to_through_and_finetext_adds_results(tmp_path, tiny_model, mlflow_uri):
    out = tmp_path / "run"
    train(tiny_run(tiny_model, out, dataset="glue/mrpc", engine="trainer", report_to=["tensorboard", "mlflow"],
                   run_name="hf"))
    metrics = json.loads((out / "metrics.json").read_text())
    losses = {e["step"]: e["loss"] for e in metrics["loss_log"]}
    f1s = {e["step"]: e["validation"]["f1"] for e in metrics["history"]}

    scalars = tensorboard_scalars(out / "runs" / "hf")  # the Trainer's TensorBoardCallback, in the run's folder
    assert scalars["train/loss"] == pytest.approx(losses, rel=1e-4)  # metrics.json rounds to 5 digits
    assert scalars["eval/f1"] == pytest.approx(f1s, rel=1e-4)
    assert "final/validation/f1" in scalars and "test/f1" in scalars

    client, run = mlflow_run("finetext", "hf")  # the default experiment
    params = run.data.params
    assert params["training.engine"] == "trainer"  # finetext's parameters beside the Trainer's own
    assert float(params["learning_rate"]) == pytest.approx(1e-3)
    assert history_of(client, run, "loss") == pytest.approx(losses, rel=1e-4)  # the Trainer's names
    assert history_of(client, run, "eval_f1") == pytest.approx(f1s, rel=1e-4)
    assert run.data.metrics["final/validation/f1"] == metrics["final"]["validation"]["f1"]
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_missing_tracker_package_is_one_line_before_any_work(tmp_path, tiny_model, capsys, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    values = tiny_run(tiny_model, tmp_path / "run")
    code = main(["train", "--model", tiny_model, "--dataset", "sst2", "--output-dir", str(tmp_path / "run"),
                 "--report-to", "mlflow", "--train-samples", str(values["train_samples"]), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "report_to mlflow needs the mlflow package" in err and "pip install" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("report_to", "message"), [
    (["neptune"], "report_to 'neptune' is not a tracker finetext knows"),
    (["none", "mlflow"], "report_to lists 'none' beside a tracker"),
])
def test_bad_report_to_is_refused(report_to, message):
    with pytest.raises(FinetextError, match=message):
        config_from_flat({"dataset": "sst2", "report_to": report_to})


def test_report_to_none_logs_nothing(tmp_path, tiny_model):
    cfg = config_from_flat(tiny_run(tiny_model, tmp_path / "run", report_to=["none"]))
    from finetext.training.tracking import RunTracker

    assert RunTracker.open(cfg, tmp_path / "checkpoints", live_steps=True) is None
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_tune_logs_one_run_per_trial_grouped_by_study(tmp_path, tiny_model, mlflow_uri):
    from finetext.tuning.settings import TuneConfig
    from finetext.tuning.study import Study

    out = tmp_path / "study"
    values = tiny_run(tiny_model, out, dataset="sst2", engine="native", report_to=["mlflow", "tensorboard"], epochs=1)
    Study(values, TuneConfig(trials=2, pruner="none", study_name="lr-search")).run()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("lr-search")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"trial-0000", "trial-0001", "final"}
    trial_lrs = {name: float(r.data.params["training.learning_rate"]) for name, r in runs.items()}
    assert trial_lrs["trial-0000"] != trial_lrs["trial-0001"]
    assert {p.name for p in (out / "runs").iterdir()} == {"trial-0000", "trial-0001", "final"}


@pytest.mark.slow
def test_resumed_run_continues_the_same_tracked_run(tmp_path, tiny_model, mlflow_uri):
    from test_resume import kill_after, run_args

    from finetext.training import checkpoint as ckpt

    killed = tmp_path / "killed"
    argv = [*run_args(tiny_model, killed, "native", 600), "--report-to", "mlflow", "tensorboard", "--logging-steps",
            "5"]
    kill_after(argv, killed / "checkpoints" / "step-21" / ckpt.STATE)
    run_name = json.loads((killed / "checkpoints" / "tracking.json").read_text())["run_name"]
    assert run_name.startswith("killed-")  # the output folder's name and the start time
    assert main(["train", "--resume", "--output-dir", str(killed), "--quiet"]) == 0

    metrics = json.loads((killed / "metrics.json").read_text())
    client, run = mlflow_run("finetext", run_name)  # one run: the resumed session logged into the killed one's
    assert run.info.status == "FINISHED"
    assert history_of(client, run, "train/loss") == {e["step"]: e["loss"] for e in metrics["loss_log"]}
    assert history_of(client, run, "eval/f1") == {e["step"]: e["validation"]["f1"] for e in metrics["history"]}
    scalars = tensorboard_scalars(killed / "runs" / run_name)
    assert scalars["train/loss"] == pytest.approx({e["step"]: e["loss"] for e in metrics["loss_log"]}, rel=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
def test_keras_engine_logs_its_steps_live(tmp_path, tiny_model):  # keras_backend torch, as the engine's own tests
    out = tmp_path / "run"
    train(tiny_run(tiny_model, out, dataset="glue/mrpc", engine="keras", keras_backend="torch",
                   report_to=["tensorboard"], run_name="keras", epochs=1))
    metrics = json.loads((out / "metrics.json").read_text())
    scalars = tensorboard_scalars(out / "runs" / "keras")
    assert scalars["train/loss"] == pytest.approx({e["step"]: e["loss"] for e in metrics["loss_log"]}, rel=1e-6)
    assert scalars["eval/f1"] == pytest.approx({e["step"]: e["validation"]["f1"] for e in metrics["history"]},
                                               rel=1e-6)


class RecordingTracker:
    """Stands in for an accelerate tracker: keeps what it is told."""

    name = "recording"

    def __init__(self):
        self.logged: list[tuple[int, dict]] = []

    def log(self, values, step=None):
        self.logged.append((step, values))


def test_entries_an_engine_did_not_report_are_logged_at_the_end_once():
    from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry, SplitScores
    from finetext.training.fit import FitResult
    from finetext.training.tracking import RunTracker

    scores = SplitScores(accuracy=0.5, f1=0.4, precision=0.3, recall=0.6, mcc=0.1, loss=0.7, f1_average="binary",
                         num_examples=8)
    losses = [LossLogEntry(step=s, epoch=s / 4, loss=1.0 / s, learning_rate=1e-3) for s in (2, 4)]
    history = [HistoryEntry(epoch=1.0, step=4, train_loss=0.6, train_seconds=1.0, validation=scores)]
    recording = RecordingTracker()
    tracker = RunTracker([recording], live_steps=True)
    tracker.log_loss(losses[0])  # told live; the second window and the evaluation were not
    tracker.log_missed(FitResult(model=None, history=history, loss_log=losses))
    assert [step for step, _ in recording.logged] == [2, 4, 4]
    assert recording.logged[1][1] == {"train/loss": 0.25, "train/epoch": 1.0, "train/learning_rate": 1e-3}
    assert recording.logged[2][1] == {"eval/loss": 0.7, "eval/accuracy": 0.5, "eval/f1": 0.4, "eval/precision": 0.3,
                                      "eval/recall": 0.6, "eval/mcc": 0.1, "eval/train_loss": 0.6}

    told_by_the_trainer = RunTracker([RecordingTracker()], live_steps=False)  # its callbacks log the steps
    told_by_the_trainer.log_missed(FitResult(model=None, history=history, loss_log=losses))
    assert told_by_the_trainer.trackers[0].logged == []


def test_a_tracker_that_fails_mid_run_is_dropped_with_one_warning(caplog):
    from finetext.evaluation.run_metrics import LossLogEntry
    from finetext.training.tracking import RunTracker

    class BrokenTracker(RecordingTracker):
        name = "broken"

        def log(self, values, step=None):
            raise ConnectionError("tracking server went away")

    working, broken = RecordingTracker(), BrokenTracker()
    tracker = RunTracker([broken, working], live_steps=True)
    for step in (2, 4):
        tracker.log_loss(LossLogEntry(step=step, epoch=step / 4, loss=0.5, learning_rate=None))
    assert tracker.trackers == [working] and [step for step, _ in working.logged] == [2, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["the broken tracker failed (ConnectionError: tracking server went away) and logs nothing more "
                        "for this run; metrics.json and the report keep every figure"]
