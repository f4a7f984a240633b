"""US pattern-day-trader (PDT) rule: a dated, per-broker account rule, and a day-trade counter.

Facts (``MARKET_RULES.md`` section 2.3, all S): under the old FINRA Rule 4210(f)(8)(B) a margin
customer who makes 4 or more day trades within 5 business days, when those day trades are more
than 6% of the customer's trades in the account over the same 5 days, is a pattern day trader,
and a pattern day trader must keep at least $25,000 of equity to day trade. SR-FINRA-2025-017
(SEC approval 2026-04-14) replaces the PDT designation and the $25,000 minimum with intraday
margin standards effective 2026-06-04; firms may phase in until 2027-10-20. So the rule is
per broker: ``PdtRule.stop_day`` is the first session on which the broker no longer enforces
it (default the FINRA effective day; a broker phasing in later sets a later day, up to
2027-10-20).

Counting (``record_fill``), implemented exactly as follows:

* A day trade is opening and then closing a position in the same security in the same
  session: buy-then-sell (long) or sell-short-then-buy-to-cover (short).
* Each fill is one execution. Against the position before it, a fill is *opening* (it moves
  the position away from zero), *closing* (it moves it toward zero) or both (a fill through
  zero, e.g. long 100 and sell 300: closes 100, then opens 200 short).
* Per instrument and session, an opening execution arms the record; a closing execution on an
  armed record counts one day trade and disarms it. Fills on the same side in a row therefore
  count once: buy, buy, sell = 1; buy, sell, sell = 1; buy, sell, buy, sell = 2; short, cover =
  1. A position held overnight and closed before any new opening that session is not a day
  trade (sell of an overnight long, then buy = 0); the FINRA rule excludes that case.
* Trades for the 6% condition are executions (opening + closing fills, a fill through zero
  counted once) of US equities in the window.
* The window is the last ``window_sessions`` business sessions of the calendar (XNYS) up to
  and including the order's session.

Check (``check_pdt``): an order that would complete a day trade (it closes part of a position
on an armed record of its session) is refused when, counting it, the window holds at least
``day_trades`` day trades that are more than ``min_share_e8`` of the window's trades, and the
account's equity is below ``min_equity_minor``. Reason:
``US_PDT: day_trades_5d=4, trades_5d=8, equity_minor=1000000, min_equity_minor=2500000,
stop_day=20260604`` (counts include the refused order). On and after ``stop_day`` the rule
does not apply.

Not modelled (chosen here): the PDT designation's persistence after the window (brokers keep
the flag until reset), day-trading buying power (4x the prior close's maintenance excess),
and the cash-account free-riding rules. Enabling the rule says the account is a margin account.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from domain.fixed import RATE_SCALE
from domain.markets._dated import date_to_day, day_to_date, validate_day
from domain.markets.calendars import CALENDARS, sessions

__all__ = [
    "FINRA_PDT_PHASE_IN_END",
    "FINRA_PDT_REPLACED",
    "DayTradeBook",
    "DayTradeRecord",
    "PdtRule",
    "check_pdt",
    "completes_day_trade",
    "pdt_window",
    "record_fill",
    "split_fill",
    "window_counts",
]

FINRA_PDT_REPLACED = 20260604  # SR-FINRA-2025-017 effective day (S)
FINRA_PDT_PHASE_IN_END = 20271020  # last day firms may keep the old rule (S)


class PdtRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[pdt]`` in the backtest TOML: the PDT rule as one broker enforces it."""

    broker: str = ""  # free text: whose phase-in this is
    stop_day: int = FINRA_PDT_REPLACED  # first session the broker no longer enforces PDT
    day_trades: int = 4  # day trades within the window that make a pattern day trader
    window_sessions: int = 5  # business days, including the order's session
    min_share_e8: int = 6_000_000  # day trades must be MORE than this share of trades (6%)
    min_equity_minor: int = 2_500_000  # $25,000.00
    currency: str = "USD"
    calendar: str = "XNYS"

    def __post_init__(self) -> None:
        try:
            validate_day(self.stop_day)
        except ValueError:
            raise ValueError(f"pdt.stop_day: {self.stop_day} is not a YYYYMMDD date") from None
        if not FINRA_PDT_REPLACED <= self.stop_day <= FINRA_PDT_PHASE_IN_END:
            raise ValueError(
                f"pdt.stop_day: {self.stop_day} is outside the FINRA phase-in "
                f"[{FINRA_PDT_REPLACED}, {FINRA_PDT_PHASE_IN_END}] (the rule is in force for every "
                "firm before the first day and for none after the last)"
            )
        if self.calendar not in CALENDARS:
            raise ValueError(f"pdt.calendar: {self.calendar!r} is not one of {', '.join(CALENDARS)}")
        if self.day_trades < 1:
            raise ValueError(f"pdt.day_trades: {self.day_trades} must be at least 1")
        if not 1 <= self.window_sessions <= 60:
            raise ValueError(f"pdt.window_sessions: {self.window_sessions} is outside [1, 60]")
        if not 0 <= self.min_share_e8 < RATE_SCALE:
            raise ValueError(f"pdt.min_share_e8: {self.min_share_e8} is outside [0, 1e8)")
        if self.min_equity_minor < 0:
            raise ValueError(f"pdt.min_equity_minor: {self.min_equity_minor} is negative")

    def applies(self, day: int) -> bool:
        """Whether the broker enforces the rule on session ``day``."""
        return day < self.stop_day


class DayTradeRecord(msgspec.Struct, frozen=True, array_like=True):
    """One instrument's executions in one session."""

    day: int
    instrument_id: int
    opening: int = 0  # executions that opened (moved the position away from zero)
    closing: int = 0  # executions that closed (toward zero); a fill through zero counts in both
    trades: int = 0  # executions (a fill through zero counted once)
    day_trades: int = 0
    armed: bool = False  # an opening execution waits for a closing one


class DayTradeBook(msgspec.Struct, frozen=True, kw_only=True):
    """Day-trade records of the sessions still in the window, sorted by (day, instrument)."""

    records: tuple[DayTradeRecord, ...] = ()

    def get(self, day: int, instrument_id: int) -> DayTradeRecord | None:
        for record in self.records:
            if record.day == day and record.instrument_id == instrument_id:
                return record
        return None


def split_fill(position_raw: int, side: int, qty_raw: int) -> tuple[int, int]:
    """``(closed, opened)`` quantities of a fill of ``side`` x ``qty_raw`` against ``position_raw``."""
    if side not in (1, -1):
        raise ValueError(f"side must be 1 or -1, got {side}")
    if qty_raw <= 0:
        raise ValueError(f"fill quantity must be positive, got {qty_raw}")
    if position_raw == 0 or (position_raw > 0) == (side > 0):
        return 0, qty_raw
    closed = min(qty_raw, abs(position_raw))
    return closed, qty_raw - closed


def record_fill(
    book: DayTradeBook,
    day: int,
    instrument_id: int,
    position_raw: int,
    side: int,
    qty_raw: int,
    *,
    keep_from: int = 0,
) -> DayTradeBook:
    """The book after one fill (``position_raw``: the position before it); records of days
    before ``keep_from`` (the window's first session) are dropped."""
    closed, opened = split_fill(position_raw, side, qty_raw)
    old = book.get(day, instrument_id) or DayTradeRecord(day, instrument_id)
    day_trades, armed = old.day_trades, old.armed
    if closed and armed:
        day_trades, armed = day_trades + 1, False
    if opened:
        armed = True
    new = DayTradeRecord(
        day,
        instrument_id,
        old.opening + (1 if opened else 0),
        old.closing + (1 if closed else 0),
        old.trades + 1,
        day_trades,
        armed,
    )
    key = (day, instrument_id)
    kept = [r for r in book.records if r.day >= keep_from and (r.day, r.instrument_id) != key]
    kept.append(new)
    kept.sort(key=lambda r: (r.day, r.instrument_id))
    return DayTradeBook(records=tuple(kept))


def completes_day_trade(
    book: DayTradeBook, day: int, instrument_id: int, position_raw: int, side: int
) -> bool:
    """Whether an order of ``side`` sent now would complete a day trade in session ``day``
    (it closes part of ``position_raw`` after an opening execution of the session)."""
    if position_raw == 0 or (position_raw > 0) == (side > 0):
        return False
    record = book.get(day, instrument_id)
    return record is not None and record.armed


def window_counts(book: DayTradeBook, window: tuple[int, ...]) -> tuple[int, int]:
    """``(day_trades, trades)`` over the sessions in ``window``, all instruments."""
    days = set(window)
    day_trades = trades = 0
    for record in book.records:
        if record.day in days:
            day_trades += record.day_trades
            trades += record.trades
    return day_trades, trades


def pdt_window(rule: PdtRule, day: int) -> tuple[int, ...]:
    """The last ``rule.window_sessions`` sessions of ``rule.calendar`` up to and including ``day``."""
    span = 7 * rule.window_sessions // 5 + 14
    while True:
        start = date_to_day(day_to_date(day) - dt.timedelta(days=span))
        found = sessions(rule.calendar, start, day)
        if len(found) >= rule.window_sessions or span > 400:
            return tuple(found[-rule.window_sessions :])
        span *= 2


def check_pdt(
    rule: PdtRule,
    book: DayTradeBook,
    window: tuple[int, ...],
    day: int,
    instrument_id: int,
    position_raw: int,
    side: int,
    equity_minor: int,
) -> str | None:
    """Why an order of ``side`` on ``instrument_id`` may not be sent in session ``day``
    (``window``: ``pdt_window(rule, day)``), or None."""
    if not rule.applies(day) or not completes_day_trade(book, day, instrument_id, position_raw, side):
        return None
    day_trades, trades = window_counts(book, window)
    day_trades, trades = day_trades + 1, trades + 1  # counting this order's execution
    pattern = day_trades >= rule.day_trades and day_trades * RATE_SCALE > rule.min_share_e8 * trades
    if not pattern or equity_minor >= rule.min_equity_minor:
        return None
    return (
        f"US_PDT: day_trades_5d={day_trades}, trades_5d={trades}, equity_minor={equity_minor}, "
        f"min_equity_minor={rule.min_equity_minor}, stop_day={rule.stop_day}"
    )
