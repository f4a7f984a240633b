"""Two small A-share strategies that walk into the market rules on purpose (issue 3).

``LimitUpChase`` (daily or intraday bars): when a session closes at its limit-up price, it
targets a long position for the next session; its order meets that session's bars, and a bar
locked at limit-up cannot fill it (the day order expires with ``CN_LIMIT_LOCKED``). With
``limit_ticks`` it sends limit buys priced ``limit_ticks`` ticks above the next session's
limit-up (computed from the closing price; ``limit_ticks >= 1`` is refused with
``CN_PRICE_LIMIT``, ``0`` is a valid order at the limit). It exits at the next close that is
not a limit-up close.

``IntradayRoundTrip`` (intraday bars): every ``every``-th session it buys at the session's
bar ``buy_bar``, tries to sell the same shares at bar ``sell_bar`` of that session (refused:
``CN_T_PLUS_1``), and sells at bar ``exit_bar`` of the next session (accepted, stamp duty).

Both decide from bars up to the decision step only (the schedule depends on session starts
and closes already seen).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.market import Panel
from domain.markets import cn_instrument_limits
from kernel.markets import CN_VENUES
from kernel.strategy import MarketView
from models.plugins import number_param

__all__ = ["IntradayRoundTrip", "LimitUpChase"]


def _check_weight(weight: float) -> None:
    number_param("weight", weight, 0.0, 1.0, above_low=True)


def _session_starts(panel: Panel) -> npt.NDArray[np.int64]:
    day = panel.day
    starts = np.ones(panel.steps, dtype=np.bool_)
    starts[1:] = day[1:] != day[:-1]
    return np.flatnonzero(starts).astype(np.int64)


class LimitUpChase:
    def __init__(
        self, *, weight: float = 0.5, limit_ticks: int | None = None, strategy_id: str = "limit_up_chase"
    ) -> None:
        _check_weight(weight)
        if limit_ticks is not None and limit_ticks < 0:
            raise ValueError(f"limit_ticks must be >= 0 (ticks above the limit-up), got {limit_ticks}")
        self.strategy_id = strategy_id
        self.weight = weight
        self.limit_ticks = limit_ticks
        self._rows: dict[int, npt.NDArray[np.float64]] = {}
        self._limit_px: dict[int, dict[int, int]] = {}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Session-end steps where some name closed at its limit-up, and the session end after
        each (to exit). Limits come from the previous session's close, as the venue's do."""
        columns = [
            (col, inst)
            for col, inst in enumerate(panel.instruments)
            if inst.venue in CN_VENUES and inst.board and inst.asset_class != "index"
        ]
        if not columns:
            raise ValueError(f"{self.strategy_id}: needs A-share instruments (venue XSHG/XSHE with a board)")
        ends = np.flatnonzero(panel.day_end_mask())
        closes = panel.last_close[ends].tolist()
        valid = panel.valid[ends].tolist()
        days = panel.day[ends].tolist()
        names = len(panel.instruments)
        self._rows, self._limit_px = {}, {}
        previous: set[int] = set()
        for d in range(1, len(ends)):
            day = int(days[d])
            next_day = int(days[d + 1]) if d + 1 < len(ends) else day  # the session it buys in
            signalled: dict[int, int] = {}  # column -> next session's limit-up (from today's close)
            for col, inst in columns:
                ref, close = int(closes[d - 1][col]), int(closes[d][col])
                if ref <= 0 or not valid[d][col]:
                    continue
                today = cn_instrument_limits(inst, day, ref, panel.holidays)  # the data set's
                if today is None or close != today.up_raw:
                    continue
                following = cn_instrument_limits(inst, next_day, close, panel.holidays)
                signalled[col] = 0 if following is None else following.up_raw
            if not signalled and not previous:
                continue
            row = np.full(names, np.nan)
            for col in previous - set(signalled):
                row[col] = 0.0
            for col in signalled:
                row[col] = self.weight / len(signalled)
            step = int(ends[d])
            self._rows[step] = row
            if self.limit_ticks is not None:
                self._limit_px[step] = {
                    panel.instruments[col].instrument_id: up
                    + self.limit_ticks * panel.instruments[col].tick_raw
                    for col, up in signalled.items()
                    if up
                }
            previous = set(signalled)
        return np.array(sorted(self._rows), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return self._rows.get(view.step)

    def limit_prices(self, view: MarketView) -> dict[int, int] | None:
        """Limit buys ``limit_ticks`` ticks above the next session's limit-up (None: market)."""
        return self._limit_px.get(view.step)


class IntradayRoundTrip:
    def __init__(
        self,
        *,
        weight: float = 0.5,
        buy_bar: int = 30,
        sell_bar: int = 200,
        exit_bar: int = 10,
        every: int = 5,
        strategy_id: str = "intraday_round_trip",
    ) -> None:
        _check_weight(weight)
        if not 0 <= buy_bar < sell_bar:
            raise ValueError(f"need 0 <= buy_bar < sell_bar, got buy_bar={buy_bar}, sell_bar={sell_bar}")
        if exit_bar < 0 or every < 1:
            raise ValueError(f"need exit_bar >= 0 and every >= 1, got exit_bar={exit_bar}, every={every}")
        self.strategy_id = strategy_id
        self.weight = weight
        self.buy_bar, self.sell_bar, self.exit_bar, self.every = buy_bar, sell_bar, exit_bar, every
        self._targets: dict[int, float] = {}
        self._names = 0

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Bar ``buy_bar`` and ``sell_bar`` of every ``every``-th session (counted from the
        first), bar ``exit_bar`` of the session after each; bars that do not exist are skipped."""
        starts = _session_starts(panel).tolist()
        ends = [*starts[1:], panel.steps]
        targets: dict[int, float] = {}
        for session in range(0, len(starts), self.every):
            first, end = starts[session], ends[session]
            for offset, weight in ((self.buy_bar, self.weight), (self.sell_bar, 0.0)):
                if first + offset < end:
                    targets[first + offset] = weight
            if session + 1 < len(starts) and starts[session + 1] + self.exit_bar < ends[session + 1]:
                targets[starts[session + 1] + self.exit_bar] = 0.0
        self._targets = targets
        self._names = len(panel.instruments)
        return np.array(sorted(targets), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        weight = self._targets.get(view.step)
        if weight is None:
            return None
        return np.full(self._names, weight / self._names)
