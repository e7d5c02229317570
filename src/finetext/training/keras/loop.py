"""The keras engine's run: build the backend's model, compile it with the run's loss and AdamW, fit it with
Keras callbacks, and hand back finetext's torch model with the history every engine reports.

One Keras epoch is one evaluation interval (a pass over the data, or eval_steps optimizer steps): Keras runs
the callbacks at each epoch's end, which is where finetext evaluates, records, checkpoints and early-stops.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
from torch import nn

from finetext.evaluation.run_metrics import SplitScores
from finetext.storage import publish_folder
from finetext.training import checkpoint as ckpt
from finetext.training.batching import LengthGroupedBatches
from finetext.training.fit import FitResult, PreparedRun, best_entry, is_better, kept_entry, log_evaluation
from finetext.training.keras import checkpoint as keras_ckpt
from finetext.training.keras.data import Padder, PredictionBatches, TrainingBatches
from finetext.training.keras.optimization import ObjectiveLoss, adamw
from finetext.training.progress import TrainingRecord
from finetext.training.stopwatch import Stopwatch

log = logging.getLogger("finetext")

class BackendModel(Protocol):
    """A backend's side of the engine (torch_model.TorchBackendModel, tensorflow_model.TensorflowBackendModel)."""

    keras_model: keras.Model
    """Takes a dict of int arrays (input_ids, attention_mask[, token_type_ids]), returns logits."""

    def trained_model(self, sample: dict[str, np.ndarray], multi_label: bool = False) -> nn.Module:
        """The run's torch model holding the trained (or restored best) weights; sample: validation inputs a
        conversion may be checked on."""
        ...


NEVER = 10**9
"""EarlyStopping's patience when the run only keeps the best model and never stops early."""


@dataclass(frozen=True)
class Plan:
    """How the run's optimizer steps fall into batches and Keras epochs."""

    accumulation: int
    updates_per_epoch: int
    total_steps: int
    interval_steps: int
    """Optimizer steps per Keras epoch (evaluation interval); the last one may be shorter."""

    @property
    def intervals(self) -> int:
        return math.ceil(self.total_steps / self.interval_steps)

    @property
    def total_batches(self) -> int:
        return self.total_steps * self.accumulation

    def step_after(self, interval: int) -> int:
        return min(self.total_steps, (interval + 1) * self.interval_steps)


def plan_for(run: PreparedRun, batches_per_epoch: int) -> Plan:
    cfg = run.config.training
    accumulation = cfg.gradient_accumulation_steps
    updates = math.ceil(batches_per_epoch / accumulation)
    total = math.ceil(cfg.epochs * updates)
    interval = updates if cfg.eval_strategy == "epoch" else cfg.eval_steps
    return Plan(accumulation, updates, total, min(interval, total))


class KerasLoop:
    """setup (in __init__) -> fit(): the life cycle of one keras-engine training run."""

    def __init__(self, run: PreparedRun, backend_model: BackendModel):
        self.run, self.cfg = run, run.config.training
        self.backend_model = backend_model
        train, validation = run.encoded_train, run.encoded_validation
        self.documents = np.asarray(validation["document"]) if "document" in validation.column_names else None
        self.sampler = LengthGroupedBatches([len(ids) for ids in train["input_ids"]], self.cfg.batch_size,
                                            self.cfg.seed, self.cfg.group_by_length)
        self.plan = plan_for(run, len(self.sampler))
        self.train_padder = Padder(train, run.tokenizer)
        self.validation = PredictionBatches(Padder(validation, run.tokenizer), self.cfg.eval_batch_size)
        self.progress = TrainingRecord()
        """The data position is derived from it: one Keras epoch (evaluation interval) per history entry."""
        self.model: keras.Model = backend_model.keras_model
        metrics = [] if run.data.multi_label else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        self.model.compile(optimizer=adamw(self.cfg, self.model, self.plan.total_steps),
                           loss=ObjectiveLoss(run.objective), metrics=metrics, jit_compile=False)

    def fit(self) -> FitResult:
        recorder = Recorder(self)
        if self.run.resume_from is not None:
            self.progress = TrainingRecord.from_saved(keras_ckpt.load_progress(self.run.resume_from))
        p, plan = self.progress, self.plan
        self.batches = TrainingBatches(self.train_padder, self.sampler, plan.total_batches,
                                       start=self.first_batch_of(len(p.history)))
        stopping = ResumableEarlyStopping(self)
        quiet = self.run.config.quiet
        with warnings.catch_warnings():
            # the last interval is shorter than steps_per_epoch: Keras warns that the data ran out, as planned
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            self.model.fit(self.batches, epochs=plan.intervals, initial_epoch=len(p.history),
                           steps_per_epoch=plan.interval_steps * plan.accumulation, shuffle=False,
                           callbacks=[recorder, stopping],
                           verbose=0 if quiet else (1 if sys.stdout.isatty() else 2))
        return self.result(recorder.watch.elapsed())

    def first_batch_of(self, interval: int) -> int:
        """The run's batch number at which Keras epoch (evaluation interval) `interval` starts."""
        return interval * self.plan.interval_steps * self.plan.accumulation

    # ------------------------------------------------------------------------------------------------------

    def evaluate(self) -> SplitScores:
        """The validation split's loss and metrics, from Keras's predictions, scored as every engine scores."""
        logits = self.model.predict(self.validation, verbose=0)[self.validation.order]
        metrics = self.run.objective.validation_scores(np.asarray(logits, dtype=np.float32),
                                                       self.validation.labels, self.documents)
        count = metrics.pop("num_examples")
        return SplitScores(**{k: round(v, 5) for k, v in metrics.items()}, num_examples=count)

    def result(self, train_seconds: float) -> FitResult:
        p, cfg = self.progress, self.cfg
        sample = self.validation.padder.batch(list(range(min(64, len(self.validation.order)))))[0]
        model = self.backend_model.trained_model(sample, self.run.data.multi_label)
        stats = {
            "train_runtime_s": round(train_seconds, 2),
            "train_loss": p.mean_loss(),
            "global_steps": p.global_step,
            "epochs_completed": round(p.global_step / self.plan.updates_per_epoch, 3),
            "num_processes": 1,
        }
        best = kept_entry(p.history, cfg.metric_for_best_model, cfg.load_best_model_at_end)
        return FitResult(model, p.history, best, stats, p.loss_log)


class Recorder(keras.callbacks.Callback):
    """finetext's bookkeeping as a Keras callback: per-batch losses, the loss log every logging_steps, an
    evaluation with history entry, log line and checkpoint at each Keras epoch's end, and (resumed) the
    checkpoint's variables and RNG put back before training goes on."""

    def __init__(self, loop: KerasLoop):
        super().__init__()
        self.loop = loop
        self.watch = Stopwatch()
        self.restore_rng_from: Path | None = None

    def on_train_begin(self, logs=None):
        p, resume = self.loop.progress, self.loop.run.resume_from
        if resume is not None:
            if not self.model.optimizer.built:  # TensorFlow builds it inside the first step, after this
                self.model.optimizer.build(self.model.trainable_variables)
            keras_ckpt.load_variables(resume / keras_ckpt.VARIABLES, self.model)
            self.restore_rng_from = resume  # at the first batch: the data iterator Keras makes draws from it
            log.info("resumed from %s (step %d)", resume, p.global_step)
        self.watch = Stopwatch(elapsed=p.train_seconds, paused=p.pause_seconds)

    def on_epoch_begin(self, epoch, logs=None):
        self.previous_mean, self.examples = 0.0, 0  # Keras's running loss restarts with each epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.restore_rng_from is not None:
            ckpt.load_rng(self.restore_rng_from, 0)
            self.restore_rng_from = None

    def on_train_batch_end(self, batch, logs=None):
        loop, p, plan = self.loop, self.loop.progress, self.loop.plan
        global_batch = loop.first_batch_of(len(p.history)) + batch
        size = len(loop.batches.indices(global_batch))
        # Keras logs the running mean over the epoch's examples; this batch's own loss is the difference
        mean = float(logs["loss"])
        p.add_losses((mean * (self.examples + size) - self.previous_mean * self.examples) / size, 1)
        self.previous_mean, self.examples = mean, self.examples + size
        if (global_batch + 1) % plan.accumulation:
            return
        p.global_step = (global_batch + 1) // plan.accumulation
        if p.global_step % loop.cfg.logging_steps == 0:
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            entry = p.log_window(plan.updates_per_epoch, float(f"{lr:.7g}"))  # float32: no digits beyond its own
            if loop.run.on_loss_log is not None:
                loop.run.on_loss_log(entry)

    def on_epoch_end(self, epoch, logs=None):
        loop, p, metric = self.loop, self.loop.progress, self.loop.cfg.metric_for_best_model
        p.global_step = loop.plan.step_after(epoch)
        train_seconds = self.watch.training_seconds()
        with self.watch.paused():
            validation = loop.evaluate()
            previous_best = best_entry(p.history, metric)
            entry = p.record_evaluation(loop.plan.updates_per_epoch, train_seconds, validation)
            log_evaluation(entry.epoch, p.global_step, validation)
            logs.update({f"val_{name}": value for name, value in validation.scalars().items()})
            if loop.run.on_evaluation is not None:
                loop.run.on_evaluation(entry)
            improved = previous_best is None or is_better(validation.score(metric),
                                                          previous_best.validation.score(metric), metric)
            self.save_checkpoint(best=improved and loop.cfg.load_best_model_at_end)

    def save_checkpoint(self, best: bool) -> None:
        """step-N (variables, progress, RNG); with best, its variables also become checkpoints/best first."""
        loop, p = self.loop, self.loop.progress
        root = loop.run.checkpoint_dir
        tmp = root / f".tmp-step-{p.global_step}"
        shutil.rmtree(tmp, ignore_errors=True)
        saved = dataclasses.replace(p, train_seconds=self.watch.elapsed(), pause_seconds=self.watch.paused_seconds())
        keras_ckpt.save_checkpoint(tmp, self.model, dataclasses.asdict(saved))
        if best:
            best_tmp = root / f".tmp-best-{p.global_step}"
            shutil.rmtree(best_tmp, ignore_errors=True)
            best_tmp.mkdir(parents=True)
            keras_ckpt.save_variables(best_tmp / keras_ckpt.VARIABLES, self.model.weights)
            publish_folder(best_tmp, root / ckpt.BEST)
        publish_folder(tmp, root / f"step-{p.global_step}")
        ckpt.prune(root, loop.cfg.save_total_limit)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping on the run's metric (patience in evaluations, best weights restored at the end),
    which a resumed run starts where the interrupted one was: its best score, its wait, its best weights."""

    def __init__(self, loop: KerasLoop):
        cfg = loop.cfg
        super().__init__(monitor=f"val_{cfg.metric_for_best_model}",
                         mode="min" if cfg.metric_for_best_model == "loss" else "max",
                         patience=cfg.early_stopping_patience or NEVER,
                         restore_best_weights=cfg.load_best_model_at_end, verbose=0)
        self.loop = loop

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        history, metric = self.loop.progress.history, self.loop.cfg.metric_for_best_model
        best = best_entry(history, metric)
        if best is None:
            return
        self.best = best.validation.score(metric)
        self.best_epoch = history.index(best)
        self.wait = sum(h.step > best.step for h in history)
        best_file = self.loop.run.checkpoint_dir / ckpt.BEST / keras_ckpt.VARIABLES
        if self.restore_best_weights and best_file.is_file():
            self.best_weights = keras_ckpt.best_weights(best_file, self.model)

    def on_epoch_end(self, epoch, logs=None):
        before = self.model.stop_training
        super().on_epoch_end(epoch, logs)
        if self.model.stop_training and not before:
            log.info("early stopping: no better %s in %d evaluations", self.loop.cfg.metric_for_best_model,
                     self.wait)
