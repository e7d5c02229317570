"""The search space: which config fields a study samples, and how (a range, a log range or a list of choices).

A space is a tuple of parameters named by flat config fields. It is either the strategy's default
(`default_space`) or read from the user's YAML (`read_space`); both are checked against the base config before
any trial runs (`check_space`), so a bad space costs one line and exit code 2, not a failed study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import yaml

from finetext.config import SECTIONS, TrainConfig, config_from_flat, leaf_fields
from finetext.errors import FinetextError
from finetext.models.strategies import STRATEGIES

if TYPE_CHECKING:
    import optuna

# Fields a trial may not change: they decide what data is scored, how, or where the results go; the study sets
# them itself (the search split, evaluations for pruning) or they would make trials incomparable.
FIXED_FIELDS = {
    "dataset", "data_dir", "train_file", "validation_file", "test_file", "text_column", "text_pair_column",
    "label_column", "label_names", "multi_label", "label_separator", "validation_fraction", "train_samples",
    "eval_samples", "test_samples", "bad_rows", "cache_tokenized", "metric_for_best_model", "eval_strategy",
    "eval_steps", "load_best_model_at_end", "save_steps", "save_total_limit", "logging_steps", "seed",
    "output_dir", "overwrite_output_dir", "quiet", "resume", "report", "trust_remote_code", "init_from",
    "dataloader_num_workers", "eval_batch_size",
}


@dataclass(frozen=True)
class Range:
    """A number between low and high (both included); integers stay integers; log samples the logarithm."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> int | float:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def endpoints(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def describe(self) -> str:
        kind = ("log-uniform" if self.log else "uniform") + (" integer" if self.integer else "")
        return f"{self.name}: {kind} {short(self.low)} .. {short(self.high)}"


@dataclass(frozen=True)
class Choice:
    """One of a list of values (numbers, strings or booleans)."""

    name: str
    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial) -> Any:
        return trial.suggest_categorical(self.name, list(self.values))

    def endpoints(self) -> tuple[Any, ...]:
        return self.values

    def describe(self) -> str:
        return f"{self.name}: one of {', '.join(short(v) for v in self.values)}"


Parameter = Range | Choice
SearchSpace = tuple[Parameter, ...]


def short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def sample(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """One setting of every parameter, as flat config values."""
    return {parameter.name: parameter.suggest(trial) for parameter in space}


# ----------------------------------------------------------------------------------------------------------
# The default space


def default_space(base: TrainConfig, train_rows: int, search_epochs: bool, model_layers: int | None) -> SearchSpace:
    """Learning rate log-uniform within 4x of the strategy's default (or the one given), batch size, warm-up,
    weight decay; epochs around the default for train_rows (unless the search runs on a subset, whose epochs
    would not carry over to the full data); LoRA's rank and alpha; top_k's k; fewshot's pairs per example."""
    training, model = base.training, base.model
    rate = training.learning_rate or model.default_learning_rate()
    space: list[Parameter] = [Range("learning_rate", rate / 4, rate * 4, log=True)]
    if search_epochs:
        own = training.epochs or STRATEGIES[model.strategy].default_epochs  # fewshot: passes over its pairs
        epochs = int(math.ceil(own or training.resolved_epochs(train_rows)))
        space.append(Range("epochs", max(1, epochs - epochs // 2), max(2, epochs + epochs // 2), integer=True))
    space += [Choice("batch_size", (8, 16, 32)), Range("warmup", 0.0, 0.2), Range("weight_decay", 0.0, 0.1)]
    if model.strategy == "lora":
        space += [Choice("lora_rank", (4, 8, 16, 32)), Choice("lora_alpha", (8.0, 16.0, 32.0, 64.0))]
    if model.strategy == "top_k":
        space.append(Range("top_k", 1, max(2, model_layers or 4), integer=True))
    if model.strategy == "fewshot":
        space.append(Choice("fewshot_pairs", (10, 20, 40)))
    return tuple(space)


# ----------------------------------------------------------------------------------------------------------
# A space from YAML


def read_space(path: str | Path) -> SearchSpace:
    """Each key a config field; each value a list of choices, {choices: [...]}, or {low, high[, log]}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FinetextError(f"search space file not found: {path}.", "Check the --search-space path.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FinetextError(f"search space {path} is not valid YAML: {str(exc).splitlines()[0]}.") from None
    if not isinstance(loaded, dict) or not loaded:
        raise FinetextError(f"search space {path} must map config fields to ranges or choices.",
                            "E.g. learning_rate: {low: 1e-5, high: 1e-4, log: true}")
    return tuple(parse_parameter(str(name), spec) for name, spec in loaded.items())


def parse_parameter(name: str, spec: Any) -> Parameter:
    where = f"search space field '{name}'"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise FinetextError(f"{where} must be a list of choices or a range; got {spec!r}.",
                            f"E.g. {name}: [a, b] or {name}: {{low: 1, high: 4}}.")
    keys = set(spec)
    if "choices" in keys:
        if keys != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise FinetextError(f"{where}: choices must be a non-empty list, alone.", f"E.g. {name}: [8, 16, 32].")
        if len({repr(v) for v in spec["choices"]}) != len(spec["choices"]):
            raise FinetextError(f"{where} lists a choice twice.", "List each choice once.")
        return Choice(name, tuple(spec["choices"]))
    if not {"low", "high"} <= keys or keys - {"low", "high", "log"}:
        raise FinetextError(f"{where}: a range needs low and high (and optionally log); got {sorted(keys)}.",
                            f"E.g. {name}: {{low: 1e-5, high: 1e-4, log: true}}.")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise FinetextError(f"{where}: low and high must be numbers; got {low!r} and {high!r}.")
    if not isinstance(log, bool):
        raise FinetextError(f"{where}: log must be true or false; got {log!r}.")
    if not low < high:
        raise FinetextError(f"{where}: the range {low} .. {high} is empty (low must be below high).",
                            "Swap the bounds, or give a single value as a flag instead.")
    if log and low <= 0:
        raise FinetextError(f"{where}: a log range needs a positive low; got {low}.", "Drop log, or raise low.")
    return Range(name, float(low), float(high), log, integer=isinstance(low, int) and isinstance(high, int))


# ----------------------------------------------------------------------------------------------------------
# Checks against the base config


def check_space(space: SearchSpace, base_values: dict[str, Any]) -> None:
    """Refuse unknown or fixed fields, integer ranges on float-only fields and the reverse, and every choice or
    range end that the config itself refuses (with the base config's other values)."""
    leaves = leaf_fields()
    names = [p.name for p in space]
    if len(set(names)) != len(names):
        raise FinetextError("the search space names a field twice.", "Name each field once.")
    for parameter in space:
        where = f"search space field '{parameter.name}'"
        if parameter.name not in leaves:
            raise FinetextError(f"{where} is not a config field.", "Run `finetext config --docs` for the fields.")
        if parameter.name in FIXED_FIELDS:
            raise FinetextError(f"{where} cannot be searched: the study fixes it for every trial.",
                                f"Give it as a flag (--{parameter.name.replace('_', '-')}) instead.")
        check_kind(parameter, where, field_type(parameter.name))
        for value in parameter.endpoints():
            try:
                config_from_flat({**base_values, parameter.name: value})
            except FinetextError as exc:
                raise FinetextError(f"{where}: the value {value!r} is refused: {exc.problem}",
                                    exc.fix or "Remove it from the search space.") from None


def field_type(name: str) -> str:
    section, _ = leaf_fields()[name]
    return str(get_type_hints(SECTIONS[section] if section else TrainConfig)[name])


def check_kind(parameter: Parameter, where: str, hint: str) -> None:
    if isinstance(parameter, Choice):
        return
    numeric = "int" in hint or "float" in hint
    if not numeric:
        raise FinetextError(f"{where} is not a number: it takes choices, not a range.", "List its choices instead.")
    if "float" not in hint and not parameter.integer:
        raise FinetextError(f"{where} takes integers: give low and high as integers.")
