"""Checks of a model directory's files before transformers reads them.

transformers' own errors rarely say which file is at fault ("Expecting value: line 1 column 1"), and a
directory holding only pickle weights would otherwise be loaded with torch.load. Each check here names the
file and what to do about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetext.errors import FinetextError

JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "adapter/adapter_config.json")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
REMOTE_CODE_FIX = "Pass --trust-remote-code if you trust it (it runs that directory's Python files)."


def reason(exc: BaseException) -> str:
    """An exception's message on one short line."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_json(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise FinetextError(f"{path} is not valid JSON ({reason(exc)}).", fix) from None


def check_model_dir(folder: Path, fix: str) -> None:
    """The JSON files and the weights of a local model directory (a LoRA artifact's adapter/ included)."""
    for name in JSON_FILES:
        if (folder / name).is_file():
            read_json(folder / name, fix)
    check_weights(folder, fix)
    if (folder / "adapter").is_dir():
        check_weights(folder / "adapter", fix)


def check_weights(folder: Path, fix: str) -> None:
    """Every .safetensors file has a complete header; pickle weights alone are refused, never loaded."""
    from safetensors import safe_open

    weights = sorted(folder.glob("*.safetensors"))
    for path in weights:
        try:
            with safe_open(str(path), framework="pt"):
                pass  # opening parses the header and checks that the file holds every tensor it lists
        except Exception as exc:  # noqa: BLE001 - SafetensorError (truncated, garbage, empty) or OSError
            raise FinetextError(f"{path} is damaged or truncated ({reason(exc)}).", fix) from None
    pickles = sorted(p for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if not weights and pickles:
        raise FinetextError(
            f"{pickles[0]} holds pickle weights, which can run code when loaded: finetext loads only safetensors "
            "weights (model.safetensors).", "Convert it once, where you trust its origin: load it with transformers' "
            "from_pretrained and save it with save_pretrained, which writes model.safetensors.")


def check_tokenizer(tokenizer: Any, folder: Path, fix: str) -> None:
    """A tokenizer with no vocabulary: transformers builds one from tokenizer_config.json alone when
    tokenizer.json (or vocab.txt) is missing, and every word then becomes [UNK]."""
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise FinetextError(f"the tokenizer in {folder} has no vocabulary: {folder / 'tokenizer.json'} is missing.",
                            fix)


def remote_code_error(source: str | Path, exc: BaseException) -> FinetextError | None:
    """transformers' refusal to run a model's own Python code (auto_map), as one line."""
    if "trust_remote_code" not in str(exc):
        return None
    return FinetextError(f"{source} needs custom code to load (auto_map in its config.json); finetext does not "
                         "run a model's own code unless asked to.", REMOTE_CODE_FIX)
