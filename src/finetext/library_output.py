"""Library noise off: the progress bars transformers and datasets draw for their own work ("Loading weights",
"Writing model shards", "Saving the dataset") say nothing to finetext's user, whose bars are named for what
they count (train, evaluate, predict). Off where finetext calls them (loading a model, a training run, an
export, the tokenization cache), then as they were; the CLI turns them off for the whole command."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def library_bars_off() -> Iterator[None]:
    import datasets
    from transformers.utils import logging as hf_logging

    transformers_bars, datasets_bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    set_library_bars(False)
    try:
        yield
    finally:
        set_library_bars(transformers_bars, datasets_bars)


def set_library_bars(transformers_on: bool, datasets_on: bool | None = None) -> None:
    """Switch both libraries' bars (the CLI turns them off for the whole command)."""
    from transformers.utils import logging as hf_logging

    (hf_logging.enable_progress_bar if transformers_on else hf_logging.disable_progress_bar)()
    _switch_datasets_bars(transformers_on if datasets_on is None else datasets_on)


def without_library_bars(function: Callable[P, R]) -> Callable[P, R]:
    """library_bars_off() around a whole API call."""
    @functools.wraps(function)
    def quietly(*args: P.args, **kwargs: P.kwargs) -> R:
        with library_bars_off():
            return function(*args, **kwargs)

    return quietly


def _switch_datasets_bars(on: bool) -> None:
    import datasets

    with warnings.catch_warnings():  # datasets warns when HF_DATASETS_DISABLE_PROGRESS_BARS overrides the switch
        warnings.simplefilter("ignore")
        (datasets.enable_progress_bars if on else datasets.disable_progress_bars)()
