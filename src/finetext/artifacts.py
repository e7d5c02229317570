"""The output directory: what a finished run leaves there, written so an interrupted run never looks finished.

A finished artifact is a Hugging Face model directory (model.safetensors, config.json with the real label
names, tokenizer files) plus finetext's own files: finetext.yaml (the resolved config), metrics.json and a
model card README.md, mistakes.json and report.html. The artifact is written whole into a staging
folder beside the output directory (finetext.storage) and the two folders are swapped in one atomic step
(Linux), so a process killed while saving leaves the previous model intact; elsewhere finetext.yaml is moved
into place last, so its presence marks a complete artifact.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finetext.config import TrainConfig, config_from_flat, save_yaml
from finetext.errors import FinetextError
from finetext.model_files import read_json, reason
from finetext.storage import (
    STAGING,
    exchange_folders,
    fsync_folder,
    keep_mode,
    remove_stale_staging,
    staged_folder,
    write_json,
    write_text,
)

MANIFEST = "finetext.yaml"
METRICS = "metrics.json"
CARD = "README.md"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"  # LoRA runs: the unmerged adapters (adapter_config.json, adapter_model.safetensors)
MISTAKES = "mistakes.json"  # the most confident wrong predictions on the evaluated splits
REPORT = "report.html"
REPORT_FILES = "report"  # the report's PNGs (report.html embeds them too, so it stands alone)


def prepare_output_dir(cfg: TrainConfig) -> Path:
    """Create output_dir, refusing to clobber a finished model unless asked to."""
    out = Path(cfg.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FinetextError(f"output_dir {out} is a file.", "Pass a directory with --output-dir.")
    if (out / MANIFEST).exists() and not cfg.overwrite_output_dir:
        raise FinetextError(f"{out} already holds a trained model.",
                            "Pass --overwrite-output-dir to replace it, or choose another --output-dir.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FinetextError(f"cannot create output_dir {out}: {exc.strerror}.",
                            "Choose a writable --output-dir.") from None
    remove_stale_staging(out)  # left by a killed save
    return out


def save_artifact(out: Path, model, tokenizer, cfg: TrainConfig, metrics: dict, card: str,
                  adapter_dir: Path | None = None, weights: bool = True,
                  write_extras: Callable[[Path], None] | None = None) -> None:
    """Write the whole artifact into a staging folder beside out, then swap the two folders in one step.

    ``adapter_dir`` (LoRA) is moved in as adapter/; without ``weights`` only the model's config.json is
    written beside it (an adapter-only artifact). ``write_extras(staging)`` adds files derived from the
    others (mistakes.json, the report) before anything is published. A process killed at any point leaves
    out either as it was (the previous model, intact) or complete with the new one."""
    out = out.resolve()
    publish = functools.partial(publish_artifact, skip={adapter_dir.name} if adapter_dir is not None else set())
    with staged_folder(out, publish, inside_when_parent_readonly=True) as staging:
        if weights:
            model.save_pretrained(staging, safe_serialization=True)
        else:
            model.config.save_pretrained(staging)
        if adapter_dir is not None:
            shutil.copytree(adapter_dir, staging / ADAPTER)
        tokenizer.save_pretrained(staging)
        write_json(staging / METRICS, metrics)
        write_text(staging / CARD, card)
        save_yaml(cfg, staging / MANIFEST)
        if write_extras is not None:
            write_extras(staging)


# What a save replaces: none of these may survive from an earlier run beside the new files.
_OWNED = {MANIFEST, METRICS, CARD, WEIGHTS, ADAPTER, MISTAKES, REPORT, REPORT_FILES, "config.json"}


def publish_artifact(staging: Path, out: Path, skip: set[str] | None = None) -> None:
    """Make staging's files out's. Whatever else out holds (checkpoints/, the user's own files) is
    carried over as hard links first. Then one renameat2(RENAME_EXCHANGE) swaps the folders: there is no
    moment at which out is missing or mixed. Where the swap is not available (not Linux, a file system
    without it, a staging folder inside out) the files are moved in one by one with the manifest last, so
    an interrupted save leaves a folder that no loader takes for a finished model."""
    carried = [p for p in out.iterdir() if p.name not in _OWNED | (skip or set()) and not (staging / p.name).exists()
               and not p.name.startswith(STAGING)]
    if staging.parent == out.parent and _carry_over(carried, staging):
        fsync_folder(staging)  # the links just made: staged_folder sealed the folder before they existed
        keep_mode(staging, out)  # staging becomes out
        if exchange_folders(staging, out):
            fsync_folder(out.parent)
            return  # staging now holds the previous artifact, which staged_folder deletes
        _remove(staging / p.name for p in carried)  # the originals stay where they are
    _move_in(staging, out)


def _carry_over(paths: list[Path], staging: Path) -> bool:
    """Hard-link paths into staging (cheap, and the originals stay until the swap); False if impossible."""
    try:
        for path in paths:
            target = staging / path.name
            if path.is_dir() and not path.is_symlink():
                shutil.copytree(path, target, symlinks=True, copy_function=os.link)
            else:
                os.link(path, target, follow_symlinks=False)
        return True
    except OSError:
        _remove(staging / path.name for path in paths)
        return False


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _move_in(staging: Path, out: Path) -> None:
    """The fallback: move the files in one by one, the manifest removed first and moved in last."""
    (out / MANIFEST).unlink(missing_ok=True)  # from here on, out is not a finished artifact
    # an earlier run's weights must not pair with this adapter, nor its report describe this model
    _remove(out / name for name in _OWNED - {MANIFEST} if not (staging / name).exists())
    for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        shutil.move(item, target)


FINETEXT_MODEL_TYPES = ("finetext-glove-transformer", "finetext-mean-pooling")
"""The model types finetext registers with transformers (models/scratch.py, models/mean_pooling.py), named here
too so that reading an artifact loads no ML library."""


@dataclass(frozen=True)
class Artifact:
    """A trained model directory as finetext reads it back."""

    path: Path
    label_names: list[str]
    config: TrainConfig | None
    """The run's settings (finetext.yaml) as the typed config; None for a plain Hugging Face model directory."""
    problem_type: str | None = None
    model_type: str | None = None
    """config.json's model_type: one of FINETEXT_MODEL_TYPES needs `import finetext.architectures` to load in
    transformers alone."""

    def adapter_only(self) -> bool:
        """A LoRA artifact saved with lora_merge: false (weights = base model + adapter/)."""
        return not (self.path / WEIGHTS).is_file() and (self.path / ADAPTER / "adapter_config.json").is_file()


def open_artifact(path: str | Path) -> Artifact:
    """Check that path is a usable model directory; finetext.yaml is optional (plain HF models work too)."""
    folder = Path(path).expanduser()
    if folder.is_file():
        raise FinetextError(f"{folder} is a file, not a model directory.", "Pass the --output-dir of a training run.")
    if not folder.is_dir():
        raise FinetextError(f"model directory not found: {folder}.", "Pass the --output-dir of a training run.")
    if not (folder / "config.json").is_file():
        hint = "Training did not finish there; rerun it." if (folder / CHECKPOINTS).is_dir() else (
            "Pass the --output-dir of a finished training run.")
        raise FinetextError(f"{folder} holds no trained model (config.json missing).", hint)
    if (folder / METRICS).is_file() and not (folder / MANIFEST).is_file():
        raise FinetextError(f"{folder} holds an incomplete model (a save was interrupted).",
                            "Rerun training with --overwrite-output-dir.")
    config = read_json(folder / "config.json", _DAMAGED)
    try:
        id2label = config.get("id2label") or {}
        names = [id2label[k] for k in sorted(id2label, key=int)]
    except (AttributeError, TypeError, ValueError):  # valid JSON, but not a model config
        raise FinetextError(f"{folder / 'config.json'} is not a model config (unreadable id2label).",
                            _DAMAGED) from None
    return Artifact(folder, names, read_config(folder / MANIFEST), config.get("problem_type"), config.get("model_type"))


_DAMAGED = "The directory is damaged: re-run training, or restore it from a copy."


def read_settings(path: Path) -> dict[str, Any]:
    """finetext.yaml as its raw mapping (empty for a plain Hugging Face model directory)."""
    if not path.is_file():
        return {}
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, ValueError) as exc:
        raise FinetextError(f"{path} is not valid YAML ({reason(exc)}).", _DAMAGED) from None
    if not isinstance(settings, dict):
        raise FinetextError(f"{path} is not a finetext config (a mapping of settings).", _DAMAGED)
    return settings


def read_config(path: Path) -> TrainConfig | None:
    """finetext.yaml read back into the config it was saved from, so every default comes from config.py;
    None when there is none (a plain Hugging Face model directory)."""
    settings = read_settings(path)
    if not settings:
        return None
    try:
        return config_from_flat(settings)
    except FinetextError as exc:  # a key this version does not know, or a value it refuses
        raise FinetextError(f"{path} holds settings this finetext cannot read: {exc.problem.rstrip('.')}.",
                            "Correct the file (`finetext config --docs` lists the keys and values), or re-run "
                            "training.") from None
