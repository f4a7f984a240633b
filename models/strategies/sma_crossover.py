"""Moving-average crossover, long-only: hold ``weight / N`` of each name while its fast
SMA is above its slow SMA; flat otherwise. Decides only at steps where some name crosses."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.market import Panel
from kernel.strategy import MarketView
from models.features._factors_nb import sma_cross_state_nb

__all__ = ["SmaCrossover"]


class SmaCrossover:
    def __init__(
        self, *, fast: int = 10, slow: int = 30, weight: float = 0.95, strategy_id: str = "sma"
    ) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.strategy_id = strategy_id
        self.fast = fast
        self.slow = slow
        self.weight = weight
        self._state: npt.NDArray[np.int8] | None = None

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        state = sma_cross_state_nb(panel.close, panel.valid, self.fast, self.slow)
        self._state = state
        changed = np.zeros(state.shape[0], dtype=np.bool_)
        # A cross is a change of side after both averages exist (0 -> +-1 is not a cross).
        prev, cur = state[:-1], state[1:]
        changed[1:] = np.any((prev != 0) & (cur != prev), axis=1)
        return np.flatnonzero(changed).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        assert self._state is not None, "schedule() runs before decide()"
        state = self._state
        step = view.step
        names = state.shape[1]
        crossed = (state[step - 1] != 0) & (state[step] != state[step - 1])
        weights = np.full(names, np.nan)
        weights[crossed] = np.where(state[step][crossed] > 0, self.weight / names, 0.0)
        return weights
