"""finetext: fine-tune pretrained models for text classification.

The public names load on first use (PEP 562): the API pulls in torch and transformers, and `import finetext`,
`finetext --help` and `finetext config` should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from finetext.version import __version__ as __version__  # the one place the version is stated

if TYPE_CHECKING:  # what __getattr__ returns, for type checkers and editors
    from finetext.api import audit, compare, evaluate, export, predict, predict_file, push, report, serve, train, tune
    from finetext.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
    from finetext.errors import FinetextError

_HOMES = {
    **dict.fromkeys(("audit", "compare", "evaluate", "export", "predict", "predict_file", "push", "report", "serve",
                     "train", "tune"),
                     "finetext.api"),
    **dict.fromkeys(("DataConfig", "ModelConfig", "TrainConfig", "TrainingConfig"), "finetext.config"),
    "FinetextError": "finetext.errors",
}

__all__ = ["DataConfig", "FinetextError", "ModelConfig", "TrainConfig", "TrainingConfig", "audit", "compare",
           "evaluate", "export", "predict", "predict_file", "push", "report", "serve", "train", "tune"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'finetext' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
