"""A training run with a fixed life cycle: setup -> train -> evaluate -> save -> cleanup.

Under `accelerate launch` or `torchrun` every process runs setup and train (the engine splits the
batches and gathers evaluation rows); only the main process evaluates the kept model and writes files.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
import yaml
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from torch import nn
from transformers import set_seed

from finetext.artifacts import (
    CHECKPOINTS,
    MANIFEST,
    MISTAKES,
    REPORT,
    REPORT_FILES,
    prepare_output_dir,
    save_artifact,
)
from finetext.config import TrainConfig, config_from_flat, flatten
from finetext.data.sources import LabelledData, label_array, load_labelled_data, resolved_data_config
from finetext.data.tokenize import tokenize_split
from finetext.errors import FinetextError
from finetext.evaluation.mistakes import confident_mistakes
from finetext.evaluation.model_card import model_card
from finetext.evaluation.report import write_report
from finetext.evaluation.run_metrics import DataSummary, ParameterCounts, RunMetrics, SplitScores, TrainStats
from finetext.hardware.calibrate import attention_kernel
from finetext.inference.classifier import Classifier
from finetext.inference.score import evaluate_with_logits
from finetext.lazy import import_object
from finetext.models.factory import load_model, resolve_model_config
from finetext.models.mean_pooling import is_mean_pooled
from finetext.models.strategies import STRATEGIES, apply_strategy, parameter_counts
from finetext.models.strategies.lora import is_lora
from finetext.push import check_repo_id
from finetext.storage import write_json, write_text
from finetext.training import checkpoint as ckpt
from finetext.training.engines import ENGINES, engine_for
from finetext.training.fit import EvaluationObserver, FitResult, PreparedRun
from finetext.training.hardware_settings import (
    resolve_hardware_settings,
    saved_hardware_settings,
    training_workload,
)
from finetext.training.objective import Objective, resolve_class_weights
from finetext.training.short_texts import apply_plan, plan_for
from finetext.training.tracking import RunTracker, TrackedRun, check_trackers_installed, default_run_name
from finetext.version import __version__

log = logging.getLogger("finetext")


@dataclass
class TrainResult:
    """Where the model went and what it scored (the contents of metrics.json)."""

    output_dir: Path
    metrics: dict
    """Empty on the processes other than the main one of a multi-process run."""


@dataclass(frozen=True)
class FinalModel:
    """The model the run evaluates and saves. A LoRA model is saved as adapters (in a hidden folder inside
    output_dir until the artifact is written) and then merged, so the final scores are those of the weights
    saved."""

    model: nn.Module
    adapter_dir: Path | None


@dataclass(frozen=True)
class Evaluation:
    """The final scores of the kept model: validation, and test when it has labels."""

    reports: dict[str, SplitScores]
    """Split -> its metrics report."""
    mistakes: dict[str, list[dict]]
    """Split -> its most confident mistakes (mistakes.json)."""
    logits: dict[str, np.ndarray]
    """Split -> the model's outputs, one row per example in the split's order (finetext audit's out-of-fold
    probabilities come from validation's)."""


def check_hardware(cfg: TrainConfig) -> None:
    """Refuse, before any work, what this machine cannot do."""
    precision = cfg.training.precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise FinetextError("--precision fp16 needs a CUDA GPU and none is available.",
                            "Use --precision bf16 (CPUs with bfloat16 support) or fp32.")
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise FinetextError("--precision bf16 is not supported by this GPU.", "Use --precision fp16 or fp32.")


class TrainingRun:
    """setup() -> PreparedRun, train() -> FitResult, then (main process) finish_model() -> FinalModel,
    evaluate() -> Evaluation, save() -> TrainResult and cleanup(); run() calls them in that order."""

    def __init__(self, cfg: TrainConfig, on_evaluation: EvaluationObserver | None = None):
        if cfg.resume and not cfg.data.has_source():
            cfg = saved_run_config(cfg)
        if not cfg.data.has_source():
            raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
        self.cfg = cfg
        """The configuration as given; setup's resolved copy is PreparedRun.config."""
        self.engine = engine_for(cfg.training)
        """The training loop, chosen here once: it trains and finds the checkpoint to resume from."""
        self.on_evaluation = on_evaluation
        """Told each evaluation as the engine makes it (finetext tune's pruning); None for a plain run."""
        check_trackers_installed(cfg.report_to)
        if cfg.hub_repo_id is not None:
            check_repo_id(cfg.hub_repo_id)
        # Joins the process group under accelerate launch / torchrun (gloo on CPUs, nccl on GPUs).
        self.state = PartialState(cpu=not torch.cuda.is_available())

    def setup(self) -> PreparedRun:
        check_hardware(self.cfg)
        # a bad model name fails before the data is read; init_from names the model it holds
        cfg = replace(self.cfg, model=resolve_model_config(self.cfg.model))
        out = self.prepare_output_dir(cfg)
        cfg = replace(cfg, run_name=self.run_name(cfg, out))
        seed = cfg.training.seed
        set_seed(seed)
        data = load_labelled_data(cfg.data, seed)
        if "train" not in data.splits:
            raise FinetextError("the data has no train split.", "Pass --train-file or a dataset with train.")
        cfg = replace(cfg, data=resolved_data_config(cfg.data, data), training=replace(
            cfg.training, learning_rate=cfg.training.learning_rate or cfg.model.default_learning_rate()))
        if self.state.num_processes > 1:
            log.info("data-parallel training on %d processes (%s)", self.state.num_processes, self.state.backend)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
        log.info("data %s: %s; labels: %s", data.source, sizes, ", ".join(data.label_names))
        set_seed(seed)  # the new head's (LoRA's, a scratch model's) initialisation depends only on the seed
        if not cfg.resume:  # said when the run started; a resumed run only continues it
            suggest_fewshot(data, cfg.model.strategy)
        tokenizer, model = load_model(cfg.model, cfg.data.max_length, data.label_names, data.multi_label)
        if not (cfg.model.init_from or cfg.model.is_scratch()):  # metrics and finetext.yaml say which was used
            cfg = replace(cfg, model=replace(cfg.model, pooling="mean" if is_mean_pooled(model.config) else "cls"))
        model = apply_strategy(model, cfg.model)
        encoded = {split: encode_split(cfg, data, split, tokenizer) for split in ("train", "validation")}
        if "document" in encoded["train"].column_names:
            log.info("long texts as windows of %d tokens: train %d windows (at most %s per document), "
                     "validation %d", cfg.data.max_length, len(encoded["train"]),
                     cfg.data.train_windows_per_document or "all", len(encoded["validation"]))
        cfg = apply_plan(cfg, plan_for(cfg, encoded["train"]), model)
        training = cfg.training  # the default epochs count training rows: windows when long texts are chunked
        epochs = training.epochs or STRATEGIES[cfg.model.strategy].default_epochs  # fewshot: once over its pairs
        training = replace(training, epochs=epochs or training.resolved_epochs(len(encoded["train"])))
        if torch.cuda.is_available():  # measured where it will train
            model = model.to(self.state.device)
        training = ENGINES[training.engine].resolved(training)
        if cfg.resume:  # the interrupted run's measured choices, not new measurements
            training = saved_hardware_settings(training, out / CHECKPOINTS / ckpt.RUN_CONFIG)
        workload = training_workload(training, encoded["train"], cfg.data.max_length, self.state.num_processes)
        cfg = replace(cfg, training=resolve_hardware_settings(training, model, workload, self.state))
        return PreparedRun(config=cfg, data=data, tokenizer=tokenizer, model=model,
                           objective=build_objective(cfg, data), encoded_train=encoded["train"],
                           encoded_validation=encoded["validation"],
                           parameters={"strategy": cfg.model.strategy, **parameter_counts(model)}, output_dir=out,
                           resume_from=self.check_resume(cfg, out) if cfg.resume else None,
                           on_evaluation=self.on_evaluation)

    def prepare_output_dir(self, cfg: TrainConfig) -> Path:
        """Create output_dir (main process), refusing to silently restart or clobber an earlier run."""
        out = Path(cfg.output_dir).expanduser()
        checkpoints = out / CHECKPOINTS
        if self.state.is_main_process:
            interrupted = (checkpoints / ckpt.RUN_CONFIG).is_file()  # removed when a run finishes
            if cfg.resume and not interrupted:
                raise FinetextError(
                    f"{out} holds a finished model: there is nothing to resume." if (out / MANIFEST).exists()
                    else f"no interrupted run to resume in {out}.", "Run without --resume to start training.")
            if not cfg.resume:
                if interrupted and not cfg.overwrite_output_dir:
                    raise FinetextError(f"{out} holds the checkpoints of an interrupted run.",
                                        "Pass --resume to continue it, or --overwrite-output-dir to start over.")
                shutil.rmtree(checkpoints, ignore_errors=True)
                prepare_output_dir(cfg)
        self.state.wait_for_everyone()
        return out

    def run_name(self, cfg: TrainConfig, out: Path) -> str:
        """The trackers' name of this run: given, or the interrupted run's (resume), or output folder + time. The
        main process decides, so that every process agrees."""
        name = cfg.run_name
        if name is None and cfg.resume and (saved := TrackedRun.read(out / CHECKPOINTS)) is not None:
            name = saved.run_name
        return broadcast_object_list([name or default_run_name(cfg.output_dir)])[0]

    def check_resume(self, cfg: TrainConfig, out: Path) -> Path:
        """The checkpoint to continue from, after checking it was made with the same (resolved) settings."""
        checkpoints = out / CHECKPOINTS
        found = self.engine.latest_checkpoint(checkpoints)
        if found is None:  # prepare_output_dir has checked that run.yaml, the mark of an interrupted run, exists
            raise FinetextError(f"the interrupted run in {out} stopped before its first checkpoint.",
                                "Start it over with --overwrite-output-dir instead of --resume.")
        saved = yaml.safe_load((checkpoints / ckpt.RUN_CONFIG).read_text(encoding="utf-8"))
        changed = _differences(saved, cfg.to_dict())
        if changed:
            raise FinetextError(f"the checkpoint was made with other settings ({'; '.join(changed)}).",
                                "Resume with the original settings, or start over with --overwrite-output-dir.")
        if self.state.is_main_process:
            ckpt.remove_partial(checkpoints)
        return found

    def save_run_config(self, run: PreparedRun) -> None:
        """What a resumed run must match, written before the first checkpoint."""
        if self.state.is_main_process and not run.config.resume:
            write_text(run.checkpoint_dir / ckpt.RUN_CONFIG, yaml.safe_dump(run.config.to_dict(),
                                                                                    sort_keys=False))
        self.state.wait_for_everyone()

    def train(self, run: PreparedRun) -> FitResult:
        self.save_run_config(run)
        started = time.perf_counter()
        own_loop = STRATEGIES[run.config.model.strategy].fit  # fewshot trains its own way
        with attention_kernel(run.config.training.attention_kernel):
            fit = import_object(own_loop)(run) if own_loop else self.engine.fit(run)
        fit.stats.update(throughput(run, fit.stats))
        fit.stats["wall_time_s"] = round(time.perf_counter() - started, 2)
        return fit

    def finish_model(self, run: PreparedRun, fit: FitResult) -> FinalModel:
        """The model to evaluate and save; a LoRA model's adapters are saved first, then merged."""
        model = fit.model
        if not is_lora(model):
            return FinalModel(model.eval(), None)
        adapter_dir = Path(tempfile.mkdtemp(dir=run.output_dir, prefix=".adapter-"))
        try:
            model.save_pretrained(adapter_dir)  # before merging, which consumes the adapters
            merged = model.merge_and_unload()
        except BaseException:
            shutil.rmtree(adapter_dir, ignore_errors=True)
            raise
        return FinalModel(merged.eval(), adapter_dir)

    def evaluate(self, run: PreparedRun, model: nn.Module) -> Evaluation:
        """Final validation report of the kept model, and the test split once, when it has labels."""
        cfg, data = run.config, run.data
        d = cfg.data
        clf = Classifier(model, run.tokenizer, data.label_names, d.max_length, multi_label=data.multi_label,
                         threshold=d.threshold, long_text=d.long_text, stride=d.stride,
                         window_aggregation=d.window_aggregation)
        splits = {"validation": "evaluate"}
        if data.is_labelled("test"):
            splits["test"] = "test"
        elif "test" in data.splits:
            log.info("the test split has no labels: not evaluated")
        reports: dict[str, SplitScores] = {}
        mistakes: dict[str, list[dict]] = {}
        outputs: dict[str, np.ndarray] = {}
        for split, desc in splits.items():
            frame = data.splits[split]
            reports[split], logits = evaluate_with_logits(clf, frame, cfg.training.eval_batch_size, not cfg.quiet,
                                                          desc)
            outputs[split] = logits
            mistakes[split] = confident_mistakes(frame, logits, data.label_names, data.multi_label,
                                                 cfg.data.threshold)
        return Evaluation(reports, mistakes, outputs)

    def save(self, run: PreparedRun, fit: FitResult, final: FinalModel, evaluation: Evaluation) -> TrainResult:
        cfg = run.config
        metrics = run_metrics(run, fit, evaluation.reports)
        contents = metrics.to_dict()
        card = model_card(cfg, metrics, example_text=next(iter(run.data.splits["validation"]["text"]), None))
        save_artifact(run.output_dir, final.model, run.tokenizer, cfg, contents, card,
                      adapter_dir=final.adapter_dir, weights=cfg.model.lora_merge or final.adapter_dir is None,
                      write_extras=partial(write_extras, mistakes=evaluation.mistakes, report=cfg.report,
                                           out=run.output_dir))
        return TrainResult(run.output_dir, contents)

    def cleanup(self, run: PreparedRun) -> None:
        """Checkpoints are only for resuming; a finished run keeps just the artifact."""
        shutil.rmtree(run.checkpoint_dir, ignore_errors=True)

    def run(self) -> TrainResult:
        threads = torch.get_num_threads()  # setup may choose fewer for this run; a notebook keeps its own after
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> TrainResult:
        prepared = self.setup()
        tracker = self.open_tracker(prepared)
        if tracker is not None:
            prepared = replace(prepared, on_loss_log=tracker.log_loss,
                               on_evaluation=both(tracker.log_evaluation, prepared.on_evaluation))
        failed = True
        try:
            result = self.train_and_save(prepared, tracker)
            failed = False
        finally:
            if tracker is not None:
                tracker.close(failed)
        if self.state.is_main_process and prepared.config.push_to_hub:
            publish(prepared.config)
        return result

    def open_tracker(self, run: PreparedRun) -> RunTracker | None:
        """report_to's trackers, on the main process; they log the steps unless the engine's integration does."""
        if not self.state.is_main_process:
            return None
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        cfg = run.config
        live = bool(STRATEGIES[cfg.model.strategy].fit) or not ENGINES[cfg.training.engine].logs_tracker_steps
        return RunTracker.open(cfg, run.checkpoint_dir, live_steps=live)

    def train_and_save(self, prepared: PreparedRun, tracker: RunTracker | None) -> TrainResult:
        fit = self.train(prepared)
        result = TrainResult(prepared.output_dir, {})
        if self.state.is_main_process:
            final = self.finish_model(prepared, fit)
            try:
                result = self.save(prepared, fit, final, self.evaluate(prepared, final.model))
            finally:  # the checkpoints stay until the artifact is saved; the adapter copy never outlives it
                if final.adapter_dir is not None:
                    shutil.rmtree(final.adapter_dir, ignore_errors=True)
            if tracker is not None:
                tracker.log_missed(fit)
                tracker.log_results(result.metrics, prepared.output_dir)
            self.cleanup(prepared)
        self.state.wait_for_everyone()
        return result


def both(first: EvaluationObserver, second: EvaluationObserver | None) -> EvaluationObserver:
    """Tell first, then second (finetext tune's pruning may raise: the tracker has logged the evaluation)."""
    if second is None:
        return first

    def tell(entry) -> None:
        first(entry)
        second(entry)
    return tell


def publish(cfg: TrainConfig) -> None:
    """push_to_hub: upload the saved artifact. The model is saved whatever happens here; a failed upload says so
    and how to retry."""
    from finetext.push import push_artifact

    try:
        url = push_artifact(Path(cfg.output_dir).expanduser(), cfg.hub_repo_id, cfg.hub_private, cfg.hub_revision)
    except FinetextError as exc:
        raise FinetextError(f"the model is saved in {cfg.output_dir}, but the upload failed: {exc.problem}",
                            f"{exc.fix + ' ' if exc.fix else ''}Then run `finetext push {cfg.output_dir} "
                            f"--repo-id {cfg.hub_repo_id}`.") from None
    log.info("pushed %s to the Hub: %s", cfg.output_dir, url)


FEW_EXAMPLES_PER_CLASS = 64


def suggest_fewshot(data: LabelledData, strategy: str) -> None:
    """Say so when every class has at most 64 training examples: the few-shot strategy usually does far better
    there (docs/results.md). The choice stays the user's."""
    if strategy == "fewshot":
        return
    labels = label_array(data.splits["train"]["label"])
    counts = labels.sum(axis=0) if data.multi_label else np.bincount(labels, minlength=len(data.label_names))
    if counts.max() <= FEW_EXAMPLES_PER_CLASS:
        log.warning("the training split has at most %d examples per %s (%d): --strategy fewshot usually does much "
                    "better with so few (see docs/results.md)", FEW_EXAMPLES_PER_CLASS,
                    "label" if data.multi_label else "class", int(counts.max()))


def encode_split(cfg: TrainConfig, data: LabelledData, split: str, tokenizer) -> datasets.Dataset:
    """A split as model inputs: truncated, or (long_text chunk) as windows, training's capped per document."""
    d = cfg.data
    chunk = d.long_text == "chunk"
    return tokenize_split(data.splits[split], tokenizer, d.max_length, d.padding, cache=d.cache_tokenized,
                          stride=d.stride if chunk else None,
                          windows_per_document=d.train_windows_per_document if chunk and split == "train" else None)


def build_objective(cfg: TrainConfig, data: LabelledData) -> Objective:
    train_labels = label_array(data.splits["train"]["label"])
    weights = resolve_class_weights(cfg.training.class_weights, train_labels, data.label_names, data.multi_label)
    aggregation = cfg.data.window_aggregation if cfg.data.long_text == "chunk" else None
    return Objective(data.label_names, data.multi_label, cfg.data.threshold, weights, aggregation)


def throughput(run: PreparedRun, stats: dict) -> dict:
    """Examples and real (non-padding) tokens per second of training, the same way for every engine."""
    train = run.encoded_train
    tokens = sum(sum(mask) for mask in train["attention_mask"])
    seconds = max(stats["train_runtime_s"], 1e-9)
    return {"engine": stats.get("engine", run.config.training.engine),  # fewshot names its own loop
            "train_samples_per_second": round(len(train) * stats["epochs_completed"] / seconds, 2),
            "train_tokens_per_second": round(tokens * stats["epochs_completed"] / seconds, 1)}


def run_metrics(run: PreparedRun, fit: FitResult, reports: dict[str, SplitScores]) -> RunMetrics:
    """The contents of metrics.json, from what the run prepared, trained and finally scored."""
    data, weights = run.data, run.objective.class_weights
    return RunMetrics(
        finetext_version=__version__,
        label_names=data.label_names,
        multi_label=data.multi_label,
        data=DataSummary(data.source, {k: len(v) for k, v in data.splits.items()}, windows(run)),
        parameters=ParameterCounts(**run.parameters),
        train=TrainStats(**fit.stats),
        history=fit.history,
        loss_log=fit.loss_log,
        best=fit.best,
        final_validation=reports["validation"],
        test=reports.get("test"),
        class_weights=dict(zip(data.label_names, weights, strict=True)) if weights else None,
    )


def windows(run: PreparedRun) -> dict[str, int] | None:
    """Rows the model trained and was validated on, when long texts are chunked (the splits count documents)."""
    if "document" not in run.encoded_train.column_names:
        return None
    return {"train": len(run.encoded_train), "validation": len(run.encoded_validation)}


def write_extras(staging: Path, mistakes: dict[str, list[dict]], report: bool, out: Path) -> None:
    """mistakes.json and (unless --no-report) the report, into the artifact's staging folder. The report is a
    view of the other files: when it fails, the model is saved without it."""
    write_json(staging / MISTAKES, mistakes)
    if not report:
        return
    try:
        write_report(staging)
    except Exception as exc:  # whatever breaks the report, the trained model is kept
        discard_report(staging)  # (an earlier run's report never survives the save: see save_artifact)
        log.warning("report not written (%s: %s); the model is saved. Retry with `finetext report %s`.",
                    type(exc).__name__, exc, out)


def discard_report(folder: Path) -> None:
    (folder / REPORT).unlink(missing_ok=True)
    shutil.rmtree(folder / REPORT_FILES, ignore_errors=True)


def saved_run_config(cfg: TrainConfig) -> TrainConfig:
    """`--resume --output-dir DIR` alone: the settings come from DIR's checkpoints."""
    path = Path(cfg.output_dir).expanduser() / CHECKPOINTS / ckpt.RUN_CONFIG
    if not path.is_file():
        raise FinetextError(f"no interrupted run to resume in {cfg.output_dir} ({path} missing).",
                            "Pass the --output-dir of the interrupted run, or run without --resume.")
    values = flatten(yaml.safe_load(path.read_text(encoding="utf-8")))
    return config_from_flat({**values, "resume": True, "overwrite_output_dir": False, "quiet": cfg.quiet,
                             "output_dir": cfg.output_dir})


IGNORED_ON_RESUME = {"resume", "quiet", "overwrite_output_dir", "output_dir", "dataloader_num_workers", "report",
                     "report_to", "tracking_dir", "run_name", "experiment", "push_to_hub", "hub_repo_id", "hub_private",
                     "hub_revision"}
"""What a resumed run may change: where and how it reports, not what it trains."""


def _differences(saved: dict, current: dict) -> list[str]:
    before = flatten(saved)
    return [f"{key}: {before.get(key)} -> {value}" for key, value in flatten(current).items()
            if key not in IGNORED_ON_RESUME and before.get(key) != value]
