"""finetext: fine-tune pretrained models for text classification."""

__version__ = "0.1.0"

from finetext.api import compare, evaluate, export, predict, report, serve, train  # noqa: E402
from finetext.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig  # noqa: E402
from finetext.errors import FinetextError  # noqa: E402

__all__ = ["DataConfig", "FinetextError", "ModelConfig", "TrainConfig", "TrainingConfig", "compare", "evaluate",
           "export", "predict", "report", "serve", "train"]
