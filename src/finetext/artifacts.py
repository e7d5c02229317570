"""The output directory: what a finished run leaves there, written so an interrupted run never looks finished.

A finished artifact is a Hugging Face model directory (model.safetensors, config.json with the real label
names, tokenizer files) plus finetext's own files: finetext.yaml (the resolved config), metrics.json and a
model card README.md. finetext.yaml is moved into place last, so its presence marks a complete artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finetext.config import TrainConfig, save_yaml
from finetext.errors import FinetextError

MANIFEST = "finetext.yaml"
METRICS = "metrics.json"
CARD = "README.md"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"  # LoRA runs: the unmerged adapters (adapter_config.json, adapter_model.safetensors)


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
    return out


def write_json_atomic(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(out: Path, model, tokenizer, cfg: TrainConfig, metrics: dict, card: str,
                  adapter_dir: Path | None = None, weights: bool = True) -> None:
    """Write everything into a staging folder, then move it into out with the manifest last.

    ``adapter_dir`` (LoRA) is moved in as adapter/; without ``weights`` only the model's config.json is
    written beside it (an adapter-only artifact)."""
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        if weights:
            model.save_pretrained(staging, safe_serialization=True)
        else:
            model.config.save_pretrained(staging)
        if adapter_dir is not None:
            shutil.copytree(adapter_dir, staging / ADAPTER)
            for path in (staging / ADAPTER).iterdir():
                os.chmod(path, 0o644)
        tokenizer.save_pretrained(staging)
        write_json_atomic(staging / METRICS, metrics)
        write_text_atomic(staging / CARD, card)
        save_yaml(cfg, staging / MANIFEST)
        (out / MANIFEST).unlink(missing_ok=True)  # from here on, out is not a finished artifact
        if not weights:
            (out / WEIGHTS).unlink(missing_ok=True)  # an earlier run's weights must not pair with this adapter
        if adapter_dir is None:
            shutil.rmtree(out / ADAPTER, ignore_errors=True)  # nor an earlier run's adapter with these weights
        for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):
            if item.is_file():
                os.chmod(item, 0o644)  # some writers create 0600 files; artifacts are meant to be shared
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Artifact:
    """A trained model directory as finetext reads it back."""

    path: Path
    label_names: list[str]
    settings: dict[str, Any]
    problem_type: str | None = None

    def adapter_only(self) -> bool:
        """A LoRA artifact saved with lora_merge: false (weights = base model + adapter/)."""
        return not (self.path / WEIGHTS).is_file() and (self.path / ADAPTER / "adapter_config.json").is_file()

    def data_setting(self, key: str, default=None):
        return self.settings.get("data", {}).get(key, default)

    def model_setting(self, key: str, default=None):
        return self.settings.get("model", {}).get(key, default)


def open_artifact(path: str | Path) -> Artifact:
    """Check that path is a usable model directory; finetext.yaml is optional (plain HF models work too)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FinetextError(f"model directory not found: {folder}.", "Pass the --output-dir of a training run.")
    if not (folder / "config.json").is_file():
        hint = "Training did not finish there; rerun it." if (folder / CHECKPOINTS).is_dir() else (
            "Pass the --output-dir of a finished training run.")
        raise FinetextError(f"{folder} holds no trained model (config.json missing).", hint)
    if (folder / METRICS).is_file() and not (folder / MANIFEST).is_file():
        raise FinetextError(f"{folder} holds an incomplete model (a save was interrupted).",
                            "Rerun training with --overwrite-output-dir.")
    settings: dict[str, Any] = {}
    if (folder / MANIFEST).is_file():
        settings = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8")) or {}
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    return Artifact(folder, names, settings, config.get("problem_type"))
