"""When the kernel acts on its own account: each strategy's decision steps and the operator
commands due, as masks over the panel's steps.

A data set gives every step up front: each strategy's ``schedule`` is read once. Rows arriving
one at a time (``kernel.stream``) extend the decision masks as they come (``extend``), and an
operator command that arrives while running is added at the first step not yet run (``add``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import OperatorCommanded, StrategyCommanded
from domain.market import Panel
from kernel.setup import StrategySlot
from kernel.strategy import Strategy

__all__ = [
    "STRATEGY_COMMANDS",
    "Command",
    "Decisions",
    "OperatorCommands",
    "ScheduleError",
    "apply_strategy_command",
    "data_end",
    "decision_steps",
    "scheduled_rows",
    "strategy_schedule",
    "utc_text",
]

STRATEGY_COMMANDS = ("pause", "resume")
"""What an operator may tell one strategy of the book (``StrategyCommanded``)."""

Command = OperatorCommanded | StrategyCommanded
"""An operator command the kernel applies at a step: to the kill switch, or to one strategy."""


def utc_text(ts_ns: int) -> str:
    """A nanosecond stamp as a reader takes it in an error line: ISO 8601 in UTC, the raw
    nanoseconds beside it (``2019-09-01T00:00:00Z (1567296000000000000 ns)``)."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):  # outside what datetime holds
        return f"{ts_ns} ns"
    fraction = f".{rest:09d}".rstrip("0") if rest else ""
    return f"{moment}{fraction}Z ({ts_ns} ns)"


def data_end(panel: Panel) -> str:
    """``the data's end`` with its time, for an error line of something due after it."""
    return f"the data's end ({utc_text(int(panel.ts_ns[-1]))})" if panel.steps else "the data's end"


def apply_strategy_command(paused: set[str], command: StrategyCommanded) -> None:
    """A pause adds the strategy to the paused set, a resume takes it out."""
    if command.command == "pause":
        paused.add(command.strategy_id)
    else:
        paused.discard(command.strategy_id)


class ScheduleError(ValueError):
    """A schedule or a command the panel cannot hold."""


def decision_steps(
    strategy_id: str, schedule: object, steps: int, *, method: str = "schedule"
) -> npt.NDArray[np.int64]:
    """What a strategy's ``schedule`` (or ``method``) returned, as step indices, or a
    ``ScheduleError`` naming the strategy: a 1-D array of whole numbers, sorted, unique, each in
    ``0 .. steps-1``. None, a boolean mask (read as steps 0 and 1), fractions (truncated) and an
    unsorted array with a step past the end between in-range ends (an IndexError) were taken or
    crashed."""
    if schedule is None:
        raise ScheduleError(f"{strategy_id}: {method} returned None, not the decision steps (an int array)")
    try:
        raw = np.asarray(schedule)
    except (TypeError, ValueError) as error:
        raise ScheduleError(f"{strategy_id}: {method} must return step indices: {error}") from None
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.ndim != 1 or raw.dtype.kind not in "iuf":
        what = "a boolean mask (np.flatnonzero gives its steps)" if raw.dtype.kind == "b" else f"{raw.dtype}"
        raise ScheduleError(f"{strategy_id}: {method} must return a 1-D array of step indices, got {what}")
    if raw.dtype.kind == "f" and not bool(np.all(np.isfinite(raw) & (raw == np.round(raw)))):
        raise ScheduleError(f"{strategy_id}: {method} returned steps that are not whole numbers")
    if raw.dtype.kind == "f" and (raw.min() < 0 or raw.max() >= steps):  # not cast past int64 first
        raise ScheduleError(f"{strategy_id}: {method} has steps outside the panel")
    result = raw.astype(np.int64)
    if result.min() < 0 or result.max() >= steps:
        raise ScheduleError(f"{strategy_id}: {method} has steps outside the panel")
    if result.size > 1 and bool(np.any(np.diff(result) <= 0)):
        raise ScheduleError(f"{strategy_id}: {method} must return sorted, unique steps")
    return result


def _called(strategy: Strategy, method: str, *args: object) -> object:
    """The strategy's ``method(*args)``; what it raises is its own bug, a ``ScheduleError``
    naming it (not Tape's internal error)."""
    try:
        return getattr(strategy, method)(*args)
    except Exception as error:
        reason = " ".join(str(error).split())
        raise ScheduleError(
            f"{strategy.strategy_id}: its {method} raised {type(error).__name__}: {reason}"
        ) from error


def strategy_schedule(strategy: Strategy, panel: Panel) -> npt.NDArray[np.int64]:
    """The strategy's decision steps over the whole panel: its ``schedule``, checked
    (``decision_steps``). A backtest reads it once; a queue source, for a strategy without
    ``schedule_rows``, each time rows arrive (``scheduled_rows``): the same checks both ways."""
    returned = _called(strategy, "schedule", panel)
    return decision_steps(strategy.strategy_id, returned, panel.steps)


def scheduled_rows(strategy: Strategy, panel: Panel, start: int, end: int) -> npt.NDArray[np.int64]:
    """The strategy's decision steps among rows ``start .. end-1`` that have just arrived: its
    ``schedule_rows`` (``kernel.strategy.IncrementalSchedule``) where it has one, checked as
    ``schedule``'s are and to lie in ``start .. end-1``; else ``strategy_schedule``'s among them."""
    if getattr(strategy, "schedule_rows", None) is None:
        steps = strategy_schedule(strategy, panel)
        return steps[(steps >= start) & (steps < end)]
    sid = strategy.strategy_id
    steps = decision_steps(
        sid, _called(strategy, "schedule_rows", panel, start, end), panel.steps, method="schedule_rows"
    )
    if steps.size and (int(steps[0]) < start or int(steps[-1]) >= end):
        raise ScheduleError(f"{sid}: schedule_rows must give sorted, unique steps in {start}..{end - 1}")
    return steps


class Decisions:
    """Each strategy's decision steps (one mask per slot) and their union."""

    def __init__(self, slots: Sequence[StrategySlot], panel: Panel, *, streaming: bool) -> None:
        self._slots = slots
        self._panel = panel
        if streaming:  # filled by ``extend`` as rows arrive
            self.by_slot = [np.zeros(panel.steps, dtype=np.bool_) for _ in slots]
        else:
            self.by_slot = [self._whole(slot) for slot in slots]
        self.any: npt.NDArray[np.bool_] = np.logical_or.reduce(self.by_slot)

    def _whole(self, slot: StrategySlot) -> npt.NDArray[np.bool_]:
        mask = np.zeros(self._panel.steps, dtype=np.bool_)
        mask[strategy_schedule(slot.strategy, self._panel)] = True  # before the run's first record
        return mask

    def extend(self, start: int, end: int) -> None:
        """Rows ``start .. end-1`` arrived: each strategy's decision steps among them."""
        for index, slot in enumerate(self._slots):
            steps = scheduled_rows(slot.strategy, self._panel, start, end)
            if steps.size:
                self.by_slot[index][steps] = True
                self.any[steps] = True


class OperatorCommands:
    """Operator commands by the step they apply at: the first at or after their time."""

    def __init__(self, panel: Panel, commands: Sequence[Command], strategy_ids: Sequence[str]) -> None:
        self._panel = panel
        self._strategies = frozenset(strategy_ids)
        self.by_step: dict[int, list[Command]] = {}
        self.mask = np.zeros(panel.steps, dtype=np.bool_)
        for command in sorted(commands, key=lambda command: command.ts_ns):
            self._check(command)
            step = self._due(command)
            if step >= panel.steps:
                raise ScheduleError(  # a configured command, refused before the run starts
                    f"operator command {command.command!r} at {utc_text(command.ts_ns)} is after "
                    f"{data_end(panel)}"
                )
            self._put(step, command)

    def _check(self, command: Command) -> None:
        if not isinstance(command, StrategyCommanded):
            return  # the kill switch judges its own commands (and journals a refusal)
        if command.command not in STRATEGY_COMMANDS:
            raise ScheduleError(f"a strategy command is one of {STRATEGY_COMMANDS}, not {command.command!r}")
        if command.strategy_id not in self._strategies:
            raise ScheduleError(
                f"operator command {command.command!r} names strategy {command.strategy_id!r}, "
                f"not one of this book's ({', '.join(sorted(self._strategies))})"
            )

    def _due(self, command: Command) -> int:
        return int(np.searchsorted(self._panel.ts_ns, command.ts_ns, side="left"))

    def _put(self, step: int, command: Command) -> None:
        self.by_step.setdefault(step, []).append(command)
        self.mask[step] = True

    def add(self, command: Command, next_step: int) -> int:
        """A command that arrived while running, when steps before ``next_step`` have run: applied
        at the first step not yet run whose time is at or after its own; a late one is stamped
        with that step's time, so a replay of the journal applies it at the same step."""
        self._check(command)
        due = self._due(command)
        step = max(due, next_step)
        if step >= self._panel.steps:  # journaled as a refusal's detail (paper, live): kept as it was
            raise ScheduleError(
                f"operator command {command.command!r} at {command.ts_ns} is after the data's end"
            )
        if step > due:
            command = msgspec.structs.replace(command, ts_ns=int(self._panel.ts_ns[step]))
        self._put(step, command)
        return step
