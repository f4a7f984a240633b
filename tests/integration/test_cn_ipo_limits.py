"""A-share IPO sessions in the simulated venue. CONSTRUCTED cases (the shared data has no
listing in it): instruments and bars written by the test.

MARKET_RULES.md §1.2 "IPO / listing-day regimes": a STAR listing (and a main-board one under
the registration system, listings from 2023-04-10) has no daily limit for its first five
trading sessions, then the board's band (±20% STAR, ±10% main board). The listing day comes
from the data set's instrument master (``Instrument.listing_day``, set by ``tape ingest
metadata``); sessions are XSHG sessions counted from it.

Each name lists on 2024-01-02 at 20.00 and jumps +50% to 30.00 on session 2 (whole bar above
the ordinary limit-up), then on session 6 (2024-01-09) the whole bar is again above its
limit-up. A market buy decided at the close of session 1 meets session 2's bar: it fills (no
limit) where the old venue locked it at the ordinary band; one decided at the close of session
5 meets session 6's bar and is locked (the band is back). Without a listing day (0) every
session after the first has the ordinary band, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import OrderExpired, OrderFilled, OrderSubmitted
from domain.instruments import Instrument
from domain.market import Panel
from kernel.store import open_journal
from kernel.strategy import MarketView, Shares
from lake.store import write_dataset
from sim.backtest import run_backtest
from tests.factories import make_config, one_name_policy

DAYS = [20240102, 20240103, 20240104, 20240105, 20240108, 20240109, 20240110]  # sessions 1..7
DAYS_2022 = [20220104, 20220105, 20220106, 20220107, 20220110, 20220111, 20220112]


def _bar(close: int, low: int) -> tuple[int, int, int, int]:
    """(open, high, low, close): a bar that never traded below ``low``."""
    return low, close + 50, low, close


def _dataset(
    path: Path, symbol: str, board: str, listing_day: int, day6_low: int, days: list[int] = DAYS
) -> Path:
    """20.00 on session 1, 30.00 (+50%) on sessions 2-5, on session 6 a bar whose low is
    ``day6_low``: above the band's limit-up from 30.00."""
    lot = 1 if board == "star" else 100
    inst = Instrument(instrument_id=1, symbol=symbol, venue="SSE", asset_class="equity", currency="CNY",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=lot, board=board,
                      listing_day=listing_day)  # fmt: skip
    rows = [_bar(2000, 1990), _bar(3000, 2990), _bar(3000, 2990), _bar(3000, 2990), _bar(3000, 2990),
            _bar(day6_low + 50, day6_low), _bar(day6_low + 50, day6_low)]  # fmt: skip
    ts = [int((np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T15:00", "ns")
               - np.timedelta64(8, "h")).astype(np.int64)) for d in days]  # fmt: skip
    n = len(days)
    bars = pa.table({"ts_ns": ts, "day": days, "instrument_id": [1] * n, "open": [r[0] for r in rows],
                     "high": [r[1] for r in rows], "low": [r[2] for r in rows], "close": [r[3] for r in rows],
                     "volume": [500_000] * n})  # fmt: skip
    write_dataset(path, name="ipo", frequency="1d", calendar="XSHG", instruments=[inst], bars=bars)
    return path


class BuyAt:
    """Buys ``qty`` shares at the close of session ``after`` (the order meets the next bar)."""

    strategy_id = "ipo"

    def __init__(self, after: int, qty: float) -> None:
        self.after, self.qty = after, qty

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([self.after - 1], dtype=np.int64)

    def decide(self, view: MarketView) -> Shares:
        return Shares(np.array([self.qty]))


def _outcome(tmp_path: Path, name: str, dataset: Path, after: int) -> tuple[int, list[str]]:
    """(shares filled, expiry reasons) of a 200-share buy sent at the close of ``after``."""
    journal = tmp_path / name
    config = make_config(dataset, journal, currency="CNY", risk=one_name_policy())
    run_backtest(config, BuyAt(after, 200))
    with open_journal(journal) as opened:
        events = [event for _, event in opened.events()]
    assert len([e for e in events if isinstance(e, OrderSubmitted)]) == 1
    filled = sum(e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
    return filled, [e.reason for e in events if isinstance(e, OrderExpired)]


@pytest.mark.parametrize(
    ("symbol", "board", "day6_low", "day6_limit_up"),
    [
        ("688001.SH", "star", 3700, "36.00"),  # ±20% from 30.00
        ("603001.SH", "main", 3400, "33.00"),  # ±10% from 30.00 (registration-system listing)
    ],
)
def test_ipo_sessions_have_no_limit_then_the_board_band(
    tmp_path: Path, symbol: str, board: str, day6_low: int, day6_limit_up: str
) -> None:
    dataset = _dataset(tmp_path / "d", symbol, board, 20240102, day6_low)
    # Session 2: +50% over the listing day's close, no limit: the buy fills at the open.
    assert _outcome(tmp_path, "day2", dataset, after=1) == (200, [])
    # Session 6: the band is back and the whole bar is above limit-up: locked, expired.
    filled, reasons = _outcome(tmp_path, "day6", dataset, after=5)
    assert filled == 0
    assert reasons == [f"CN_LIMIT_LOCKED: limit_up={day6_limit_up}, bar_low={day6_low / 100:.2f}"]


def test_without_a_listing_day_session_2_has_the_ordinary_band(tmp_path: Path) -> None:
    """A data set whose instrument gives no listing day behaves as before: session 2's bar is
    locked at the ordinary STAR band (limit-up 24.00 from 20.00)."""
    dataset = _dataset(tmp_path / "d", "688001.SH", "star", 0, 3700)
    assert _outcome(tmp_path, "day2", dataset, after=1) == (
        0,
        ["CN_LIMIT_LOCKED: limit_up=24.00, bar_low=29.90"],
    )


def test_a_main_board_listing_before_the_registration_system_has_the_band_from_session_2(
    tmp_path: Path,
) -> None:
    """A main-board name listed 2022-01-04 (before 2023-04-10): its listing day had the
    issue-price band (the data has no issue price: no limit there), every later session ±10%:
    the +50% bar of session 2 is locked at 22.00."""
    dataset = _dataset(tmp_path / "d", "603001.SH", "main", 20220104, 3400, DAYS_2022)
    assert _outcome(tmp_path, "day2", dataset, after=1) == (
        0,
        ["CN_LIMIT_LOCKED: limit_up=22.00, bar_low=29.90"],
    )
