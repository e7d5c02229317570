"""A study with a fixed life cycle: setup -> search -> finish; run() calls them in that order.

setup() checks everything that can be checked before the first trial (the space against the config, the model,
the data, the output directory, the stored study) and writes the search data; search() runs trials (each an
ordinary TrainingRun on the search data, its evaluations reported to Optuna's pruner) until the study holds the
requested number or the time is up; finish() trains the final model on the full data with the best setting,
scores it on the held-back split and writes best.yaml, trials.csv and tune.html.

Workers on several machines share one study through its storage: each counts the study's trials before it
starts another, so together they run exactly the requested number (see `counted`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import socket
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from finetext.config import TrainConfig, config_from_flat
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import HistoryEntry, SplitScores
from finetext.storage import write_json, write_text
from finetext.training.tracking import DEFAULT_EXPERIMENT, chosen_trackers
from finetext.tuning.records import TrialRecord, TuneSummary
from finetext.tuning.search_data import SEARCH_DATA, SearchData, prepare_search_data
from finetext.tuning.settings import TuneConfig
from finetext.tuning.space import check_space, default_space, read_space, sample

log = logging.getLogger("finetext")

STUDY_DB = "study.db"
TRIALS = "trials"
MODEL = "model"
BEST_YAML = "best.yaml"
TRIALS_CSV = "trials.csv"
FINAL_JSON = "final.json"
TUNE_HTML = "tune.html"
TUNE_FILES = (STUDY_DB, TRIALS, MODEL, BEST_YAML, TRIALS_CSV, FINAL_JSON, TUNE_HTML, "tune", SEARCH_DATA)
DEFAULT_STUDY = "finetext"
HOST = socket.gethostname()
HEARTBEAT_S, GRACE_S = 20, 60


class SurplusTrial(Exception):
    """Two workers started the study's last trial at once: the later one stands down before training."""


class RefusedTrial(Exception):
    """The sampled combination is one the config refuses (e.g. a strategy with an option it cannot take)."""


@dataclass(frozen=True)
class TuneResult:
    output_dir: Path
    summary: TuneSummary
    model_dir: Path | None
    """The final model (OUTPUT_DIR/model), or None with --final none."""


class Study:
    """setup() -> SearchData, search() -> None, finish() -> TuneResult; run() calls them in that order."""

    def __init__(self, base_values: dict[str, Any], tune: TuneConfig):
        if base_values.get("resume"):
            raise FinetextError("--resume of `finetext tune` continues the study, not a training run; it cannot be "
                                "given in the training config.", "Remove resume from the config file.")
        self.base_values = {k: v for k, v in base_values.items() if k != "resume"}
        self.base: TrainConfig = config_from_flat(self.base_values)
        if not self.base.data.has_source():
            raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise FinetextError("finetext tune runs one process per worker, not under accelerate launch/torchrun.",
                                "Start several workers with --storage URL --study-name NAME instead.")
        self.tune = tune
        self.out = Path(self.base.output_dir).expanduser().resolve()
        self.metric = self.base.training.metric_for_best_model
        self.maximize = self.metric != "loss"
        self.started = time.monotonic()

    # -- setup ------------------------------------------------------------------------------------------------

    def setup(self) -> SearchData:
        from finetext.models.factory import resolve_model_config

        resolve_model_config(self.base.model)  # a bad model name fails before the data is read
        space = read_space(self.tune.search_space) if self.tune.option("search_space") else None
        if space is not None:
            check_space(space, self.base_values)  # before any data is read: a bad space costs nothing
        self.prepare_output_dir()
        self.search = prepare_search_data(self.base, self.tune, self.out)
        self.space = space or default_space(self.base, self.search.train_rows, search_epochs=not self.tune.tune_samples,
                                            model_layers=encoder_layers(self.base))
        check_space(self.space, self.base_values)
        self.storage = open_storage(self.storage_url())
        self.study = self.open_study()
        log.info("study '%s' in %s: %d trials, scored on %s", self.study.study_name, self.storage_label(),
                 self.tune.trials, self.search.description)
        for parameter in self.space:
            log.info("search: %s", parameter.describe())
        return self.search

    def prepare_output_dir(self) -> None:
        """Refuse to mix two studies in one directory, unless asked to continue (--resume) or start over."""
        earlier = [name for name in TUNE_FILES if (self.out / name).exists()]
        own_storage = self.tune.option("storage") is None
        if self.tune.resume and own_storage and not (self.out / STUDY_DB).is_file():
            raise FinetextError(f"no study to resume in {self.out} ({STUDY_DB} missing).",
                                "Pass the --output-dir of the interrupted study, or run without --resume.")
        if earlier and not self.tune.resume:
            if not self.base.overwrite_output_dir:
                raise FinetextError(f"{self.out} already holds a study ({', '.join(earlier)}).",
                                    "Pass --resume to continue it, or --overwrite-output-dir to start over.")
            for name in earlier:
                path = self.out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.out.mkdir(parents=True, exist_ok=True)

    def storage_url(self) -> str:
        return self.tune.option("storage") or f"sqlite:///{self.out / STUDY_DB}"

    def storage_label(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.storage_url()).render_as_string(hide_password=True)

    def open_study(self) -> optuna.Study:
        """Create the study, or join it (a shared storage, or --resume) after checking it searches the same thing."""
        name = self.tune.option("study_name") or DEFAULT_STUDY
        exists = name in optuna.get_all_study_names(self.storage)
        if exists and self.tune.option("storage") is None and not self.tune.resume:  # prepare_output_dir removed it
            raise FinetextError(f"study '{name}' already exists.", "Pass --resume to continue it.")
        if self.tune.resume and not exists:
            raise FinetextError(f"no study '{name}' to resume in {self.storage_label()}.",
                                "Check --study-name, or run without --resume.")
        own = self.tune.option("storage") is None
        # one worker: seeded, reproducible; several: each its own seed, so they do not all try the same settings
        seed = self.base.training.seed if own else hash((HOST, os.getpid())) % 2**31
        study = optuna.create_study(
            study_name=name, storage=self.storage, load_if_exists=True,
            direction="maximize" if self.maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, self.tune.trials // 3)),
                                               constant_liar=not own),
            pruner=make_pruner(self.tune))
        identity = {"metric": self.metric, "search_data": self.search.fingerprint,
                    "space": [p.describe() for p in self.space]}
        stored = study.user_attrs.get("finetext")
        if stored is None:
            study.set_user_attr("finetext", identity)
        elif stored != identity:
            changed = ", ".join(k for k in identity if identity[k] != stored.get(k))
            raise FinetextError(f"study '{name}' was started with another {changed}: its trials would not compare.",
                                "Use the same data, seed, metric and search space, or another --study-name.")
        return study

    # -- search -----------------------------------------------------------------------------------------------

    def run_search(self) -> None:
        """Run trials until the study holds the requested number (counting every worker's) or time is up."""
        deadline = None if self.tune.timeout_s is None else self.started + self.tune.timeout_s
        while True:
            fail_dead_local_trials(self.study, self.storage)
            if counted(self.study) >= self.tune.trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                log.info("time is up (--timeout %s): no more trials started", self.tune.timeout)
                break
            self.study.optimize(self.objective, n_trials=1, catch=(SurplusTrial, RefusedTrial), gc_after_trial=True,
                                callbacks=[self.after_trial])

    def objective(self, trial: optuna.Trial) -> float:
        if self.is_surplus(trial):
            trial.set_user_attr("surplus", True)
            raise SurplusTrial()
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        params = sample(self.space, trial)
        try:
            cfg = config_from_flat(self.trial_values(params, trial.number))
        except FinetextError as exc:
            trial.set_user_attr("error", str(exc))
            raise RefusedTrial(str(exc)) from None
        from finetext.training.run import TrainingRun

        try:
            reporter = PruningReporter(trial, self.metric, planned_evaluations(cfg, self.search.train_rows))
            result = TrainingRun(cfg, on_evaluation=reporter).run()
        except FinetextError as exc:
            trial.set_user_attr("error", str(exc))
            shutil.rmtree(cfg.output_dir, ignore_errors=True)
            raise RefusedTrial(str(exc)) from None
        except BaseException:  # pruned or interrupted: nothing of it is kept
            shutil.rmtree(cfg.output_dir, ignore_errors=True)
            raise
        # the kept model scored again at the end (with selection off it is the last weights, which may be some
        # steps past the last evaluation); the final report has no loss, which the kept evaluation has
        final = result.metrics["final"]["validation"]
        return final[self.metric] if self.metric in final else result.metrics["best"]["validation"][self.metric]

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """True when the study already holds the requested trials before this one (another worker started the
        last one at the same moment); trial numbers are assigned by the storage, so every worker agrees."""
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and is_counted(t)]
        return len(earlier) >= self.tune.trials

    def trial_values(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        """A trial's flat config: the base, pointed at the search data, with the sampled settings, evaluating
        evaluations_per_epoch times an epoch so the pruner hears from it often."""
        values = {**self.base_values, **self.search.overrides, **params, **self.selection_values()}
        values.update(self.tracking_values(f"trial-{number:04d}"))
        values.update(output_dir=str(self.out / TRIALS / f"trial-{number:04d}"), overwrite_output_dir=True,
                      quiet=True, report=False, eval_strategy="steps",
                      eval_steps=eval_steps(values, self.search.train_rows, self.tune.evaluations_per_epoch))
        return values

    def tracking_values(self, run_name: str) -> dict[str, Any]:
        """With report_to: one tracked run per trial (and 'final'), grouped by the study (the MLflow experiment or
        W&B project is the study's name unless --experiment names one; TensorBoard runs sit in OUTPUT_DIR/runs)."""
        if not chosen_trackers(self.base.report_to):
            return {}
        experiment = self.base.experiment if self.base.experiment != DEFAULT_EXPERIMENT else self.study.study_name
        return {"run_name": run_name, "experiment": experiment,
                "tracking_dir": self.base.tracking_dir or str(self.out / "runs")}

    def selection_values(self) -> dict[str, Any]:
        """Searching on a carved split holds validation back, so nothing may be chosen on it: trials and the final
        run keep their last model (a trial is scored as the final model will be) and never stop early."""
        if self.search.mode == "carve":
            return {"load_best_model_at_end": False, "early_stopping_patience": None}
        return {}

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("surplus"):
            return
        best = best_trial(study)
        log.info("trial %d %s%s (best: %s) in %.0f s: %s", trial.number, trial.state.name.lower(),
                 f": {self.metric} {trial.value:.4f}" if trial.value is not None else "",
                 f"{best.value:.4f}, trial {best.number}" if best else "none yet",
                 (trial.duration.total_seconds() if trial.duration else 0.0),
                 ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
                 or trial.user_attrs.get("error", ""))
        if not self.tune.keep_trials:
            self.remove_trial_models(keep=best.number if best else None)

    def remove_trial_models(self, keep: int | None) -> None:
        """Only the best trial's model is worth its disk space (and only until the final model exists)."""
        folder = self.out / TRIALS
        for path in folder.glob("trial-*") if folder.is_dir() else []:
            if keep is None or path.name != f"trial-{keep:04d}":
                shutil.rmtree(path, ignore_errors=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    # -- finish -----------------------------------------------------------------------------------------------

    def finish(self) -> TuneResult:
        if self.tune.final != "none":
            self.wait_for_other_workers()
        best = best_trial(self.study)
        model_dir, scores = None, None
        if best is not None and self.tune.final != "none":
            write_text(self.out / BEST_YAML, best_yaml(self.final_config(best, overwrite=False), best, self.metric))
            model_dir, scores = self.final_model(best)
            write_json(self.out / FINAL_JSON, {"split": self.search.held_back, "model_dir": str(model_dir),
                                               "best_trial": best.number, "scores": scores})
        if not self.tune.keep_trials:
            self.remove_trial_models(keep=best.number if best and self.tune.final == "none" else None)
        summary = self.summary(best, scores, model_dir)
        write_trials_csv(self.out / TRIALS_CSV, summary.trials)
        from finetext.tuning.report import write_tune_report

        write_tune_report(self.out, summary)
        if best is None:
            states = ", ".join(f"{n} {s}" for s, n in summary.counts().items()) or "none"
            raise FinetextError(f"no trial completed ({states}); trials.csv and tune.html say why.",
                                "Widen the search space, raise --timeout, or use --pruner none.")
        return TuneResult(self.out, summary, model_dir)

    def wait_for_other_workers(self) -> None:
        """The best setting is only known when every worker's trials have ended."""
        while running := [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]:
            log.info("waiting for %d trial(s) of other workers to end", len(running))
            time.sleep(15)
            optuna.storages.fail_stale_trials(self.study)
            fail_dead_local_trials(self.study, self.storage)

    def final_config(self, best: FrozenTrial, overwrite: bool) -> TrainConfig:
        """The best setting on the full data, saved to OUTPUT_DIR/model; what best.yaml holds."""
        values = {**self.base_values, **best.params, **self.selection_values(), **self.tracking_values("final"),
                  "output_dir": str(self.out / MODEL), "overwrite_output_dir": overwrite}
        if self.search.mode == "validation":  # select among the same evaluations the trial did
            values.update(eval_strategy="steps", eval_steps=eval_steps(values, self.search.full_train_rows,
                                                                       self.tune.evaluations_per_epoch))
        return config_from_flat(values)

    def final_model(self, best: FrozenTrial) -> tuple[Path, dict[str, float]]:
        """--final full: train best.yaml's config; --final trial: keep the best trial's model. Either way, its
        scores on the held-back split."""
        if self.tune.final == "full":
            from finetext.training.run import TrainingRun

            log.info("final run: the best setting (trial %d) on the full training data", best.number)
            metrics = TrainingRun(self.final_config(best, overwrite=True)).run().metrics
            split = metrics["test"] if self.search.held_back == "test" else metrics["final"]["validation"]
            return self.out / MODEL, SplitScores.from_dict(split, self.search.held_back).scalars()
        trial_dir = self.out / TRIALS / f"trial-{best.number:04d}"
        if not trial_dir.is_dir():
            raise FinetextError(f"the best trial ({best.number}) ran on another worker: its model is not here.",
                                "Use --final full, which trains the best setting here.")
        model = self.out / MODEL
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(trial_dir, model)
        from finetext.inference.split_evaluation import evaluate_split

        data_options = {k: v for k, v in asdict(self.base.data).items() if v is not None}
        if self.search.held_back == "test":  # eval_samples limits validation only, as in a training run
            data_options.pop("eval_samples", None)
        scored = evaluate_split(model, split=self.search.held_back, progress=not self.base.quiet, **data_options)
        return model, scored.scores.scalars()

    def summary(self, best: FrozenTrial | None, scores: dict[str, float] | None,
                model_dir: Path | None) -> TuneSummary:
        trials = [record(t) for t in self.study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
        starts = [t.started for t in trials if t.started]
        return TuneSummary(
            study_name=self.study.study_name, storage=self.storage_label(), metric=self.metric,
            maximize=self.maximize, search_split=self.search.description,
            held_back_split=self.search.held_back if model_dir else None, space=[p.describe() for p in self.space],
            trials=trials, best=next((t for t in trials if best and t.number == best.number), None),
            importances=importances(self.study), final_scores=scores,
            final_model_dir=str(model_dir) if model_dir else None,
            wall_seconds=round(time.monotonic() - self.started, 1), started=min(starts, default=None))

    def run(self) -> TuneResult:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # finetext logs one line per trial instead
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries
        self.setup()
        self.run_search()
        return self.finish()


# ----------------------------------------------------------------------------------------------------------


class PruningReporter:
    """The EvaluationObserver of a trial: each evaluation's score goes to Optuna, keyed by the evaluation's
    index (evaluations_per_epoch per epoch, the same for every batch size), and a hopeless trial stops there.
    The last planned evaluation is reported but never pruned: the training it would save is already done."""

    def __init__(self, trial: optuna.Trial, metric: str, planned: int):
        self.trial, self.metric, self.planned = trial, metric, planned
        self.evaluations = 0

    def __call__(self, entry: HistoryEntry) -> None:
        self.evaluations += 1
        self.trial.report(entry.validation.score(self.metric), self.evaluations)
        if self.evaluations < self.planned and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at evaluation {self.evaluations} (epoch {entry.epoch})")


def updates_per_epoch(batch_size: int, accumulation: int, train_rows: int) -> int:
    return math.ceil(math.ceil(train_rows / batch_size) / accumulation)


def eval_steps(values: dict[str, Any], train_rows: int, per_epoch: int) -> int:
    """Optimizer steps between evaluations so that an epoch holds per_epoch of them."""
    per_epoch_updates = updates_per_epoch(int(values.get("batch_size", 16)),
                                          int(values.get("gradient_accumulation_steps", 1)), train_rows)
    return max(1, math.ceil(per_epoch_updates / per_epoch))


def planned_evaluations(cfg: TrainConfig, train_rows: int) -> int:
    """How many evaluations a trial's run will make (epochs is set: every trial's config resolves it)."""
    training = cfg.training
    updates = updates_per_epoch(training.batch_size, training.gradient_accumulation_steps, train_rows)
    total = math.ceil(updates * training.resolved_epochs(train_rows))
    return total // training.eval_steps


def make_pruner(tune: TuneConfig) -> optuna.pruners.BasePruner:
    """Both judge a trial from its second evaluation on (the first, after a fraction of an epoch, says little);
    the median pruner once two trials have finished."""
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if tune.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_storage(url: str, attempts: int = 4) -> RDBStorage:
    """An RDB storage with heartbeats: a worker that dies mid-trial has its trial failed (and retried) by the
    others after GRACE_S seconds. Workers started together on an empty database race to create its tables; the
    loser tries again."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as exc:  # sqlalchemy's errors for bad URLs, unreachable servers, missing drivers, races
            error = exc
            if isinstance(exc, (ImportError, sqlalchemy.exc.ArgumentError)):  # a bad URL or a missing driver
                break
            time.sleep(1 + random.random() * 2 * (attempt + 1))
    reason = str(error).splitlines()[0][:200]
    raise FinetextError(f"cannot open the study storage: {type(error).__name__}: {reason}.",
                        "Check --storage (an SQLAlchemy URL such as postgresql://user@host/db).") from None


def is_counted(trial: FrozenTrial) -> bool:
    """A trial that counts towards --trials: finished, running or queued, or failed for a reason of its own (a
    refused combination). Trials of a killed worker and surplus trials never ran, so they do not count."""
    if trial.state == TrialState.FAIL:
        return "error" in trial.user_attrs
    return not trial.user_attrs.get("surplus")


def counted(study: optuna.Study) -> int:
    return sum(is_counted(t) for t in study.get_trials(deepcopy=False))


def fail_dead_local_trials(study: optuna.Study, storage: RDBStorage) -> None:
    """A trial left running by a killed worker on this machine is failed at once (and queued again), rather
    than after the heartbeat's grace period: `--resume` right after a kill runs it again."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        dead = trial.user_attrs.get("host") == HOST and pid and pid != os.getpid() and not pid_alive(pid)
        if dead and storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, storage.get_trial(trial._trial_id))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def encoder_layers(cfg: TrainConfig) -> int | None:
    """Layers top_k may train (the default space's range for k)."""
    if cfg.model.is_scratch():
        return cfg.model.scratch_layers
    try:
        from transformers import AutoConfig

        from finetext.models.pretrained import resolve_model_path

        return getattr(AutoConfig.from_pretrained(resolve_model_path(cfg.model.model)), "num_hidden_layers", None)
    except (OSError, ValueError):
        return None


def importances(study: optuna.Study) -> dict[str, float]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():  # PED-ANOVA warns when few trials make every importance equal
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. no parameter varied among complete trials
        return {}


STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def record(trial: FrozenTrial) -> TrialRecord:
    error = trial.user_attrs.get("error")
    if trial.state == TrialState.FAIL and error is None:
        error = "stopped (worker interrupted)"
    return TrialRecord(number=trial.number, state=STATES[trial.state], params=dict(trial.params),
                       score=trial.value if trial.state == TrialState.COMPLETE else None,
                       intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
                       started=trial.datetime_start, finished=trial.datetime_complete, error=error)


def write_trials_csv(path: Path, trials: list[TrialRecord]) -> None:
    import pandas as pd

    from finetext.data.files import write_table

    names = sorted({name for t in trials for name in t.params})
    rows = [{"number": t.number, "state": t.state, "score": t.score,
             "seconds": None if t.seconds is None else round(t.seconds, 1),
             "evaluations": len(t.intermediate), "started": iso(t.started), "finished": iso(t.finished),
             **{name: t.params.get(name) for name in names}, "error": t.error} for t in trials]
    columns = ["number", "state", "score", "seconds", "evaluations", "started", "finished", *names, "error"]
    write_table(pd.DataFrame(rows, columns=columns), path)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def best_yaml(cfg: TrainConfig, best: FrozenTrial, metric: str) -> str:
    header = (f"# The best setting of the study (trial {best.number}, search {metric} {best.value:.4f}) on the full\n"
              "# data: `finetext train best.yaml` reproduces the final model (add --output-dir to keep this one).\n")
    return header + yaml.safe_dump(cfg.to_dict(), sort_keys=False)
