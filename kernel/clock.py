"""Clocks. The kernel never asks what time it is: the step carries its timestamp. A clock
exists so simulated and live edges can be swapped; only ``venues/edge.py`` reads wall time."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Clock", "SimClock"]


class Clock(Protocol):
    def now_ns(self) -> int: ...


class SimClock:
    """A clock the step loop sets; reading it never touches the wall clock."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self._now_ns:
            raise ValueError(f"clock cannot go back from {self._now_ns} to {ts_ns}")
        self._now_ns = ts_ns
