"""What a strategy's ``schedule`` returns is checked before the run's first record: whole,
sorted, unique steps inside the panel, or the run is refused naming the strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.market import Panel
from kernel.loop import Kernel, KernelError
from kernel.schedules import ScheduleError, decision_steps
from sim.backtest import build_setup, run_backtest
from tests.factories import ListSink, Scripted, make_config, make_dataset


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (None, "schedule returned None"),
        (np.zeros(20, dtype=bool), "got a boolean mask"),  # was read as steps 0 and 1
        (np.array([5.5, 7.0]), "not whole numbers"),  # was truncated to 5
        (np.array([10, 5]), "sorted, unique"),
        (np.array([5, 5]), "sorted, unique"),
        (np.array([5, 1_000, 7]), "outside the panel"),  # an IndexError past the end-only check
        (np.array([5, 9.0e30]), "outside the panel"),
        (np.array([[5], [7]]), "1-D array"),
        (np.array(["5"]), "1-D array of step indices, got <U1"),
    ],
)
def test_a_schedule_that_is_not_steps_is_refused_naming_the_strategy(schedule: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=f"^s1: .*{message}"):
        decision_steps("s1", schedule, 20)


def test_steps_as_a_list_floats_or_nothing_are_taken() -> None:
    assert decision_steps("s1", [3, 4], 20).tolist() == [3, 4]
    assert decision_steps("s1", np.array([3.0, 19.0]), 20).tolist() == [3, 19]
    assert decision_steps("s1", [], 20).dtype == np.int64


class _Masked(Scripted):
    def schedule(self, panel: Panel) -> np.ndarray:  # type: ignore[type-arg]
        return np.asarray(panel.valid[:, 0])  # a mask, not steps


def test_a_run_with_a_masked_schedule_is_refused_before_its_first_record(tmp_path: Path) -> None:
    config = make_config(make_dataset(tmp_path / "d", symbols=2, bars=30), tmp_path / "j")
    with pytest.raises(KernelError, match="got a boolean mask"):
        run_backtest(config, _Masked({}))
    assert not (tmp_path / "j").exists()  # no record: the journal the run created is removed


class _Raising(Scripted):
    def schedule(self, panel: Panel) -> np.ndarray:  # type: ignore[type-arg]
        raise KeyError("close_adj")


def test_a_schedule_that_raises_is_the_strategys_error_before_the_first_record(tmp_path: Path) -> None:
    """It was 'internal error: KeyError ... (a bug: please report it)', exit 70."""
    config = make_config(make_dataset(tmp_path / "d", symbols=2, bars=30), tmp_path / "j")
    with pytest.raises(KernelError, match=r": its schedule raised KeyError: 'close_adj'"):
        run_backtest(config, _Raising({}))
    assert not (tmp_path / "j").exists()  # no record: the journal the run created is removed


class _Unsorted(Scripted):
    def schedule(self, panel: Panel) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([12, 5])


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_Masked({}), "got a boolean mask"),  # was read as steps 0 and 1
        (_Unsorted({}), "sorted, unique"),  # was taken
        (_Raising({}), r": its schedule raised KeyError: 'close_adj'"),  # was an internal error
    ],
)
def test_rows_arriving_one_at_a_time_check_the_schedule_as_a_backtest_does(
    tmp_path: Path, strategy: Scripted, message: str
) -> None:
    """A strategy without ``schedule_rows`` (a paper or live session's queue source) has its
    ``schedule`` read over the panel as rows arrive: the same checks as a backtest's."""
    config = make_config(make_dataset(tmp_path / "d", symbols=2, bars=30), tmp_path / "j")
    setup = build_setup(config, strategy, queued=True)
    with pytest.raises(KernelError, match=message):
        Kernel(setup, ListSink(), arrived=20)


class _MaskedRows(Scripted):
    def schedule_rows(self, panel: Panel, start: int, end: int) -> np.ndarray:  # type: ignore[type-arg]
        return np.asarray(panel.valid[start:end, 0])  # a mask, not steps


def test_schedule_rows_is_checked_as_schedule_is(tmp_path: Path) -> None:
    config = make_config(make_dataset(tmp_path / "d", symbols=2, bars=30), tmp_path / "j")
    setup = build_setup(config, _MaskedRows({}), queued=True)
    with pytest.raises(KernelError, match=r"scripted: schedule_rows must return a 1-D array .* boolean mask"):
        Kernel(setup, ListSink(), arrived=20)


def test_utc_text_reads_a_stamp_in_utc_with_its_nanoseconds() -> None:
    from kernel.schedules import utc_text

    assert utc_text(1_567_296_000_000_000_000) == "2019-09-01T00:00:00Z (1567296000000000000 ns)"
    assert utc_text(1_567_296_000_123_400_000) == "2019-09-01T00:00:00.1234Z (1567296000123400000 ns)"
    assert utc_text(-1) == "1969-12-31T23:59:59.999999999Z (-1 ns)"
    assert utc_text(10**30) == f"{10**30} ns"  # beyond what a date holds: the number alone
