"""Daily settlement of futures in the kernel (``domain/futures.py`` has the arithmetic).

Instruments of a daily-settled asset class (``"future"``) are booked without exchanging
notional for cash (``margined_fill_postings``); at each session's close every open position is
marked to that session's **settlement price** and the variation margin moves cash
(``FutureSettled`` + ``LedgerPosted``), after the short-borrow accrual and before ``DayClosed``.

Where the settlement price comes from is explicit, per run with per-symbol overrides
(``[futures]`` in the backtest TOML):

* ``"dataset"`` (the default): the data set's ``settlements.parquet`` row for (day,
  instrument) -- the exchange's published price. A run whose data lacks a row for a session in
  which the instrument traded is refused before it starts, naming the symbol and the day.
* ``"close"``: the instrument's last bar close of the session.
* ``"vwap_day"``: volume-weighted average of the session's bar closes (China commodity
  exchanges settle at the day's VWAP of trades; bars approximate it by close x volume).
* ``"vwap_last_minutes"``: the same over the bars that close within the last ``last_minutes``
  minutes (default 60) before the instrument's last bar of the session (CFFEX index futures:
  VWAP of the last hour).

The VWAPs round half-even to the tick. A session in which the instrument has bars but no
volume in the window settles at its last close, and the event's ``method`` says so
(``"vwap_day(no volume: close)"``). A session without a bar of the instrument settles nothing
(the reference carries over).

``crypto_future`` is not daily-settled (``domain.futures.DAILY_SETTLED_CLASSES``), and a run with
daily-settled futures refuses ``perp_margin`` (its margin check values positions at notional).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np

from domain.events import Event, FutureSettled, OrderFilled, PostingRecord
from domain.futures import SETTLEMENT_METHODS, is_daily_settled, settlement_vwap_raw, variation_postings
from domain.instruments import Instrument
from domain.ledger import Position, fill_postings, margined_fill_postings
from domain.market import Panel

__all__ = ["FuturesBook", "FuturesConfig"]

_NS_PER_MINUTE = 60_000_000_000


class FuturesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[futures]`` in the backtest TOML: how each future's settlement price is found."""

    settlement: str = "dataset"  # one of SETTLEMENT_METHODS
    last_minutes: int = 60  # the window of "vwap_last_minutes"
    by_symbol: dict[str, str] = {}  # per-symbol method; overrides ``settlement``

    def __post_init__(self) -> None:
        for name, method in [("settlement", self.settlement), *self.by_symbol.items()]:
            if method not in SETTLEMENT_METHODS:
                key = "futures.settlement" if name == "settlement" else f"futures.by_symbol.{name}"
                raise ValueError(f"{key}: method must be one of {SETTLEMENT_METHODS}, got {method!r}")
        if not 1 <= self.last_minutes <= 1440:
            raise ValueError(f"futures.last_minutes: {self.last_minutes} is outside [1, 1440]")

    def method(self, instrument: Instrument) -> str:
        return self.by_symbol.get(instrument.symbol, self.settlement)


PostFn = Callable[[int, str, list[PostingRecord], int], None]  # (ts, memo, postings, instrument)
AppendFn = Callable[[Event], int]


class FuturesBook:
    """The run's daily-settled futures, their settlement methods and prices."""

    def __init__(
        self,
        panel: Panel,
        instruments: dict[int, Instrument],
        columns: dict[int, int],
        config: FuturesConfig | None,
        *,
        perp_margin: bool = False,
    ) -> None:
        self._panel = panel
        self._columns = columns
        self._instruments = {iid: inst for iid, inst in instruments.items() if is_daily_settled(inst)}
        self.active = bool(self._instruments)
        if self.active and perp_margin:  # the margin check values every position at notional
            raise ValueError(
                "perp_margin (liquidation) is not modelled with daily-settled futures in the run"
            )
        config = config if config is not None else FuturesConfig()
        symbols = {inst.symbol for inst in self._instruments.values()}
        unknown = sorted(set(config.by_symbol) - symbols)
        if unknown:
            raise ValueError(f"futures.by_symbol: {unknown} are not daily-settled futures of this data set")
        self._methods = {iid: config.method(inst) for iid, inst in self._instruments.items()}
        self._window_ns = config.last_minutes * _NS_PER_MINUTE
        self._minutes = config.last_minutes
        rows = zip(
            panel.settle_day.tolist(),
            panel.settle_instrument_id.tolist(),
            panel.settle_px_raw.tolist(),
            strict=True,
        )
        self._published = {(day, iid): px for day, iid, px in rows}
        for iid, method in sorted(self._methods.items()):
            if method == "dataset":
                self._check_published(iid)

    def _check_published(self, iid: int) -> None:
        inst = self._instruments[iid]
        col = self._columns[iid]
        traded = np.unique(self._panel.day[self._panel.valid[:, col]]).tolist()
        missing = [day for day in traded if (day, iid) not in self._published]
        if missing:
            raise ValueError(
                f"{inst.symbol}: no settlement price in the data set (settlements.parquet) for "
                f"{len(missing)} session(s) it traded, first {missing[0]}; export them with "
                "`tape export --settlements FILE` (a CSV of symbol,date,settle) or set [futures] "
                'settlement = "close" (or "vwap_day", "vwap_last_minutes"; per symbol in '
                "[futures.by_symbol])"
            )

    def fill_postings(self, position: Position, fill: OrderFilled) -> tuple[list[PostingRecord], Position]:
        """A future's fill exchanges no notional; anything else books as before."""
        if fill.instrument_id in self._instruments:
            return margined_fill_postings(position, fill)
        return fill_postings(position, fill)

    def settle(
        self, step: int, positions: dict[int, Position], post: PostFn, append: AppendFn
    ) -> dict[int, int]:
        """Mark every held future to this session's settlement price at the close ``step``;
        the settlement price of each position settled, by instrument (sorted)."""
        panel = self._panel
        settled_px: dict[int, int] = {}
        day = int(panel.day[step])
        ts_ns = int(panel.ts_ns[step])
        for iid, position in sorted(positions.items()):
            inst = self._instruments.get(iid)
            if inst is None:
                continue
            found = self._settle_price(iid, step, day)
            if found is None:
                continue
            px, method = found
            postings, settled_position, settled = variation_postings(inst, position, px)
            variation = settled - position.cost_minor
            append(
                FutureSettled(
                    ts_ns=ts_ns,
                    day=day,
                    instrument_id=iid,
                    qty_raw=position.qty_raw,
                    settle_px_raw=px,
                    method=method,
                    reference_value_minor=position.cost_minor,
                    settled_value_minor=settled,
                    variation_minor=variation,
                    currency=inst.currency,
                )
            )
            if postings:
                memo = f"variation margin {inst.symbol} {day} settle_px_raw={px} ({method})"
                post(ts_ns, memo, postings, iid)
            positions[iid] = settled_position
            settled_px[iid] = px
        return settled_px

    def _settle_price(self, iid: int, step: int, day: int) -> tuple[int, str] | None:
        """The session's settlement price and the method used; None when it did not trade."""
        panel = self._panel
        col = self._columns[iid]
        first = int(np.searchsorted(panel.day, day, side="left"))
        valid = np.flatnonzero(panel.valid[first : step + 1, col]) + first
        if valid.size == 0:
            return None
        method = self._methods[iid]
        last_close = int(panel.close[valid[-1], col])
        if method == "dataset":
            return self._published[(day, iid)], method
        if method == "close":
            return last_close, method
        if method == "vwap_last_minutes":
            method = f"vwap_last_minutes={self._minutes}"
            start_ns = int(panel.ts_ns[valid[-1]]) - self._window_ns
            valid = valid[panel.ts_ns[valid] > start_ns]
        prices = panel.close[valid, col].tolist()
        volumes = panel.volume[valid, col].tolist()
        px = settlement_vwap_raw(prices, volumes, self._instruments[iid].tick_raw)
        if px <= 0:
            return last_close, f"{method}(no volume: close)"
        return px, method
