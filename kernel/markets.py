"""Market rules the kernel enforces around its orders, from ``domain.markets``.

China A-shares (instruments on XSHG/XSHE): shares bought in a session cannot be sold in
it (T+1), order sizes follow the board's lot rule, and every fill pays the dated statutory
fees (stamp duty on sells, transfer, handling and CSRC fees) as ledger postings in the
fill's transaction (rates from ``CnFeeTables``: the built-in dated tables, or those with a
config's ``[cn_fees]`` rows merged in front). US equities (venue XNYS/XNAS/ARCX/XASE/BATS/IEXG,
asset class equity or etf) pay the SEC Section 31 fee and the FINRA TAF on sells, as postings in
the fill's transaction, unless the run turns ``us_regulatory_fees`` off; the dated tables start in
2023/2024 and a run whose first traded day (``first_day``: the window's start, not the
data set's) is earlier fails at construction instead of guessing older rates.
A run whose A-shares' fee tables do not cover the first session it trades is refused before it
starts (``cn_fee_gap``, called by the composition root), by the same lookup each fill prices with.
Other markets pass through unchanged. Every refusal is a reason string with a rule code and the
numbers; the loop journals it as ``OrderRejected``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.events import OrderFilled, PostingRecord
from domain.instruments import Instrument
from domain.ledger import cash_account
from domain.market import Panel
from domain.markets import (
    CN_FEE_TABLES,
    FINRA_TAF,
    SEC_SECTION31,
    Board,
    CnFees,
    CnFeeTables,
    RuleNotDefined,
    SellableBook,
    apply_buy_fill,
    apply_sell_fill,
    check_buy_qty,
    check_sell,
    check_sell_qty,
    cn_exchange_fees,
    cn_lot_rule,
    finra_taf_minor,
    release_sell,
    reserve_sell,
    roll_to,
    sec_fee_minor,
    sellable,
)
from domain.orders import Order

__all__ = [
    "CN_VENUES",
    "US_EQUITY_VENUES",
    "MarketRules",
    "is_cn_a_share",
    "is_us_equity",
    "next_a_share_steps",
]

# MIC codes, and the exchange names the lake's A-share sources use for the same venues.
CN_VENUES = frozenset({"XSHG", "XSHE", "SSE", "SZSE", "BJSE"})  # BJSE: Beijing ("BSE" is Bombay's alias)
US_EQUITY_VENUES = frozenset({"XNYS", "XNAS", "ARCX", "XASE", "BATS", "IEXG"})
_US_FEE_CLASSES = frozenset({"equity", "etf"})
_NAMED_AT_MOST = 10  # instruments a refusal names before it counts the rest


def is_cn_a_share(instrument: Instrument) -> bool:
    """A tradable instrument on SSE/SZSE (an index on them is not traded, so not checked)."""
    return instrument.venue in CN_VENUES and instrument.asset_class != "index"


def next_a_share_steps(panel: Panel) -> npt.NDArray[np.int64] | None:
    """For a data set holding A-shares beside instruments of other venues (US closes, crypto
    hours on the same day): per step, the next step after it with a bar on an A-share venue (an
    index there counts: it trades when the exchange does), or -1. An A-share order sent at a
    step works in that step's day: the A-share session is over at the day's last A-share bar,
    and a day on which only the other markets trade (a China holiday) is no A-share session.
    ``None`` when the data set has no A-share or only A-share venues: there the day's last
    step ends the session. Rows of a queue source that have not arrived are unknown, so such
    a run does not use this (the caller decides)."""
    on_cn = np.array([inst.venue in CN_VENUES for inst in panel.instruments], dtype=np.bool_)
    if on_cn.all() or not any(is_cn_a_share(inst) for inst in panel.instruments):
        return None
    steps = np.flatnonzero(panel.valid[:, on_cn].any(axis=1))
    position = np.searchsorted(steps, np.arange(panel.steps), side="right")
    padded: npt.NDArray[np.int64] = np.append(steps, -1).astype(np.int64)
    return padded[position]


def _named(symbols: list[str]) -> str:
    """Instruments a refusal names: the first few, then how many more."""
    shown = ", ".join(symbols[:_NAMED_AT_MOST])
    more = len(symbols) - _NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


def is_us_equity(instrument: Instrument) -> bool:
    """Sales that pay SEC Section 31 and FINRA TAF: US exchange-listed equities and ETFs."""
    return instrument.venue in US_EQUITY_VENUES and instrument.asset_class in _US_FEE_CLASSES


class MarketRules:
    """Pre-trade checks, T+1 bookkeeping and statutory fee postings per instrument."""

    def __init__(
        self,
        instruments: dict[int, Instrument],
        fee_tables: CnFeeTables = CN_FEE_TABLES,
        *,
        us_regulatory_fees: bool = True,
        first_day: int = 0,
    ) -> None:
        self._fee_tables = fee_tables
        self._us_qty_digits = {
            iid: inst.qty_digits
            for iid, inst in instruments.items()
            if us_regulatory_fees and is_us_equity(inst)
        }
        if self._us_qty_digits and first_day:
            try:
                SEC_SECTION31.at(first_day)
                FINRA_TAF.at(first_day)
            except RuleNotDefined as error:
                raise ValueError(
                    f"US regulatory fees are not defined for a run starting {first_day} ({error}); "
                    "older SEC Section 31 / FINRA TAF rates are not guessed: set us_regulatory_fees = "
                    "false in the backtest config to run without them"
                ) from None
        self._boards: dict[int, Board] = {}
        self._symbols: dict[int, str] = {}
        for iid, inst in instruments.items():
            if not is_cn_a_share(inst):
                if inst.board and inst.asset_class != "index":
                    venues = ", ".join(sorted(CN_VENUES))
                    raise ValueError(
                        f"{inst.symbol}: A-share board {inst.board!r} on venue {inst.venue!r}, not an "
                        f"A-share venue ({venues}): it would trade without A-share rules"
                    )
                continue
            if not inst.board:
                raise ValueError(
                    f"{inst.symbol}: an A-share instrument needs its board (main, star, chinext, bse, "
                    "fund): give it with tape ingest metadata (a board column; with lot = 100 on the "
                    "main board and ChiNext) and export the data set again"
                )
            self._boards[iid] = Board(inst.board)
            self._symbols[iid] = inst.symbol

    def applies(self, instrument_id: int) -> bool:
        return instrument_id in self._boards

    def _book(self, books: dict[int, SellableBook], instrument_id: int, day: int) -> SellableBook:
        book = books.get(instrument_id)
        return SellableBook(day=day) if book is None else roll_to(book, day)

    def check(self, books: dict[int, SellableBook], day: int, order: Order) -> str | None:
        """Why the order may not be sent on session ``day`` (None: it may)."""
        board = self._boards.get(order.instrument_id)
        if board is None:
            return None
        rule = cn_lot_rule(board, day)
        if order.side > 0:
            return check_buy_qty(rule, order.qty_raw)
        book = self._book(books, order.instrument_id, day)
        return check_sell(book, day, order.qty_raw) or check_sell_qty(rule, order.qty_raw, sellable(book))

    def on_accepted(self, books: dict[int, SellableBook], day: int, order: Order) -> None:
        if order.instrument_id in self._boards and order.side < 0:
            book = self._book(books, order.instrument_id, day)
            books[order.instrument_id] = reserve_sell(book, day, order.qty_raw)

    def on_closed(self, books: dict[int, SellableBook], day: int, order: Order) -> None:
        """An order ended (cancelled, expired) with ``leaves_qty_raw`` unfilled. The book may
        already be on a later session (an A-share order sent after its close in a data set of
        several markets reserved on the next A-share day): it is released there."""
        if order.instrument_id in self._boards and order.side < 0 and order.leaves_qty_raw:
            held = books.get(order.instrument_id)
            day = day if held is None else max(day, held.day)
            book = self._book(books, order.instrument_id, day)
            books[order.instrument_id] = release_sell(book, day, order.leaves_qty_raw)

    def on_fill(self, books: dict[int, SellableBook], day: int, fill: OrderFilled) -> None:
        if fill.instrument_id not in self._boards:
            return
        book = self._book(books, fill.instrument_id, day)
        if fill.side > 0:
            books[fill.instrument_id] = apply_buy_fill(book, day, fill.fill_qty_raw)
        else:
            books[fill.instrument_id] = apply_sell_fill(book, day, fill.fill_qty_raw)

    def _cn_fees(self, instrument_id: int, side: int, day: int, notional_minor: int) -> CnFees:
        """The statutory fee lines of an A-share fill; ``RuleNotDefined`` where the run's fee
        tables do not cover ``day``. The one lookup both each fill and ``cn_fee_gap`` make."""
        return cn_exchange_fees(
            side,
            day,
            notional_minor,
            is_fund=self._boards[instrument_id] is Board.FUND,
            tables=self._fee_tables,
        )

    def cn_fee_gap(self, panel: Panel, start_step: int) -> str | None:
        """Why the run's A-shares could not pay their statutory fees from the first session they
        can trade in it (None: they can). That session is an instrument's first bar from
        ``start_step`` on, or ``start_step``'s for one with none there yet (rows still to
        arrive); a dated table holds from its first entry on, so covering that day covers
        every later one. Each A-share prices a buy and a sell of no notional on its day through
        the lookup its fills make (``_cn_fees``): the check and the fills cannot disagree."""
        traded = panel.valid[start_step:]
        days = panel.day[start_step:]
        needed: dict[str, list[str]] = {}  # the lookup's refusal -> the instruments it refuses
        earliest = 0
        for column, inst in enumerate(panel.instruments):
            if inst.instrument_id not in self._boards:
                continue
            bars = np.flatnonzero(traded[:, column])
            day = int(days[bars[0]] if bars.size else days[0])
            for side in (1, -1):
                try:
                    self._cn_fees(inst.instrument_id, side, day, 0)
                except RuleNotDefined as error:
                    needed.setdefault(str(error), []).append(self._symbols[inst.instrument_id])
                    earliest = min(earliest or day, day)
                    break
        if not needed:
            return None
        groups = "; ".join(f"{_named(symbols)} ({reason})" for reason, symbols in needed.items())
        return (
            f"the A-share fee rates are not defined on the first session the run trades these "
            f"A-shares: {groups}. No [cn_fees] row of the config covers them: add a [cn_fees] table "
            f"with a row dated on or before {earliest}, or start the run's [window] where the fee "
            "tables hold (docs/markets.md); [cn_fees] rates are your values, not verified by the "
            "project"
        )

    def fee_total(self, day: int, fill: OrderFilled) -> int:
        """The statutory fees of a fill (what ``fee_postings`` takes from cash), minor units."""
        return sum(p.amount_minor for p in self.fee_postings(day, fill) if p.amount_minor > 0)

    def fee_postings(self, day: int, fill: OrderFilled) -> list[PostingRecord]:
        """Statutory fee lines of a fill as postings (cash out, expense in), each line rounded."""
        if fill.instrument_id in self._us_qty_digits:
            return self._us_fee_postings(day, fill)
        if fill.instrument_id not in self._boards:
            return []
        try:
            fees = self._cn_fees(fill.instrument_id, fill.side, day, fill.notional_minor)
        except RuleNotDefined as error:
            raise RuleNotDefined(
                f"fill {fill.order_id} on {day}: {error}. The built-in A-share fee tables do not "
                "cover this day: supply the rates as [cn_fees] rows in the backtest config "
                "(docs/markets.md); they are your values, not verified by the project"
            ) from None
        ccy = fill.currency
        lines = [
            ("stamp_duty", fees.stamp_duty_minor),
            ("transfer_fee", fees.transfer_minor),
            ("handling_fee", fees.handling_minor),
            ("regulatory_fee", fees.regulatory_minor),
        ]
        postings = [PostingRecord(f"expenses:{name}:{ccy}", ccy, amount) for name, amount in lines if amount]
        if postings:
            postings.append(PostingRecord(cash_account(ccy), ccy, -fees.total_minor))
        return postings

    def _us_fee_postings(self, day: int, fill: OrderFilled) -> list[PostingRecord]:
        """SEC Section 31 fee and FINRA TAF on a sell fill (rounded up to the cent); buys pay none."""
        ccy = fill.currency
        qty_digits = self._us_qty_digits[fill.instrument_id]
        lines = [
            ("sec_fee", sec_fee_minor(fill.side, day, fill.notional_minor)),
            ("finra_taf", finra_taf_minor(fill.side, day, fill.fill_qty_raw, qty_digits)),
        ]
        postings = [PostingRecord(f"expenses:{name}:{ccy}", ccy, amount) for name, amount in lines if amount]
        if postings:
            postings.append(PostingRecord(cash_account(ccy), ccy, -sum(amount for _, amount in lines)))
        return postings
