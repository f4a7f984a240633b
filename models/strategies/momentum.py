"""Cross-sectional momentum rotation: at each month's last step, hold the ``top`` names by
return over ``lookback`` steps (skipping the most recent ``skip``), equally weighted."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import numpy.typing as npt

from domain.market import Panel
from kernel.strategy import MarketView
from models.plugins import number_param

__all__ = ["MomentumRotation"]


class MomentumRotation:
    def __init__(
        self,
        *,
        lookback: int = 126,
        skip: int = 21,
        top: int = 10,
        weight: float = 0.95,
        strategy_id: str = "momentum",
    ) -> None:
        for name, value in (("lookback", lookback), ("skip", skip), ("top", top)):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not 0 <= skip < lookback:
            raise ValueError(f"need 0 <= skip < lookback, got skip={skip}, lookback={lookback}")
        if top <= 0:
            raise ValueError(f"top must be positive, got {top}")
        number_param("weight", weight, 0.0, 1.0, above_low=True)  # "1" or true: refused, not run
        self.strategy_id = strategy_id
        self.lookback = lookback
        self.skip = skip
        self.top = top
        self.weight = weight

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Last step of each calendar month, once ``lookback`` steps of history exist."""
        month = panel.day // 100
        month_end = np.ones(panel.steps, dtype=np.bool_)
        month_end[:-1] = month[1:] != month[:-1]
        month_end[: self.lookback] = False
        return np.flatnonzero(month_end).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        closes = view.history("last_close", self.lookback + 1)
        if closes.shape[0] <= self.lookback:
            return None
        start = closes[0].astype(np.float64)
        end = closes[-1 - self.skip].astype(np.float64)
        eligible = (start > 0) & (end > 0) & view.valid()
        score = np.where(
            eligible, np.log(np.where(eligible, end, 1.0) / np.where(eligible, start, 1.0)), -np.inf
        )
        count = min(self.top, int(eligible.sum()))
        weights = np.zeros(score.shape[0])
        if count == 0:
            return weights
        # Stable sort on (-score, column) so ties break by column, deterministically.
        chosen = np.lexsort((np.arange(score.shape[0]), -score))[:count]
        weights[chosen] = self.weight / count
        return weights
