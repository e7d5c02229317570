"""Resumable checkpoints of the native engine, written atomically and without pickle.

A checkpoint is a directory ``checkpoints/step-<N>/`` holding the model (``model.safetensors``), the
optimizer's tensors (``optimizer.safetensors``), each process's random-number state (``rng-<rank>.*``)
and ``state.json`` (optimizer hyper-parameters, scheduler, data position, history). It is assembled in a
hidden ``.tmp-*`` folder (a fixed name: every process writes its RNG state there) and published with
finetext.storage.publish_folder, so a process killed while saving leaves the previous checkpoints
untouched. Only safetensors and JSON are read back: nothing in a checkpoint is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from finetext.errors import FinetextError
from finetext.storage import remove_stale_staging, staged_folder

STATE = "state.json"  # every complete checkpoint has one (a damaged or foreign step-N folder is skipped)
BEST = "best"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
RUN_CONFIG = "run.yaml"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def publish_best(checkpoint: Path, root: Path) -> None:
    """Make a checkpoint's weights the best model: a hard link, not a second 90 MB write. The previous best
    is swapped out in one step, so a kill never leaves the run without one."""
    with staged_folder(root / BEST) as staging:
        try:
            os.link(checkpoint / WEIGHTS, staging / WEIGHTS)
        except OSError:  # file systems without hard links
            shutil.copyfile(checkpoint / WEIGHTS, staging / WEIGHTS)


def prune(root: Path, keep: int) -> None:
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def remove_partial(root: Path) -> None:
    """Folders left by a process killed while saving."""
    if root.is_dir():
        for path in root.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        remove_stale_staging(root / BEST)


# ---------------------------------------------------------------------------------------------------------
# The pieces. Model and optimizer tensors go to safetensors, everything else to JSON.


def save_weights(model: torch.nn.Module, path: Path) -> None:
    save_model(model, str(path))  # handles tied weights


def load_weights(model: torch.nn.Module, path: Path) -> None:
    with reading(path):
        load_model(model, str(path))


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """A checkpoint file that cannot be read back (truncated, garbage, foreign) as one error naming it."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - SafetensorError, JSONDecodeError, KeyError, OSError, ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise FinetextError(f"cannot read {path}: {first}.", f"The checkpoint is damaged; delete {path.parent} "
                            "to resume from the one before.") from None


def optimizer_parts(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (by '<param>.<name>') and JSON-able values."""
    tensors, scalars = {}, {}
    for param_id, values in state_dict["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{param_id}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_state_dict(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = state
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return tensors, {"python": [version, list(mt_state), gauss],
                     "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}


def set_rng_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, mt_state, gauss = rest["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = rest["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_rng(folder: Path, rank: int) -> None:
    tensors, rest = rng_state()
    save_file(tensors, str(folder / f"rng-{rank}.safetensors"))
    (folder / f"rng-{rank}.json").write_text(json.dumps(rest), encoding="utf-8")


def load_rng(folder: Path, rank: int) -> None:
    with reading(folder / f"rng-{rank}.safetensors"):
        tensors = load_file(str(folder / f"rng-{rank}.safetensors"))
    with reading(folder / f"rng-{rank}.json"):
        set_rng_state(tensors, json.loads((folder / f"rng-{rank}.json").read_text(encoding="utf-8")))


def save_training_state(folder: Path, model: torch.nn.Module, optimizer, scheduler, progress: dict) -> None:
    """Main process only: weights, optimizer tensors and state.json into a folder not yet published."""
    save_weights(model, folder / WEIGHTS)
    tensors, rest = optimizer_parts(optimizer.state_dict())
    save_file(tensors, str(folder / OPTIMIZER))
    # A plain write: the folder is renamed into place only when complete, which is what makes it atomic.
    (folder / STATE).write_text(json.dumps({"progress": progress, "optimizer": rest,
                                            "scheduler": scheduler.state_dict()}), encoding="utf-8")


def load_training_state(folder: Path, model: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore weights, optimizer and scheduler in place; return the saved progress."""
    load_weights(model, folder / WEIGHTS)
    with reading(folder / STATE):
        saved = json.loads((folder / STATE).read_text(encoding="utf-8"))
        optimizer_rest, scheduler_state, progress = saved["optimizer"], saved["scheduler"], saved["progress"]
    with reading(folder / OPTIMIZER):
        tensors = load_file(str(folder / OPTIMIZER))
    optimizer.load_state_dict(optimizer_state_dict(tensors, optimizer_rest))
    scheduler.load_state_dict(scheduler_state)
    return progress
