"""The native engine: one readable training loop on Accelerate.

It is the loop the PyTorch tutorials teach (DataLoader, AdamW, warm-up + linear schedule, tqdm,
train()/eval()), with what a real run needs: Accelerate for devices, mixed precision, gradient
accumulation and data parallelism; evaluation each epoch or every N steps; best-model selection and early
stopping; and checkpoints from which a killed run resumes exactly (see checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DistributedType
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_scheduler

from finetext.config import TrainingConfig
from finetext.errors import FinetextError
from finetext.evaluation.run_metrics import SplitScores
from finetext.storage import publish_folder
from finetext.training import checkpoint as ckpt
from finetext.training.batching import LengthGroupedBatches, sorted_batches
from finetext.training.fit import (
    FitResult,
    PreparedRun,
    best_entry,
    is_better,
    kept_entry,
    log_evaluation,
)
from finetext.training.progress import TrainingRecord
from finetext.training.stopwatch import Stopwatch

log = logging.getLogger("finetext")

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclass
class Progress(TrainingRecord):
    """Where training stands: the shared record plus the native loop's data position. Saved in every checkpoint;
    identical on every process (losses are averaged across processes before they are added), so the main
    process's copy is the run's."""

    epoch: int = 0
    """Index of the epoch in progress."""
    batches_done: int = 0
    """Batches of that epoch already trained on, per process (the data position to skip to on resume)."""
    num_processes: int = 1


def accelerator_for(cfg: TrainingConfig) -> Accelerator:
    # rng_types=[]: batch order comes from our seeded sampler, so no generator needs syncing; each process
    # keeps its own torch RNG (dropout), which checkpoints save per process.
    return Accelerator(mixed_precision=MIXED_PRECISION[cfg.precision],
                       gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                       cpu=not torch.cuda.is_available(), rng_types=[],
                       dynamo_backend="inductor" if cfg.torch_compile else "no")  # None: not measured to pay


def adamw(model: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights (the 1-d parameters), as the Trainer."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = cfg.fused_optimizer is not False  # resolved by the run's measurement; fused is the Trainer's default
    try:
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused, foreach=not fused)
    except RuntimeError:
        return torch.optim.AdamW(groups, lr=cfg.learning_rate)


class NativeEngine:
    """The Engine of the registry's 'native' entry."""

    def latest_checkpoint(self, folder: Path) -> Path | None:
        return ckpt.latest_checkpoint(folder)

    def fit(self, run: PreparedRun) -> FitResult:
        return NativeLoop(run).fit()


class NativeLoop:
    """setup() builds loaders, optimizer and schedule; fit() restores a checkpoint if resuming, then trains."""

    def __init__(self, run: PreparedRun):
        cfg = run.config.training
        self.cfg, self.checkpoint_dir, self.objective = cfg, run.checkpoint_dir, run.objective
        self.accelerator = accelerator_for(cfg)
        if self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            raise FinetextError(f"the native engine does not support {self.accelerator.distributed_type.value}: "
                                "its checkpoints need the whole model in each process.",
                                "Launch without FSDP/DeepSpeed (data parallel), or use --engine trainer.")
        self.quiet = run.config.quiet or not self.accelerator.is_main_process
        self.resume_from, self.on_evaluation, self.on_loss_log = run.resume_from, run.on_evaluation, run.on_loss_log
        self.setup(run.model, run.tokenizer, run.encoded_train, run.encoded_validation)

    def setup(self, model, tokenizer, train, validation) -> None:
        cfg, acc = self.cfg, self.accelerator
        collate = DataCollatorWithPadding(tokenizer)
        # long_text chunk: rows are windows; each validation row's document is looked up by its row number when
        # scoring, so the model never sees the column.
        self.documents = np.asarray(validation["document"]) if "document" in validation.column_names else None
        train, validation = (split.remove_columns([c for c in ("document",) if c in split.column_names])
                             for split in (train, validation))
        self.sampler = LengthGroupedBatches([len(ids) for ids in train["input_ids"]], cfg.batch_size, cfg.seed,
                                            cfg.group_by_length)
        # Each new DataLoader iterator draws a seed from its generator: a private one keeps those draws out
        # of the global RNG that dropout uses, or a resumed run's dropout masks would shift by one draw.
        train_loader = DataLoader(train, batch_sampler=self.sampler, collate_fn=collate,
                                  num_workers=cfg.dataloader_num_workers, generator=torch.Generator())
        # Row numbers travel with the evaluation batches, so gathering can keep every row exactly once.
        validation = validation.add_column("row", list(range(len(validation))))
        eval_loader = DataLoader(validation, collate_fn=collate, num_workers=cfg.dataloader_num_workers,
                                 generator=torch.Generator(),
                                 batch_sampler=sorted_batches([len(i) for i in validation["input_ids"]],
                                                              cfg.eval_batch_size))
        optimizer = adamw(model, cfg)
        self.model, self.optimizer, self.train_loader, self.eval_loader = acc.prepare(
            model, optimizer, train_loader, eval_loader)
        self.updates_per_epoch = math.ceil(len(self.train_loader) / cfg.gradient_accumulation_steps)
        self.max_steps = math.ceil(cfg.epochs * self.updates_per_epoch)
        warmup = math.ceil(cfg.warmup * self.max_steps) if cfg.warmup_is_ratio() else int(cfg.warmup)
        # Stepped by hand once per optimizer step (Accelerate's wrapper would step it once per process).
        self.scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup,
                                       num_training_steps=self.max_steps)
        self.progress = Progress(num_processes=acc.num_processes)
        # This process's batch losses since the last sync, kept on the device: no per-batch .item() or
        # all-reduce; sync_losses() folds them into the progress when an evaluation or checkpoint needs it.
        self.pending_loss = torch.zeros((), dtype=torch.float64, device=acc.device)
        self.pending_batches = 0

    # ------------------------------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        if self.resume_from is not None:
            self.restore(self.resume_from)
        p, cfg = self.progress, self.cfg
        bar = tqdm(total=self.max_steps, initial=p.global_step, desc="train", disable=self.quiet, dynamic_ncols=True)
        watch = Stopwatch(elapsed=p.train_seconds, paused=p.pause_seconds)  # earlier sessions' time, if resumed
        self.model.train()
        stop = p.global_step >= self.max_steps
        while not stop and p.epoch < math.ceil(cfg.epochs):
            stop = self.train_epoch(bar, watch)
            if p.batches_done >= len(self.train_loader):
                p.epoch, p.batches_done = p.epoch + 1, 0
            if cfg.eval_strategy == "epoch" and p.last_eval_step() != p.global_step:
                stop = self.evaluate_and_checkpoint(watch) or stop
        if p.last_eval_step() != p.global_step:  # the last model is always scored
            self.evaluate_and_checkpoint(watch)
        bar.close()
        return self.result(watch.elapsed())

    def train_epoch(self, bar: tqdm, watch: Stopwatch) -> bool:
        """Train until the epoch ends (False) or the run must stop: step budget or early stopping (True)."""
        p, cfg, acc = self.progress, self.cfg, self.accelerator
        self.sampler.select_epoch(p.epoch)
        loader = acc.skip_first_batches(self.train_loader, p.batches_done) if p.batches_done else self.train_loader
        for batch in loader:
            with acc.accumulate(self.model):
                labels = batch.pop("labels")
                loss = self.objective.loss(self.model(**batch).logits, labels)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
            p.batches_done += 1
            self.pending_loss += loss.detach()
            self.pending_batches += 1
            if not acc.sync_gradients:
                continue
            self.scheduler.step()
            p.global_step += 1
            bar.update(1)
            if p.global_step % cfg.logging_steps == 0:
                bar.set_postfix(**self.log_loss())
            if p.global_step >= self.max_steps:
                return True
            if cfg.eval_strategy == "steps" and p.global_step % cfg.eval_steps == 0:
                if self.evaluate_and_checkpoint(watch):
                    return True
            elif cfg.save_steps and p.global_step % cfg.save_steps == 0:
                self.save_checkpoint(watch)
        return False

    def log_loss(self) -> dict[str, str]:
        """Record the mean training loss since the last log line (the report's loss curve); every process
        calls it at the same step, as sync_losses' all-reduce needs."""
        self.sync_losses()
        entry = self.progress.log_window(self.updates_per_epoch, self.scheduler.get_last_lr()[0])
        if self.on_loss_log is not None and self.accelerator.is_main_process:
            self.on_loss_log(entry)
        return {"loss": f"{entry.loss:.4f}", "lr": f"{entry.learning_rate:.2e}"}

    def sync_losses(self) -> None:
        """Add the pending batch losses, averaged over processes (one all-reduce), to the progress.

        Every process calls it at the same points (the batch counts are equal), as a collective must."""
        if not self.pending_batches:
            return
        self.progress.add_losses(self.accelerator.reduce(self.pending_loss, "mean").item(), self.pending_batches)
        self.pending_loss.zero_()
        self.pending_batches = 0

    # ------------------------------------------------------------------------------------------------------

    def evaluate(self) -> SplitScores:
        """Validation loss and metrics over every example exactly once, gathered from all processes (documents,
        not windows, when long texts are chunked)."""
        acc = self.accelerator
        self.model.eval()
        parts: list[tuple[torch.Tensor, ...]] = []
        with torch.inference_mode():
            for batch in self.eval_loader:
                labels, rows = batch.pop("labels"), batch.pop("row")
                logits = self.model(**batch).logits.float()
                # Processes may hold batches of different sizes, and Accelerate repeats rows so that each
                # has as many batches: pad to one size, gather, then keep each row number once.
                padded = [acc.pad_across_processes(t, dim=0, pad_index=-1) for t in (logits, labels, rows)]
                parts.append(tuple(t.cpu() for t in acc.gather(padded)))
        self.model.train()
        logits, labels, rows = (torch.cat(column) for column in zip(*parts, strict=True))
        _, first = np.unique(rows.numpy(), return_index=True)
        keep = torch.as_tensor(first[rows.numpy()[first] >= 0])
        logits, labels = logits[keep], labels[keep]
        documents = self.documents[rows[keep].numpy()] if self.documents is not None else None
        metrics = self.objective.validation_scores(logits.numpy(), labels.numpy(), documents)
        count = metrics.pop("num_examples")
        return SplitScores(**{k: round(v, 5) for k, v in metrics.items()}, num_examples=count)

    def evaluate_and_checkpoint(self, watch: Stopwatch) -> bool:
        """Score the model, record it, checkpoint; True when early stopping says stop."""
        p, cfg, metric = self.progress, self.cfg, self.cfg.metric_for_best_model
        self.sync_losses()
        train_seconds = watch.training_seconds()
        with watch.paused():
            validation = self.evaluate()
        previous_best = best_entry(p.history, metric)
        entry = p.record_evaluation(self.updates_per_epoch, train_seconds, validation)
        log_evaluation(entry.epoch, p.global_step, validation)
        if self.on_evaluation is not None and self.accelerator.is_main_process:
            self.on_evaluation(entry)
        improved = previous_best is None or is_better(validation.score(metric),
                                                      previous_best.validation.score(metric), metric)
        self.save_checkpoint(watch, best=improved and cfg.load_best_model_at_end)
        best_step = best_entry(p.history, metric).step
        since_best = sum(h.step > best_step for h in p.history)
        if cfg.early_stopping_patience and since_best >= cfg.early_stopping_patience:
            log.info("early stopping: no better %s in %d evaluations", metric, since_best)
            return True
        return False

    # ------------------------------------------------------------------------------------------------------

    def save_checkpoint(self, watch: Stopwatch, best: bool = False) -> None:
        """Write step-N (all processes' RNG, the main process the rest); with best, also publish its weights
        as checkpoints/best, before step-N: if a kill falls in between, the resumed run replays to step N,
        finds the same improvement and publishes both again."""
        with watch.paused():
            self.write_checkpoint(watch, best)

    def write_checkpoint(self, watch: Stopwatch, best: bool) -> None:
        acc, p = self.accelerator, self.progress
        self.sync_losses()
        tmp = self.checkpoint_dir / f".tmp-step-{p.global_step}"
        saved = dataclasses.replace(p, train_seconds=watch.elapsed(), pause_seconds=watch.paused_seconds())
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        ckpt.save_rng(tmp, acc.process_index)  # every process: its own dropout RNG
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.save_training_state(tmp, acc.unwrap_model(self.model), self.optimizer, self.scheduler,
                                     dataclasses.asdict(saved))
            if best:
                ckpt.publish_best(tmp, self.checkpoint_dir)
            publish_folder(tmp, self.checkpoint_dir / f"step-{p.global_step}")
            ckpt.prune(self.checkpoint_dir, self.cfg.save_total_limit)
        acc.wait_for_everyone()

    def restore(self, folder: Path) -> None:
        acc = self.accelerator
        saved = ckpt.load_training_state(folder, acc.unwrap_model(self.model), self.optimizer, self.scheduler)
        if saved["num_processes"] != acc.num_processes:
            raise FinetextError(
                f"the checkpoint was written by {saved['num_processes']} process(es), this run has "
                f"{acc.num_processes}.", f"Resume with the same number of processes ({saved['num_processes']}).")
        self.progress = Progress.from_saved(saved)
        ckpt.load_rng(folder, acc.process_index)  # last: nothing may draw random numbers after this
        log.info("resumed from %s (epoch %d, step %d)", folder, self.progress.epoch, self.progress.global_step)

    def result(self, train_seconds: float) -> FitResult:
        self.sync_losses()
        p, acc, cfg = self.progress, self.accelerator, self.cfg
        model = acc.unwrap_model(self.model)
        if cfg.load_best_model_at_end and (self.checkpoint_dir / ckpt.BEST).is_dir():
            ckpt.load_weights(model, self.checkpoint_dir / ckpt.BEST / ckpt.WEIGHTS)
        stats = {
            "train_runtime_s": round(train_seconds, 2),
            "train_loss": p.mean_loss(),
            "global_steps": p.global_step,
            "epochs_completed": round(p.global_step / self.updates_per_epoch, 3),
            "num_processes": acc.num_processes,
        }
        best = kept_entry(p.history, cfg.metric_for_best_model, cfg.load_best_model_at_end)
        return FitResult(model, p.history, best, stats, p.loss_log)

