"""Moving-average crossover: hold ``weight / N`` of each name while its fast SMA is above its
slow SMA; flat otherwise (long-only), or short ``short_weight / N`` with ``short_weight > 0``
(a perpetual). Decides only at steps where some name crosses."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import numpy.typing as npt

from domain.market import Panel
from kernel.strategy import MarketView
from models.features import sma_cross_carry, sma_cross_state_nb, sma_cross_step_nb
from models.plugins import number_param

__all__ = ["SmaCrossover"]

_NO_STEPS = np.zeros(0, dtype=np.int64)
SLOW_BARS_MAX = 100_000
"""The longest slow window (each name keeps that many closes: 800 kB a name)."""


class SmaCrossover:
    def __init__(
        self,
        *,
        fast: int = 10,
        slow: int = 30,
        weight: float = 0.95,
        strategy_id: str = "sma",
        short_weight: float = 0.0,
    ) -> None:
        for name, value in (("fast", fast), ("slow", slow)):
            if isinstance(value, bool) or not isinstance(value, Integral):  # 1.0 failed in Numba
                raise ValueError(f"{name} must be a whole number of bars, got {value!r}")
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        if slow > SLOW_BARS_MAX:  # each name keeps its last `slow` closes: 1.7e9 raised MemoryError
            raise ValueError(f"slow must be at most {SLOW_BARS_MAX:,} bars, got {slow:,}")
        number_param("weight", weight, 0.0, 1.0, above_low=True)  # text or a bool: named, not '<' failing
        number_param("short_weight", short_weight, 0.0, 1.0)
        self.short_weight = short_weight
        self.strategy_id = strategy_id
        self.fast = fast
        self.slow = slow
        self.weight = weight
        self._targets: npt.NDArray[np.float64] = np.zeros((0, 0))
        self._row_of: dict[int, int] = {}
        self._carry = np.zeros((0, 0), dtype=np.int64)  # rows arriving one at a time
        self._signals = np.zeros(0, dtype=np.int8)

    def _below(self, names: int) -> float:
        """The target while the fast SMA is below the slow one: flat, or the short."""
        return -self.short_weight / names if self.short_weight else 0.0

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Steps where some name crosses; the target rows for them are computed here, in one
        vectorised pass over causal state (state at step t uses closes <= t)."""
        state = sma_cross_state_nb(panel.close, panel.valid, self.fast, self.slow)
        prev, cur = state[:-1], state[1:]
        # A cross is a change of side after both averages exist (0 -> +-1 is not a cross).
        crossed = (prev != 0) & (cur != prev)
        steps = np.flatnonzero(np.any(crossed, axis=1)) + 1
        names = state.shape[1]
        rows = np.where(
            crossed[steps - 1], np.where(cur[steps - 1] > 0, self.weight / names, self._below(names)), np.nan
        )
        self._targets = rows
        self._row_of = {step: row for row, step in enumerate(steps.tolist())}
        return steps.astype(np.int64)

    def schedule_rows(self, panel: Panel, start: int, end: int) -> npt.NDArray[np.int64]:
        """``schedule`` for rows arriving one at a time: the averages carry over from the rows
        before, so each row costs one update per name (``kernel.strategy.IncrementalSchedule``)."""
        names = len(panel.instruments)
        if start == 0:
            self._carry = sma_cross_carry(names, self.slow)
            self._signals = np.zeros(names, dtype=np.int8)
        steps: list[int] = []
        targets = []
        close, valid, signals, carry = panel.close, panel.valid, self._signals, self._carry
        fast, slow = self.fast, self.slow
        for row in range(start, end):
            if sma_cross_step_nb(close, valid, fast, slow, row, carry, signals):
                steps.append(row)
                targets.append(
                    np.where(
                        signals != 0, np.where(signals > 0, self.weight / names, self._below(names)), np.nan
                    )
                )
        if not steps:
            self._row_of = {}
            return _NO_STEPS
        self._row_of = {step: index for index, step in enumerate(steps)}  # rows before start are done
        self._targets = np.array(targets)
        return np.array(steps, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        """Long ``weight / N`` on names crossing up, flat on names crossing down, NaN (no
        target) elsewhere."""
        row = self._row_of.get(view.step)
        if row is None:
            return None
        targets: npt.NDArray[np.float64] = self._targets[row]
        return targets
