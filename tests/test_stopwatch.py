"""The one clock of every engine: training time without evaluations and checkpoints."""

import pytest

from finetext.training import stopwatch
from finetext.training.stopwatch import Stopwatch


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """A hand-moved time.perf_counter: clock[0] is now."""
    now = [100.0]
    monkeypatch.setattr(stopwatch.time, "perf_counter", lambda: now[0])
    return now


def test_pauses_are_left_out_and_a_nested_pause_is_part_of_the_outer_one(clock):
    watch = Stopwatch()
    clock[0] += 5
    with watch.paused():
        clock[0] += 2
        with watch.paused():
            clock[0] += 1
        clock[0] += 1
        assert watch.training_seconds() == 5  # frozen while paused
    clock[0] += 3
    assert (watch.elapsed(), watch.paused_seconds(), watch.training_seconds()) == (12, 4, 8)


def test_a_pause_known_only_afterwards_is_dated_back(clock):
    watch = Stopwatch()
    clock[0] += 4
    step_end = clock[0]
    clock[0] += 6  # the Trainer evaluated here and says so only now
    watch.pause(since=step_end)
    assert watch.training_seconds() == 4
    watch.resume()
    clock[0] += 1
    assert watch.training_seconds() == 5


def test_a_resumed_run_continues_from_the_saved_readings(clock):
    watch = Stopwatch(elapsed=30, paused=10)
    clock[0] += 5
    assert (watch.elapsed(), watch.training_seconds()) == (35, 25)
