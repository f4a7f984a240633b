"""China A-share daily price limits (涨跌幅限制): bands by board x ST x date, computed in integers.

Limit price = reference price x (1 +/- band), rounded half-up to the tick, where the reference is
the previous close (on an ex-date: the ex-rights reference price, see ``corporate_actions``).
Sources: ``MARKET_RULES.md`` section 1.2 (bands, IPO regimes) and 1.1 (board prefixes).
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import functools
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from domain.fixed import RATE_SCALE, Rounding, div_round, to_decimal
from domain.instruments import Instrument
from domain.markets._dated import Dated, date_to_day, day_to_date
from domain.markets.calendars import HolidayYears, sessions

__all__ = [
    "Board",
    "LimitBand",
    "ListingRegime",
    "PriceLimits",
    "board_from_code",
    "check_price_limit",
    "check_suspended",
    "check_tick",
    "cn_instrument_limits",
    "cn_price_band",
    "cn_price_limits",
    "listing_session_number",
    "listing_sessions_asked",
    "limit_prices",
    "limit_prices_array",
    "listing_regime",
    "locked_at_limit",
    "locked_at_limit_array",
    "locked_reason",
    "opened_at_limit_reason",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Board(enum.Enum):
    MAIN = "main"  # SSE 600/601/603/605, SZSE 000/001/002/003
    STAR = "star"  # SSE 688 (科创板)
    CHINEXT = "chinext"  # SZSE 300/301 (创业板)
    BSE = "bse"  # Beijing Stock Exchange (北交所)
    FUND = "fund"  # exchange-traded funds / ETFs


class LimitBand(msgspec.Struct, frozen=True):
    """Up and down band as 1e-8 fractions of the reference price (10% is ``10_000_000``)."""

    up_e8: int
    down_e8: int

    def __post_init__(self) -> None:
        if self.up_e8 <= 0:
            raise ValueError(f"up_e8 must be positive, got {self.up_e8}")
        if not 0 < self.down_e8 < RATE_SCALE:
            raise ValueError(f"down_e8 must be in (0, 1e8), got {self.down_e8}")


class ListingRegime(msgspec.Struct, frozen=True):
    """IPO-day rules for an instrument listed under this regime.

    ``no_limit_sessions``: the first N sessions (1 = listing day) have no daily limit.
    ``day1_band``: when set, the listing day instead has this band around the issue price.
    """

    no_limit_sessions: int
    day1_band: LimitBand | None = None


def _pct(up: int, down: int | None = None) -> LimitBand:
    """A band from whole percent values (10 -> 10%)."""
    return LimitBand(up * RATE_SCALE // 100, (up if down is None else down) * RATE_SCALE // 100)


# MARKET_RULES.md §1.2 "Daily price limits". ``None`` = no daily limit. Values before
# 1996-12-16 (no limits) come from shared/data/README.md (cn/hikyuu); unverified (U).
_BANDS: dict[tuple[Board, bool], Dated[LimitBand | None]] = {
    (Board.MAIN, False): Dated.of("CN main-board band", [(19900101, None), (19961216, _pct(10))]),
    (Board.MAIN, True): Dated.of(
        "CN main-board ST band", [(19900101, None), (19961216, _pct(5)), (20260706, _pct(10))]
    ),
    # ChiNext opened 2009-10-30; ±20% (ST too) from 2020-08-24 (深证上[2020]515号).
    (Board.CHINEXT, False): Dated.of("CN ChiNext band", [(20091030, _pct(10)), (20200824, _pct(20))]),
    (Board.CHINEXT, True): Dated.of("CN ChiNext ST band", [(20091030, _pct(5)), (20200824, _pct(20))]),
    # STAR since first listings 2019-07-22, ST included.
    (Board.STAR, False): Dated.of("CN STAR band", [(20190722, _pct(20))]),
    (Board.STAR, True): Dated.of("CN STAR ST band", [(20190722, _pct(20))]),
    # BSE since opening 2021-11-15 (U in MARKET_RULES).
    (Board.BSE, False): Dated.of("CN BSE band", [(20211115, _pct(30))]),
    (Board.BSE, True): Dated.of("CN BSE ST band", [(20211115, _pct(30))]),
    (Board.FUND, False): Dated.of("CN fund band", [(19900101, None), (19961216, _pct(10))]),
}

# MARKET_RULES.md §1.2 "IPO / listing-day regimes", keyed by the listing day.
# Pre-2014 main-board/ChiNext day-one "no limit" is not in MARKET_RULES (U).
_DAY1_ISSUE_BAND = LimitBand(44 * RATE_SCALE // 100, 36 * RATE_SCALE // 100)  # 144% / 64% of issue
_LISTING: dict[Board, Dated[ListingRegime]] = {
    Board.MAIN: Dated.of(
        "CN main-board listing regime",
        [
            (19961216, ListingRegime(1)),
            (20140613, ListingRegime(0, _DAY1_ISSUE_BAND)),  # 上证发[2014]37号
            (20230410, ListingRegime(5)),  # full registration system
        ],
    ),
    Board.CHINEXT: Dated.of(
        "CN ChiNext listing regime",
        [
            (20091030, ListingRegime(1)),
            (20140613, ListingRegime(0, _DAY1_ISSUE_BAND)),
            (20200824, ListingRegime(5)),
        ],
    ),
    Board.STAR: Dated.of("CN STAR listing regime", [(20190722, ListingRegime(5))]),
    Board.BSE: Dated.of("CN BSE listing regime", [(20211115, ListingRegime(1))]),  # U
    Board.FUND: Dated.of("CN fund listing regime", [(19961216, ListingRegime(0))]),  # U
}


class PriceLimits(msgspec.Struct, frozen=True):
    """The day's limit prices (raw integers at the instrument's price digits)."""

    ref_raw: int
    up_raw: int
    down_raw: int
    band: LimitBand


def board_from_code(code: str) -> Board:
    """Board from a six-digit A-share code (a convenience; the instrument master is authoritative)."""
    if len(code) != 6 or not code.isdigit():
        raise ValueError(f"not a six-digit A-share code: {code!r}")
    if code.startswith("688"):
        return Board.STAR
    if code.startswith(("300", "301")):
        return Board.CHINEXT
    if code.startswith(("600", "601", "603", "605", "000", "001", "002", "003")):
        return Board.MAIN
    if code.startswith(("8", "43", "92")):
        return Board.BSE
    raise ValueError(f"unknown A-share code prefix: {code!r}")


def listing_regime(board: Board, listing_day: int) -> ListingRegime:
    return _LISTING[board].at(listing_day)


def cn_price_band(
    board: Board, st: bool, day: int, *, listing_day: int | None = None, session_number: int | None = None
) -> LimitBand | None:
    """The band in force on ``day``; ``None`` when the day has no daily limit.

    ``session_number`` counts sessions since listing (1 = listing day); leave both listing
    arguments ``None`` for a seasoned instrument. On a pre-registration listing day the band
    applies to the *issue price*, which the caller passes as the reference.
    """
    if st and board is Board.FUND:
        raise ValueError("a fund cannot carry the ST flag")
    if (listing_day is None) != (session_number is None):
        raise ValueError("pass listing_day and session_number together")
    if listing_day is not None and session_number is not None:
        if session_number < 1:
            raise ValueError(f"session_number is 1-based, got {session_number}")
        regime = listing_regime(board, listing_day)
        if session_number <= regime.no_limit_sessions:
            return None
        if session_number == 1 and regime.day1_band is not None:
            return regime.day1_band
    return _BANDS[(board, st)].at(day)


LISTING_WINDOW_DAYS = 31
"""Calendar days after a listing day within which its session number is counted. The longest
IPO regime is five sessions, and no XSHG closure (Spring Festival, National Day) stretches five
sessions over a month; past the window a name is seasoned without asking the calendar."""


@functools.lru_cache(maxsize=4096)
def listing_session_number(listing_day: int, day: int, holidays: HolidayYears | None = None) -> int | None:
    """Which session since listing ``day`` is (1 = the listing day), counted in XSHG sessions
    (the exchange's trading days, a day the name is suspended included); ``None`` when there
    is no listing day (0), ``day`` is before it, or ``day`` is past the listing window (a
    seasoned name). Raises ``CalendarNotCovered`` for a day the calendar does not know (with
    ``holidays``, a data set's supplied years, it knows those too)."""
    if listing_day <= 0 or day < listing_day:
        return None
    if (day_to_date(day) - day_to_date(listing_day)) > dt.timedelta(days=LISTING_WINDOW_DAYS):
        return None
    return len(sessions("XSHG", listing_day, day, holidays=holidays))


def listing_sessions_asked(listing_day: int, days: Sequence[int]) -> int | None:
    """The last of ``days`` (a run's session days, ascending) on which a name listed on
    ``listing_day`` has its session number counted on the XSHG calendar (inside the listing
    window, ``listing_session_number``); ``None`` when none is. A run checks that the calendar
    knows it (``check_covered``, with its data set's holidays) before its journal opens."""
    if listing_day <= 0:
        return None
    last = date_to_day(day_to_date(listing_day) + dt.timedelta(days=LISTING_WINDOW_DAYS))
    index = bisect.bisect_right(days, last) - 1
    return int(days[index]) if index >= 0 and days[index] >= listing_day else None


def cn_instrument_limits(
    instrument: Instrument, day: int, ref_raw: int, holidays: HolidayYears | None = None
) -> PriceLimits | None:
    """An A-share's price limits on session ``day`` from the reference price: its board, ST flag
    and listing day (``Instrument.listing_day``; 0 = unknown, every day has the ordinary band)
    decide the band. The one computation the simulated venue, the XTP port's pre-checks and
    the strategies that predict limits share. On a pre-registration listing day the reference
    is the issue price (``cn_price_band``). ``None``: no daily limit."""
    session = listing_session_number(instrument.listing_day, day, holidays)
    band = cn_price_band(
        Board(instrument.board),
        instrument.is_st(day),
        day,
        listing_day=None if session is None else instrument.listing_day,
        session_number=session,
    )
    return None if band is None else limit_prices(ref_raw, band, instrument.tick_raw)


def limit_prices(ref_raw: int, band: LimitBand, tick_raw: int) -> PriceLimits:
    """Limits = ref x (1 +/- band), each rounded half-up to the tick grid, exactly in integers.

    The down limit never goes below one tick.
    """
    if ref_raw <= 0:
        raise ValueError(f"reference price must be positive, got {ref_raw}")
    if tick_raw <= 0:
        raise ValueError(f"tick must be positive, got {tick_raw}")
    if ref_raw % tick_raw:
        raise ValueError(f"reference price {ref_raw} is not on the tick grid ({tick_raw})")
    denominator = RATE_SCALE * tick_raw
    up = div_round(ref_raw * (RATE_SCALE + band.up_e8), denominator, Rounding.HALF_UP) * tick_raw
    down = div_round(ref_raw * (RATE_SCALE - band.down_e8), denominator, Rounding.HALF_UP) * tick_raw
    return PriceLimits(ref_raw, up, max(down, tick_raw), band)


def cn_price_limits(
    board: Board,
    st: bool,
    day: int,
    ref_raw: int,
    tick_raw: int,
    *,
    listing_day: int | None = None,
    session_number: int | None = None,
) -> PriceLimits | None:
    """Band lookup plus limit computation; ``None`` when the day has no daily limit."""
    band = cn_price_band(board, st, day, listing_day=listing_day, session_number=session_number)
    return None if band is None else limit_prices(ref_raw, band, tick_raw)


def limit_prices_array(
    ref_raw: IntArray, up_e8: IntArray, down_e8: IntArray, tick_raw: IntArray
) -> tuple[IntArray, IntArray]:
    """Vectorised ``limit_prices`` over a universe (int64, exact half-up for positive values).

    Rows with ``up_e8 == 0`` have no limit and get 0 in both outputs.
    """
    ref = ref_raw.astype(np.int64)
    ticks = tick_raw.astype(np.int64)
    if np.any(ref % ticks != 0):
        raise ValueError("reference prices must lie on the tick grid")
    denominator = np.int64(RATE_SCALE) * ticks
    up_num = ref * (RATE_SCALE + up_e8.astype(np.int64))
    down_num = ref * (RATE_SCALE - down_e8.astype(np.int64))
    up = (2 * up_num + denominator) // (2 * denominator) * ticks
    down = np.maximum((2 * down_num + denominator) // (2 * denominator) * ticks, ticks)
    limited = up_e8 > 0
    return np.where(limited, up, 0).astype(np.int64), np.where(limited, down, 0).astype(np.int64)


def _fmt(raw: int, digits: int) -> str:
    return str(to_decimal(raw, digits))


def check_price_limit(order_px_raw: int, limits: PriceLimits | None, price_digits: int) -> str | None:
    """``None`` when a limit order's price lies within the day's limits, else a reason."""
    if limits is None:
        return None
    if order_px_raw > limits.up_raw:
        up, px = _fmt(limits.up_raw, price_digits), _fmt(order_px_raw, price_digits)
        return f"CN_PRICE_LIMIT: limit_up={up}, order_px={px}"
    if order_px_raw < limits.down_raw:
        down, px = _fmt(limits.down_raw, price_digits), _fmt(order_px_raw, price_digits)
        return f"CN_PRICE_LIMIT: limit_down={down}, order_px={px}"
    return None


def check_tick(order_px_raw: int, tick_raw: int, price_digits: int) -> str | None:
    """``None`` when the price lies on the tick grid, else a reason."""
    if order_px_raw % tick_raw == 0:
        return None
    return f"CN_TICK: tick={_fmt(tick_raw, price_digits)}, order_px={_fmt(order_px_raw, price_digits)}"


def check_suspended(suspended: bool, day: int) -> str | None:
    """Orders for a suspended stock are rejected (MARKET_RULES.md §1.6)."""
    return f"CN_SUSPENDED: day={day}" if suspended else None


def locked_at_limit(side: int, bar_low_raw: int, bar_high_raw: int, limits: PriceLimits | None) -> bool:
    """True when the bar cannot fill this side: the whole bar traded at or beyond the limit.

    A buy (``side=+1``) cannot fill when the bar's low is at limit-up (nobody sold below it:
    the queue at the limit is ahead of us); a sell cannot fill when the high is at limit-down.
    """
    assert side in (1, -1), "side must be +1 or -1"
    if limits is None:
        return False
    if side > 0:
        return bar_low_raw >= limits.up_raw
    return bar_high_raw <= limits.down_raw


def locked_reason(
    side: int, bar_low_raw: int, bar_high_raw: int, limits: PriceLimits | None, price_digits: int
) -> str | None:
    """``locked_at_limit`` with the journaled reason (``None`` when the bar can fill)."""
    if limits is None or not locked_at_limit(side, bar_low_raw, bar_high_raw, limits):
        return None
    if side > 0:
        up, low = _fmt(limits.up_raw, price_digits), _fmt(bar_low_raw, price_digits)
        return f"CN_LIMIT_LOCKED: limit_up={up}, bar_low={low}"
    down, high = _fmt(limits.down_raw, price_digits), _fmt(bar_high_raw, price_digits)
    return f"CN_LIMIT_LOCKED: limit_down={down}, bar_high={high}"


def opened_at_limit_reason(
    side: int, bar_open_raw: int, limits: PriceLimits, price_digits: int
) -> str | None:
    """A bar that opens at the limit on the order's side: a buy at limit-up, a sell at
    limit-down. The queue there makes a fill at the limit unlikely (``fill.at_limit = "skip"``)."""
    if side > 0 and bar_open_raw >= limits.up_raw:
        return f"CN_LIMIT_QUEUE: opened at limit_up={_fmt(limits.up_raw, price_digits)} (fill.at_limit skip)"
    if side < 0 and bar_open_raw <= limits.down_raw:
        down = _fmt(limits.down_raw, price_digits)
        return f"CN_LIMIT_QUEUE: opened at limit_down={down} (fill.at_limit skip)"
    return None


def locked_at_limit_array(
    sides: IntArray, bar_low_raw: IntArray, bar_high_raw: IntArray, up_raw: IntArray, down_raw: IntArray
) -> BoolArray:
    """Vectorised ``locked_at_limit``; rows with ``up_raw == 0`` have no limit (never locked)."""
    limited = up_raw > 0
    buy_locked = (sides > 0) & (bar_low_raw >= up_raw)
    sell_locked = (sides < 0) & (bar_high_raw <= down_raw)
    result: BoolArray = limited & (buy_locked | sell_locked)
    return result
