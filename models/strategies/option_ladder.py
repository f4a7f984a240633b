"""Options by target weight: long calls, short puts, rolled off before expiry.

Every ``every`` sessions (from the first), each option of the universe whose expiry is more than
``close_days`` calendar days away gets ``call_weight`` (calls) or ``put_weight`` (puts; negative
= short) of the NAV; options closer to expiry (or past it) get 0, so positions are closed before
they expire. Other instruments get no target. The risk policy's greek limits
(``[risk.greeks.*]``) then decide how much of that the book may hold.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

from domain.market import Panel
from kernel.strategy import MarketView
from models.plugins import number_param, whole_param

__all__ = ["OptionLadder"]


def _date(day: int) -> dt.date:
    return dt.date(day // 10000, day // 100 % 100, day % 100)


class OptionLadder:
    def __init__(
        self,
        *,
        call_weight: float = 0.04,
        put_weight: float = -0.03,
        every: int = 5,
        close_days: int = 6,
        strategy_id: str = "option-ladder",
    ) -> None:
        for name, weight in (("call_weight", call_weight), ("put_weight", put_weight)):
            number_param(name, weight, -1.0, 1.0)
        whole_param("every", every, 1)  # sessions
        whole_param("close_days", close_days, 0)
        self.strategy_id = strategy_id
        self.call_weight = call_weight
        self.put_weight = put_weight
        self.every = every
        self.close_days = close_days

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        if not any(inst.is_option for inst in panel.instruments):
            raise ValueError(f"{self.strategy_id}: the data set has no options")
        starts = np.flatnonzero(np.r_[True, panel.day[1:] != panel.day[:-1]])
        ends = np.r_[starts[1:] - 1, panel.steps - 1]  # each session's last step (its close)
        steps: npt.NDArray[np.int64] = ends[:: self.every].astype(np.int64)
        return steps

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        today = _date(int(view.panel.day[view.step]))
        weights = []
        for inst in view.panel.instruments:
            if not inst.is_option:
                weights.append(np.nan)
            elif (_date(inst.expiry_day) - today).days <= self.close_days:
                weights.append(0.0)
            else:
                weights.append(self.call_weight if inst.right == "call" else self.put_weight)
        return np.array(weights, dtype=np.float64)
