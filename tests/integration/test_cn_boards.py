"""STAR Market and Beijing Stock Exchange quantities and venues. CONSTRUCTED cases (the shared
data has no STAR or BSE files): file names and bars written by the test.

- ingest labels Beijing codes with venue BJSE (an A-share venue; "BSE" is Bombay's alias) and
  gives STAR and BSE stocks a quantity step of one share (their minimum order, 200 and 100
  shares, is the market rules' to check);
- an order by quantity (``Shares``) of 250 STAR shares is sent as 250 (it used to be floored to
  200), and 150 is refused with the rule's numbers;
- an instrument with an A-share board on a venue that is not an A-share venue is refused
  instead of trading with no A-share rules;
- on real SPDB bars, an order by quantity for 1,910 main-board shares is sent as 1,900."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import OrderFilled, OrderRejected, OrderSubmitted
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows
from kernel.markets import MarketRules
from kernel.store import open_journal
from kernel.strategy import MarketView, Shares
from lake.sources import parse_hikyuu_day
from lake.store import write_dataset
from sim.backtest import run_backtest
from tests.factories import make_config, one_name_policy
from tests.integration.test_cash_account import FEES as SPDB_FEES
from tests.integration.test_cash_account import SHARED
from tests.integration.test_cash_account import _spdb as spdb_2001_2003

SPDB_FILE = SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"
DAYS = [20240102, 20240103, 20240104, 20240105, 20240108, 20240109, 20240110]
FEES = CnFeeRows(
    rows=[CnFeeRow(effective_from=20240101, stamp_duty_buy_e8=0, stamp_duty_sell_e8=50_000, transfer_e8=1_000,
                   handling_e8=3_410, regulatory_e8=2_000)],
    source="test: illustrative rates (constructed case)",
)  # fmt: skip


def _day_file(folder: Path, code: str) -> Path:
    path = folder / f"h5_{code}_day_raw.csv"
    rows = "".join(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d},20.00,20.50,19.80,20.10,1000000,500\n"
                   for d in DAYS)  # fmt: skip
    path.write_text("date,open,high,low,close,amount_cny,volume\n" + rows)
    return path


@pytest.mark.parametrize(
    ("code", "venue", "board", "lot"),
    [("688001.SH", "SSE", "star", 1), ("830799.BJ", "BJSE", "bse", 1), ("600000.SH", "SSE", "main", 100)],
)
def test_ingest_templates_carry_the_boards_venue_and_quantity_step(
    tmp_path: Path, code: str, venue: str, board: str, lot: int
) -> None:
    ((template, _),) = parse_hikyuu_day(_day_file(tmp_path, code)).bars
    assert (template.venue, template.board, template.lot_raw) == (venue, board, lot)
    MarketRules({1: template})  # an A-share the rules apply to: no refusal


def test_a_board_on_a_foreign_venue_is_refused() -> None:
    bse = Instrument(instrument_id=1, symbol="830799.BJ", venue="BSE", asset_class="equity", currency="CNY",
                     price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1, board="bse")  # fmt: skip
    with pytest.raises(ValueError, match="not an A-share venue"):
        MarketRules({1: bse})


class BuyShares:
    strategy_id = "star"

    def __init__(self, qty: float) -> None:
        self.qty = qty

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([1], dtype=np.int64)

    def decide(self, view: MarketView) -> Shares:
        return Shares(np.array([self.qty]))


def _star_dataset(path: Path) -> Path:
    star = Instrument(instrument_id=1, symbol="688001.SH", venue="SSE", asset_class="equity", currency="CNY",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1, board="star",
                      listing_day=20200101)  # fmt: skip
    ts = [int((np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T15:00", "ns")
               - np.timedelta64(8, "h")).astype(np.int64)) for d in DAYS]  # fmt: skip
    bars = pa.table({"ts_ns": ts, "day": DAYS, "instrument_id": [1] * len(DAYS), "open": [2000] * len(DAYS),
                     "high": [2050] * len(DAYS), "low": [1980] * len(DAYS), "close": [2010] * len(DAYS),
                     "volume": [500_000] * len(DAYS)})  # fmt: skip
    write_dataset(path, name="star", frequency="1d", calendar="XSHG", instruments=[star], bars=bars)
    return path


@pytest.mark.parametrize(("qty", "sent", "reason"), [(250, 250, ""), (150, 150, "CN_LOT: min=200, step=1")])
def test_star_orders_by_quantity_step_by_one_share_above_the_minimum(
    tmp_path: Path, qty: int, sent: int, reason: str
) -> None:
    dataset = _star_dataset(tmp_path / "d")
    config = make_config(dataset, tmp_path / "j", currency="CNY", cn_fees=FEES, risk=one_name_policy())
    run_backtest(config, BuyShares(qty))
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    (submitted,) = [e for e in events if isinstance(e, OrderSubmitted)]
    assert submitted.qty_raw == sent
    rejected = [e.reason for e in events if isinstance(e, OrderRejected)]
    filled = sum(e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
    if reason:
        assert len(rejected) == 1 and rejected[0].startswith(reason) and filled == 0
    else:
        assert not rejected and filled == sent


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not SPDB_FILE.exists(), reason=f"real market data not present at {SPDB_FILE}")
def test_a_main_board_order_for_1910_shares_is_floored_to_whole_lots(tmp_path: Path) -> None:
    """Real SPDB bars (2001-2003): ``Shares(1910)`` on a main-board stock (100-share lots) is
    sent and filled as 1,900 — the planner floors a target to the instrument's quantity step,
    as a broker's lot rule would refuse the odd 10 shares of a buy; a target of 50 shares (not
    one lot) sends nothing."""
    dataset = spdb_2001_2003(tmp_path)
    for qty, sent in ((1910.0, [1900]), (50.0, [])):
        journal = tmp_path / f"j{int(qty)}"
        config = make_config(dataset, journal, currency="CNY", cn_fees=SPDB_FEES, risk=one_name_policy())
        run_backtest(config, BuyShares(qty))
        with open_journal(journal) as opened:
            events = [event for _, event in opened.events()]
        assert [e.qty_raw for e in events if isinstance(e, OrderSubmitted)] == sent
        assert sum(e.fill_qty_raw for e in events if isinstance(e, OrderFilled)) == sum(sent)
        assert not [e for e in events if isinstance(e, OrderRejected)]
