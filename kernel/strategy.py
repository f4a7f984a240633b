"""The strategy port: strategies see cross-sections and return target weights.

A strategy names the steps at which it wants to decide (``schedule``) and, at each of
them, sees only data up to and including that step through a ``MarketView``. Weights are
floats (strategy math); the kernel turns them into integers (1e-8) at this edge with
half-even rounding and journals them.

``schedule`` may scan the whole panel with vectorised, causal features (a rolling mean at
step t uses bars <= t). The kernel cannot enforce causality of a schedule, so every
strategy has a prefix test: deciding on a truncated panel gives the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.market import Panel

__all__ = ["MarketView", "Strategy"]


@dataclass(frozen=True, eq=False)
class MarketView:
    """Read-only view of the panel up to and including ``step``."""

    panel: Panel
    step: int

    @property
    def ts_ns(self) -> int:
        return int(self.panel.ts_ns[self.step])

    def history(self, field: str, lookback: int) -> npt.NDArray[np.int64]:
        """The last ``lookback`` rows (<= step) of a raw integer field, shape (rows, N)."""
        if field not in ("open", "high", "low", "close", "volume", "last_close"):
            raise ValueError(f"unknown bar field {field!r}")
        array: npt.NDArray[np.int64] = getattr(self.panel, field)
        start = max(0, self.step + 1 - lookback)
        view = array[start : self.step + 1]
        view.flags.writeable = False
        return view

    def valid(self) -> npt.NDArray[np.bool_]:
        """Which instruments have a bar at this step."""
        row: npt.NDArray[np.bool_] = self.panel.valid[self.step]
        return row


class Strategy(Protocol):
    strategy_id: str

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Sorted, unique step indices at which ``decide`` is called."""
        ...

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        """Target weights over the universe (length N, fractions of NAV), or None to hold."""
        ...
