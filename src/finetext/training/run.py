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
from pathlib import Path

import torch
import yaml
from accelerate import PartialState
from transformers import set_seed

from finetext import __version__
from finetext.artifacts import (
    CHECKPOINTS,
    MANIFEST,
    MISTAKES,
    REPORT,
    REPORT_FILES,
    prepare_output_dir,
    save_artifact,
    write_json_atomic,
    write_text_atomic,
)
from finetext.config import TrainConfig, config_from_flat, flatten
from finetext.data.sources import LabelledData, label_array, load_labelled_data, resolved_data_config
from finetext.data.tokenize import tokenize_split
from finetext.errors import FinetextError
from finetext.evaluation.evaluate import evaluate_with_logits
from finetext.evaluation.mistakes import confident_mistakes
from finetext.evaluation.model_card import model_card
from finetext.evaluation.report import write_report
from finetext.evaluation.run_metrics import DataSummary, ParameterCounts, RunMetrics, SplitScores, TrainStats
from finetext.hardware import model_width, resolve_precision
from finetext.inference.predict import Classifier
from finetext.models.factory import load_model, resolve_model_config
from finetext.models.strategies import apply_strategy, is_lora, parameter_counts
from finetext.training import checkpoint as ckpt
from finetext.training.fit import FitResult
from finetext.training.native_engine import fit_native
from finetext.training.objective import Objective, resolve_class_weights
from finetext.training.trainer_engine import fit_with_trainer, latest_trainer_checkpoint

log = logging.getLogger("finetext")


@dataclass
class TrainResult:
    """Where the model went and what it scored (the contents of metrics.json)."""

    output_dir: Path
    metrics: dict
    """metrics.json's contents (RunMetrics.to_dict()); empty on the processes other than the main one of a
    multi-process run."""


def check_hardware(cfg: TrainConfig) -> None:
    """Refuse, before any work, what this machine cannot do."""
    precision = cfg.training.precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise FinetextError("--precision fp16 needs a CUDA GPU and none is available.",
                            "Use --precision bf16 (CPUs with bfloat16 support) or fp32.")
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise FinetextError("--precision bf16 is not supported by this GPU.", "Use --precision fp16 or fp32.")


class TrainingRun:
    def __init__(self, cfg: TrainConfig):
        if cfg.resume and not cfg.data.has_source():
            cfg = saved_run_config(cfg)
        if not cfg.data.has_source():
            raise FinetextError("no data given.", "Pass --dataset NAME_OR_PATH or --train-file FILE.")
        self.cfg = cfg
        self.adapter_dir: Path | None = None
        """LoRA: where the trained adapter waits (inside output_dir) until the artifact is written."""
        # Joins the process group under accelerate launch / torchrun (gloo on CPUs, nccl on GPUs).
        self.state = PartialState(cpu=not torch.cuda.is_available())

    def setup(self) -> None:
        check_hardware(self.cfg)
        # a bad model name fails before the data is read; init_from names the model it holds
        self.cfg = replace(self.cfg, model=resolve_model_config(self.cfg.model))
        self.out = self.prepare_output_dir()
        seed = self.cfg.training.seed
        set_seed(seed)
        self.data: LabelledData = load_labelled_data(self.cfg.data, seed)
        if "train" not in self.data.splits:
            raise FinetextError("the data has no train split.", "Pass --train-file or a dataset with train.")
        training = self.cfg.training
        self.cfg = replace(self.cfg, data=resolved_data_config(self.cfg.data, self.data), training=replace(
            training, epochs=training.resolved_epochs(len(self.data.splits["train"])),
            learning_rate=training.learning_rate or self.cfg.model.default_learning_rate()))
        if self.state.num_processes > 1:
            log.info("data-parallel training on %d processes (%s)", self.state.num_processes, self.state.backend)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.data.splits.items())
        log.info("data %s: %s; labels: %s", self.data.source, sizes, ", ".join(self.data.label_names))
        set_seed(seed)  # the new head's (LoRA's, a scratch model's) initialisation depends only on the seed
        self.tokenizer, model = load_model(self.cfg.model, self.cfg.data.max_length, self.data.label_names,
                                           self.data.multi_label)
        self.model = apply_strategy(model, self.cfg.model)
        self.parameters = {"strategy": self.cfg.model.strategy, **parameter_counts(self.model)}
        self.objective = self.build_objective()
        data = self.cfg.data
        self.encoded = {split: tokenize_split(self.data.splits[split], self.tokenizer, data.max_length, data.padding,
                                              cache=data.cache_tokenized)
                        for split in ("train", "validation")}
        self.cfg = replace(self.cfg, training=replace(self.cfg.training, precision=self.resolved_precision()))
        self.resume_from = self.check_resume() if self.cfg.resume else None

    def resolved_precision(self) -> str:
        """precision, with 'auto' decided by the hardware and the mean tokens of a training batch."""
        lengths = [len(ids) for ids in self.encoded["train"]["input_ids"]]
        tokens_per_batch = sum(lengths) / max(1, len(lengths)) * self.cfg.training.batch_size
        return resolve_precision(self.cfg.training.precision, tokens_per_batch,
                                 model_width(getattr(self.model, "config", None)))

    def build_objective(self) -> Objective:
        train_labels = label_array(self.data.splits["train"]["label"])
        weights = resolve_class_weights(self.cfg.training.class_weights, train_labels, self.data.label_names,
                                        self.data.multi_label)
        return Objective(self.data.label_names, self.data.multi_label, self.cfg.data.threshold, weights)

    def prepare_output_dir(self) -> Path:
        """Create output_dir (main process), refusing to silently restart or clobber an earlier run."""
        out = Path(self.cfg.output_dir).expanduser()
        checkpoints = out / CHECKPOINTS
        if self.state.is_main_process:
            interrupted = (checkpoints / ckpt.RUN_CONFIG).is_file()  # removed when a run finishes
            if self.cfg.resume and not interrupted:
                raise FinetextError(
                    f"{out} holds a finished model: there is nothing to resume." if (out / MANIFEST).exists()
                    else f"no interrupted run to resume in {out}.", "Run without --resume to start training.")
            if not self.cfg.resume:
                if interrupted and not self.cfg.overwrite_output_dir:
                    raise FinetextError(f"{out} holds the checkpoints of an interrupted run.",
                                        "Pass --resume to continue it, or --overwrite-output-dir to start over.")
                shutil.rmtree(checkpoints, ignore_errors=True)
                prepare_output_dir(self.cfg)
        self.state.wait_for_everyone()
        return out

    def check_resume(self) -> Path:
        """The checkpoint to continue from, after checking it was made with the same settings."""
        checkpoints = self.out / CHECKPOINTS
        found = (ckpt.latest_checkpoint(checkpoints) if self.cfg.training.engine == "native"
                 else latest_trainer_checkpoint(checkpoints))
        if found is None:  # prepare_output_dir has checked that run.yaml, the mark of an interrupted run, exists
            raise FinetextError(f"the interrupted run in {self.out} stopped before its first checkpoint.",
                                "Start it over with --overwrite-output-dir instead of --resume.")
        saved = yaml.safe_load((checkpoints / ckpt.RUN_CONFIG).read_text(encoding="utf-8"))
        changed = _differences(saved, self.cfg.to_dict())
        if changed:
            raise FinetextError(f"the checkpoint was made with other settings ({'; '.join(changed)}).",
                                "Resume with the original settings, or start over with --overwrite-output-dir.")
        if self.state.is_main_process:
            ckpt.remove_partial(checkpoints)
        return found

    def save_run_config(self) -> None:
        """What a resumed run must match, written before the first checkpoint."""
        if self.state.is_main_process and not self.cfg.resume:
            path = self.out / CHECKPOINTS / ckpt.RUN_CONFIG
            write_text_atomic(path, yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self.state.wait_for_everyone()

    def train(self) -> FitResult:
        self.save_run_config()
        started = time.perf_counter()
        engine = fit_native if self.cfg.training.engine == "native" else fit_with_trainer
        self.fit = engine(
            self.model, self.tokenizer, self.encoded["train"], self.encoded["validation"], self.cfg.training,
            self.out / CHECKPOINTS, self.objective, self.cfg.quiet, self.resume_from,
        )
        self.fit.stats.update(self.throughput(self.fit.stats))
        self.fit.stats["wall_time_s"] = round(time.perf_counter() - started, 2)
        return self.fit

    def throughput(self, stats: dict) -> dict:
        """Examples and real (non-padding) tokens per second of training, the same way for both engines."""
        train = self.encoded["train"]
        tokens = sum(sum(mask) for mask in train["attention_mask"])
        seconds = max(stats["train_runtime_s"], 1e-9)
        return {"engine": self.cfg.training.engine,
                "train_samples_per_second": round(len(train) * stats["epochs_completed"] / seconds, 2),
                "train_tokens_per_second": round(tokens * stats["epochs_completed"] / seconds, 1)}

    def finish_model(self) -> None:
        """The model to evaluate and save. A LoRA model is saved as adapters (in a hidden folder until the
        artifact is written) and then merged, so the final scores are those of the weights saved."""
        model = self.fit.model
        if is_lora(model):
            self.adapter_dir = Path(tempfile.mkdtemp(dir=self.out, prefix=".adapter-"))
            model.save_pretrained(self.adapter_dir)  # before merging, which consumes the adapters
            model = model.merge_and_unload()
        self.final_model = model.eval()

    def evaluate(self) -> dict[str, SplitScores]:
        """Final validation report of the kept model, and the test split once, when it has labels."""
        clf = Classifier(self.final_model, self.tokenizer, self.data.label_names, self.cfg.data.max_length,
                         multi_label=self.data.multi_label, threshold=self.cfg.data.threshold)
        splits = {"validation": "evaluate"}
        if self.data.is_labelled("test"):
            splits["test"] = "test"
        elif "test" in self.data.splits:
            log.info("the test split has no labels: not evaluated")
        results: dict[str, SplitScores] = {}
        self.mistakes: dict[str, list[dict]] = {}
        for split, desc in splits.items():
            frame = self.data.splits[split]
            results[split], logits = evaluate_with_logits(clf, frame, self.cfg.training.eval_batch_size,
                                                          not self.cfg.quiet, desc)
            self.mistakes[split] = confident_mistakes(frame, logits, self.data.label_names, self.data.multi_label,
                                                      self.cfg.data.threshold)
        self.final = results
        return results

    def metrics(self) -> RunMetrics:
        weights = self.objective.class_weights
        return RunMetrics(
            finetext_version=__version__,
            label_names=self.data.label_names,
            multi_label=self.data.multi_label,
            data=DataSummary(self.data.source, {k: len(v) for k, v in self.data.splits.items()}),
            parameters=ParameterCounts(**self.parameters),
            train=TrainStats(**self.fit.stats),
            history=self.fit.history,
            loss_log=self.fit.loss_log,
            best=self.fit.best,
            final_validation=self.final["validation"],
            test=self.final.get("test"),
            class_weights=dict(zip(self.data.label_names, weights, strict=True)) if weights else None,
        )

    def save(self) -> TrainResult:
        metrics = self.metrics()
        contents = metrics.to_dict()
        save_artifact(self.out, self.final_model, self.tokenizer, self.cfg, contents, model_card(self.cfg, metrics),
                      adapter_dir=self.adapter_dir, weights=self.cfg.model.lora_merge or self.adapter_dir is None,
                      write_extras=self.write_extras)
        return TrainResult(self.out, contents)

    def write_extras(self, staging: Path) -> None:
        """mistakes.json and (unless --no-report) the report, into the artifact's staging folder. The report
        is a view of the other files: when it fails, the model is saved without it."""
        write_json_atomic(staging / MISTAKES, self.mistakes)
        if not self.cfg.report:
            return
        try:
            write_report(staging)
        except Exception as exc:  # whatever breaks the report, the trained model is kept
            discard_report(staging)  # (an earlier run's report never survives the save: see save_artifact)
            log.warning("report not written (%s: %s); the model is saved. Retry with `finetext report %s`.",
                        type(exc).__name__, exc, self.out)

    def cleanup(self) -> None:
        """Checkpoints are only for resuming; a finished run keeps just the artifact."""
        shutil.rmtree(self.out / CHECKPOINTS, ignore_errors=True)

    def run(self) -> TrainResult:
        self.setup()
        self.train()
        result = TrainResult(self.out, {})
        if self.state.is_main_process:
            try:
                self.finish_model()
                self.evaluate()
                result = self.save()
            finally:  # the checkpoints stay until the artifact is saved; the adapter copy never outlives it
                if self.adapter_dir is not None:
                    shutil.rmtree(self.adapter_dir, ignore_errors=True)
            self.cleanup()
        self.state.wait_for_everyone()
        return result


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


IGNORED_ON_RESUME = {"resume", "quiet", "overwrite_output_dir", "output_dir", "dataloader_num_workers", "report"}


def _differences(saved: dict, current: dict) -> list[str]:
    before = flatten(saved)
    return [f"{key}: {before.get(key)} -> {value}" for key, value in flatten(current).items()
            if key not in IGNORED_ON_RESUME and before.get(key) != value]
