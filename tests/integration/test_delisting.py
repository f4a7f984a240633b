"""Delisting dates from metadata to the journal (``delistings.parquet``, ``kernel.delisting``).

Real bars: SPDB 600000.SH daily (hikyuu tdx file), 2025-02..08. The delisting is CONSTRUCTED:
SPDB was never delisted (no shared data set has a delisted name with its bars), so the test
declares the file's last bar, 2025-08-05, its delisting date through ``tape ingest metadata``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import InstrumentDelisted, OrderFilled, OrderSubmitted
from domain.instruments import Instrument
from domain.market import Panel
from kernel.account import AccountConfig
from kernel.delisting import DELISTING_STRATEGY_ID
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import DatasetError, delistings_table, load_panel, write_dataset
from sim.backtest import build_setup, run_backtest
from tests.factories import make_config, one_name_policy
from tests.integration import test_instrument_metadata as meta
from tests.integration.test_cash_account import FEES

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not meta.SPDB.exists(), reason=f"real market data not present at {meta.SPDB}"),
]


class BuyAndHold:
    strategy_id = "hold"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([5], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array([0.5])


def _events(path: str | Path) -> list[object]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("delist")
    lake = meta._spdb_lake(tmp)
    plain = tmp / "plain"
    window = ["--calendar", "XSHG", "--start", "2025-02-01", "--end", "2025-08-05"]
    assert meta.tape(["export", str(lake), str(plain), *window]) == 0
    csv = tmp / "meta.csv"
    csv.write_text("symbol,delisting_date\n600000.SH,2025-08-05\n")  # CONSTRUCTED: never delisted
    meta.apply_metadata(lake, csv)
    delisted = tmp / "delisted"
    assert meta.tape(["export", str(lake), str(delisted), *window]) == 0
    return plain, delisted


def _run(dataset: Path, journal: Path, policy: str) -> list[object]:
    config = make_config(dataset, journal, currency="CNY", cn_fees=FEES, risk=one_name_policy(),  # type: ignore[arg-type]
                         account=AccountConfig(delisted=policy))  # fmt: skip
    run_backtest(config, BuyAndHold())
    with open_journal(journal) as opened:
        strategy = BuyAndHold()
        assert replay(opened, lambda r, ref: build_setup(config, strategy, expected_hash=ref.content_hash)).ok
    return _events(journal)


def test_export_carries_the_delisting_date_and_a_set_without_one_has_no_table(
    sets: tuple[Path, Path],
) -> None:
    plain, delisted = sets
    assert not (plain / "delistings.parquet").exists()
    panel, _ = load_panel(delisted)
    assert panel.delistings == ((panel.instruments[0].instrument_id, 20250805),)
    assert load_panel(plain)[0].delistings == ()


def test_held_through_the_delisting_the_event_says_what_is_left(
    sets: tuple[Path, Path], tmp_path: Path
) -> None:
    plain, delisted = sets
    events = _run(delisted, tmp_path / "hold", "hold")
    found = [e for e in events if isinstance(e, InstrumentDelisted)]
    held = sum(e.side * e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
    assert len(found) == 1 and found[0].day == found[0].last_day == 20250805
    assert (
        found[0].qty_raw == held > 0
        and found[0].policy == "hold"
        and "marked at its last close" in found[0].note
    )
    assert found[0].mark_px_raw == int(load_panel(delisted)[0].close[-1, 0])
    # Without the table nothing new is journaled: the same run journals the same events but the event.
    before = _run(plain, tmp_path / "plain", "hold")
    assert not [e for e in before if isinstance(e, InstrumentDelisted)]
    assert [type(e) for e in events if not isinstance(e, InstrumentDelisted)] == [type(e) for e in before]


def test_sell_before_sells_in_the_last_session(sets: tuple[Path, Path], tmp_path: Path) -> None:
    _, delisted = sets
    events = _run(delisted, tmp_path / "sell", "sell_before")
    orders = [e for e in events if isinstance(e, OrderSubmitted) and e.strategy_id == DELISTING_STRATEGY_ID]
    assert len(orders) == 1 and orders[0].side == -1
    sold = [e for e in events if isinstance(e, OrderFilled) and e.order_id == orders[0].order_id]
    assert sold and sum(f.fill_qty_raw for f in sold) == orders[0].qty_raw
    found = [e for e in events if isinstance(e, InstrumentDelisted)]
    assert len(found) == 1 and found[0].qty_raw == 0 and found[0].note == "nothing held"
    assert orders[0].ts_ns < sold[0].ts_ns <= found[0].ts_ns  # decided at 2025-08-04 close, sold 08-05


def test_a_delisting_before_a_bar_is_refused(tmp_path: Path) -> None:
    inst = Instrument(instrument_id=1, symbol="X", venue="XSHG", asset_class="equity", currency="CNY",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100)  # fmt: skip
    bars = pa.table({"ts_ns": [1, 2], "day": [20110104, 20110105], "instrument_id": [1, 1], "open": [10, 10],
                     "high": [10, 10], "low": [10, 10], "close": [10, 10], "volume": [1, 1]})  # fmt: skip
    with pytest.raises(DatasetError, match=r"X has 1 bar\(s\) after its last day 20110104"):
        write_dataset(tmp_path / "d", name="c", frequency="1d", calendar="XSHG", instruments=[inst],
                      bars=bars, delistings=delistings_table({1: 20110104}))  # fmt: skip
    with pytest.raises(ValueError, match=r"account\.delisted must be one of"):
        AccountConfig(delisted="write_off")
