"""The Hugging Face Trainer engine: TrainingArguments from the config, metrics from scikit-learn."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import SequentialSampler
from tqdm.auto import tqdm
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import TensorBoardCallback

from finetext.config import TrainingConfig
from finetext.evaluation.run_metrics import HistoryEntry, LossLogEntry, SplitScores
from finetext.training.fit import EvaluationObserver, FitResult, PreparedRun, kept_entry, log_evaluation
from finetext.training.objective import Objective
from finetext.training.stopwatch import Stopwatch
from finetext.training.tracking import chosen_trackers, tensorboard_dir

log = logging.getLogger("finetext")

DOCUMENT_LOSS = "document_loss"
"""compute_metrics's name for the validation loss of chunked runs, which evaluation_loop makes the eval_loss."""


class TrainingClock(TrainerCallback):
    """Training time at each evaluation, on the Stopwatch every engine uses.

    The Trainer evaluates and saves between one step's end and the next step's begin, and tells only afterwards
    (on_evaluate, on_save): the pause is dated back to the step's end. A gap with neither is loading the next
    batch, which is training time."""

    def __init__(self):
        self.watch = Stopwatch()
        self.step_end = time.perf_counter()
        self.at_step: dict[int, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.watch = Stopwatch()
        self.step_end = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.watch.resume()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        self.watch.pause(since=self.step_end)
        self.at_step[state.global_step] = round(self.watch.training_seconds(), 2)

    def on_save(self, args, state, control, **kwargs):
        self.watch.pause(since=self.step_end)


class NamedProgress(ProgressCallback):
    """The Trainer's progress bars, named as the native engine's (train, evaluate), with the training loss in
    the bar instead of the raw log dicts the Trainer writes under it; evaluations get finetext's log line."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc="train", dynamic_ncols=True)
        self.current_step = 0

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if state.is_world_process_zero and self.prediction_bar is None and eval_dataloader is not None:
            self.prediction_bar = tqdm(total=len(eval_dataloader), desc="evaluate", leave=self.training_bar is None,
                                       dynamic_ncols=True)
        super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0.0):.2e}")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        super().on_evaluate(args, state, control, **kwargs)
        if state.is_world_process_zero and metrics:
            log_evaluation(state.epoch or 0.0, state.global_step, validation_scores(metrics))


class EvaluationObserverCallback(TrainerCallback):
    """Hands each evaluation to the run's observer (finetext tune's pruning), as the native engine does."""

    def __init__(self, observer: EvaluationObserver):
        self.observer = observer

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and state.is_world_process_zero:
            self.observer(HistoryEntry(epoch=round(state.epoch or 0.0, 3), step=state.global_step, train_loss=None,
                                       train_seconds=None, validation=validation_scores(metrics)))


class ObjectiveTrainer(Trainer):
    """The Trainer with finetext's loss (class weights, multi-label), as the native engine computes it."""

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by the accumulation steps

    def __init__(self, *args, objective: Objective, keep_eval_order: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective
        # Evaluate in the dataset's order (chunked long texts: compute_metrics finds each window's document by its
        # position). The Trainer otherwise groups evaluation batches by length too, in a shuffled order.
        self.keep_eval_order = keep_eval_order

    def _get_eval_sampler(self, eval_dataset):
        if not self.keep_eval_order:
            return super()._get_eval_sampler(eval_dataset)
        # One process: in order. Several: None lets Accelerate shard in order, and gathering restores it.
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def evaluation_loop(self, *args, **kwargs):
        """The Trainer's loop; with chunked long texts the validation loss is the documents' (compute_metrics's
        document_loss), not the mean over windows the loop computes itself."""
        output = super().evaluation_loop(*args, **kwargs)
        for key in [k for k in output.metrics if k.endswith("_" + DOCUMENT_LOSS)]:
            output.metrics[key.removesuffix(DOCUMENT_LOSS) + "loss"] = output.metrics.pop(key)
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)  # the Trainer reads the labels from inputs again after this call
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.objective.loss(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss


def training_arguments(cfg: TrainingConfig, checkpoint_dir: Path, quiet: bool, report_to: list[str] | None = None,
                       run_name: str | None = None) -> TrainingArguments:
    on_cpu = not torch.cuda.is_available()
    best_metric = "eval_loss" if cfg.metric_for_best_model == "loss" else f"eval_{cfg.metric_for_best_model}"
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup if cfg.warmup_is_ratio() else int(cfg.warmup),
        lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy=cfg.eval_strategy,
        save_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        load_best_model_at_end=cfg.load_best_model_at_end,
        metric_for_best_model=best_metric,
        greater_is_better=cfg.metric_for_best_model != "loss",
        seed=cfg.seed,
        fp16=cfg.precision == "fp16",
        bf16=cfg.precision == "bf16",
        torch_compile=bool(cfg.torch_compile),
        optim="adamw_torch" if cfg.fused_optimizer is False else "adamw_torch_fused",
        use_cpu=on_cpu,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        dataloader_num_workers=cfg.dataloader_num_workers,
        report_to=report_to or "none",  # the Trainer's own integrations log its steps (training.tracking)
        run_name=run_name,
        # True (the default) multiplies the loss by the number of processes for models that take
        # num_items_in_batch; classification heads ignore it and average, so the loss came out doubled
        # on 2 processes (measured: 1.386 instead of 0.693).
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,
        disable_tqdm=quiet,
        log_level="error" if quiet else "warning",
    )


class TrainerEngine:
    """The Engine of the registry's 'trainer' entry."""

    def latest_checkpoint(self, folder: Path) -> Path | None:
        """Like transformers' get_last_checkpoint, but only checkpoints the Trainer finished writing."""
        found = ([p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
                 if folder.is_dir() else [])
        return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)

    def fit(self, run: PreparedRun) -> FitResult:
        cfg = run.config.training
        clock = TrainingClock()
        trainer = self.trainer(run, clock)
        resume = str(run.resume_from) if run.resume_from else None
        output = trainer.train(resume_from_checkpoint=resume)
        history = history_from_log(trainer.state.log_history, clock.at_step)
        stats = {
            "train_runtime_s": round(output.metrics["train_runtime"], 2),
            "train_loss": round(output.training_loss, 5),
            "global_steps": output.global_step,
            "epochs_completed": round(trainer.state.epoch or 0.0, 3),
            "num_processes": trainer.args.world_size,
        }
        return FitResult(trainer.model, history, kept_entry(history, cfg.metric_for_best_model,
                                                             cfg.load_best_model_at_end), stats,
                         loss_log_from(trainer.state.log_history))

    def trainer(self, run: PreparedRun, clock: TrainingClock) -> ObjectiveTrainer:
        """The Trainer for the run, showing only named bars (none with --quiet) and finetext's log lines."""
        cfg, objective = run.config.training, run.objective

        validation = run.encoded_validation
        documents = np.asarray(validation["document"]) if "document" in validation.column_names else None

        def compute_metrics(eval_pred) -> dict[str, float]:
            logits, labels = eval_pred
            if documents is None:
                return {**objective.metrics(logits, labels), "num_examples": len(labels)}
            # long_text chunk: the rows are windows, in the dataset's order (keep_eval_order; the Trainer drops the
            # document column before the model); scored per document, loss included.
            scores = objective.validation_scores(logits, labels, documents)
            scores[DOCUMENT_LOSS] = scores.pop("loss")
            return scores

        callbacks: list[TrainerCallback] = [clock]
        if run.on_evaluation is not None:
            callbacks.append(EvaluationObserverCallback(run.on_evaluation))
        if cfg.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
        trainer = ObjectiveTrainer(
            objective=objective,
            keep_eval_order=documents is not None,
            model=run.model,
            args=training_arguments(cfg, run.checkpoint_dir, run.config.quiet, chosen_trackers(run.config.report_to),
                                    run.config.run_name),
            train_dataset=run.encoded_train,
            eval_dataset=run.encoded_validation,
            processing_class=run.tokenizer,
            # Pads each batch to its longest row; with padding: max_length the rows are already equal, so it only
            # stacks.
            data_collator=DataCollatorWithPadding(run.tokenizer),
            compute_metrics=compute_metrics,
            callbacks=callbacks,
        )
        # The Trainer's own bar, or (with --quiet) its printer, writes every log dict to the terminal.
        trainer.remove_callback(PrinterCallback if run.config.quiet else ProgressCallback)
        if not run.config.quiet:
            trainer.add_callback(NamedProgress)
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):  # the run's folder, where finetext logs its part too
                callback.logging_dir = str(tensorboard_dir(run.config))
        return trainer


def validation_scores(logged: dict) -> SplitScores:
    """The validation scores of one Trainer evaluation (its "eval_*" log keys, timing left out)."""
    scores = {k.removeprefix("eval_"): round(v, 5) for k, v in logged.items()
              if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))}
    return SplitScores(**{**scores, "num_examples": int(scores["num_examples"])})


def history_from_log(log_history: list[dict], train_seconds: dict[int, float] | None = None) -> list[HistoryEntry]:
    """One entry per evaluation: epoch, step, mean training loss since the previous one, training time so far
    (evaluations excluded; this session's only, for a resumed run), validation metrics."""
    history, losses = [], []
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            losses.append(entry["loss"])
        elif "eval_loss" in entry:
            history.append(HistoryEntry(
                epoch=round(entry.get("epoch", 0.0), 3),
                step=entry.get("step"),
                train_loss=round(float(np.mean(losses)), 5) if losses else None,
                train_seconds=(train_seconds or {}).get(entry.get("step")),
                validation=validation_scores(entry),
            ))
            losses = []
    return history


def loss_log_from(log_history: list[dict]) -> list[LossLogEntry]:
    """The Trainer's training-loss lines (every logging_steps), as the native engine records them."""
    return [LossLogEntry(step=entry["step"], epoch=round(entry.get("epoch", 0.0), 3), loss=round(entry["loss"], 5),
                         learning_rate=entry.get("learning_rate"))
            for entry in log_history if "loss" in entry and "eval_loss" not in entry]
