"""One clock for "training time": wall time without the pauses for evaluations and checkpoints.

Every engine reports the training time at each evaluation (history's train_seconds) with it, so the figures
of two engines compare. A resumed native run starts its stopwatch from the readings saved in its checkpoint;
a resumed Trainer run counts the resumed session only, as before (its history says so).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Runs from its creation; pause() ... resume() (or `with paused():`) leaves a stretch out."""

    def __init__(self, elapsed: float = 0.0, paused: float = 0.0):
        """Start now, continuing from the elapsed and paused seconds of earlier sessions."""
        self._started = time.perf_counter() - elapsed
        self._paused = paused
        self._pause_began: float | None = None

    def pause(self, since: float | None = None) -> None:
        """Stop counting training time from now, or from `since` (a time.perf_counter() reading) when the
        pause is known only after it began. Pausing a paused stopwatch changes nothing."""
        if self._pause_began is None:
            self._pause_began = time.perf_counter() if since is None else since

    def resume(self) -> None:
        if self._pause_began is not None:
            self._paused += time.perf_counter() - self._pause_began
            self._pause_began = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the block's time out (a block inside a paused one is part of that pause)."""
        outer = self._pause_began is not None
        self.pause()
        try:
            yield
        finally:
            if not outer:
                self.resume()

    def elapsed(self) -> float:
        """Wall seconds since the start, pauses included."""
        return time.perf_counter() - self._started

    def paused_seconds(self) -> float:
        """Seconds left out so far, the current pause included."""
        current = time.perf_counter() - self._pause_began if self._pause_began is not None else 0.0
        return self._paused + current

    def training_seconds(self) -> float:
        """Wall seconds since the start without the pauses (frozen while paused)."""
        return self.elapsed() - self.paused_seconds()
