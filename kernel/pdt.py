"""The US pattern-day-trader rule in the loop (``domain.markets.pdt``), when a run enables it.

At submission, an order on a US equity (``is_us_equity``) that would complete a day trade in
its session is refused when the account would then be a pattern day trader with equity below
the broker's minimum (``check_pdt``; the equity is the NAV at the submission step). Fills of
US equities update the day-trade counter (``KernelState.day_trades``, in the day snapshot).
On and after the broker's ``stop_day`` nothing is checked or counted.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.events import OrderFilled
from domain.instruments import Instrument
from domain.markets import DayTradeBook, PdtRule, check_pdt, completes_day_trade, pdt_window, record_fill
from domain.orders import Order
from kernel.markets import is_us_equity

__all__ = ["PdtGuard"]


class PdtGuard:
    """One broker's PDT rule over a run's US equities."""

    def __init__(self, rule: PdtRule, instruments: dict[int, Instrument], currency: str) -> None:
        self._rule = rule
        self._ids = frozenset(iid for iid, inst in instruments.items() if is_us_equity(inst))
        if self._ids and currency != rule.currency:
            raise ValueError(
                f"pdt: the rule's equity minimum is in {rule.currency}; this run settles in {currency}"
            )
        self._windows: dict[int, tuple[int, ...]] = {}

    def window(self, day: int) -> tuple[int, ...]:
        window = self._windows.get(day)
        if window is None:
            window = pdt_window(self._rule, day)
            if not window or window[-1] != day:
                raise ValueError(f"pdt: {day} is not a {self._rule.calendar} session")
            self._windows[day] = window
        return window

    def check(
        self, book: DayTradeBook, day: int, order: Order, position_raw: int, equity: Callable[[], int]
    ) -> str | None:
        """Why ``order`` (working in session ``day``) may not be sent, or None."""
        iid = order.instrument_id
        if iid not in self._ids or not self._rule.applies(day):
            return None
        if not completes_day_trade(book, day, iid, position_raw, order.side):
            return None
        return check_pdt(self._rule, book, self.window(day), day, iid, position_raw, order.side, equity())

    def on_fill(self, book: DayTradeBook, day: int, fill: OrderFilled, position_raw: int) -> DayTradeBook:
        """The counter after ``fill`` (``position_raw``: the position before it)."""
        if fill.instrument_id not in self._ids or not self._rule.applies(day):
            return book
        return record_fill(
            book,
            day,
            fill.instrument_id,
            position_raw,
            fill.side,
            fill.fill_qty_raw,
            keep_from=self.window(day)[0],
        )
