"""Short borrow fees accrue at each close, settlement to settlement (a Friday carries the weekend),
on the short's value at the collateral mark; computed here independently with Decimal."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from domain.events import DayClosed, LedgerPosted, OrderFilled
from domain.instruments import Instrument
from kernel.borrow import BorrowConfig
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import one_name_policy
from tests.integration.test_cn_rules_kernel import Scripted

XYZ = Instrument(
    instrument_id=1,
    symbol="XYZ",
    venue="XNYS",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
DAYS = [20240104, 20240105, 20240108, 20240109]  # Thu, Fri, Mon, Tue
CLOSES = [100_00, 101_37, 98_11, 99_99]


def _dataset(path: Path) -> Path:
    ts = [
        int((np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T21:00", "ns")).astype(np.int64))
        for d in DAYS
    ]
    bars = pa.table(
        {
            "ts_ns": ts,
            "day": DAYS,
            "instrument_id": [1] * 4,
            "open": [100_00, 100_50, 99_00, 99_50],
            "high": [101_00, 102_00, 100_00, 100_50],
            "low": [99_00, 99_80, 97_50, 98_90],
            "close": CLOSES,
            "volume": [1_000_000] * 4,
        }
    )
    write_dataset(path, name="borrow", frequency="1d", calendar="XNYS", instruments=[XYZ], bars=bars)
    return path


def _config(tmp_path: Path, borrow: BorrowConfig | None) -> BacktestConfig:
    return BacktestConfig(
        run_id="borrow",
        dataset=str(_dataset(tmp_path / "data")),
        journal=str(tmp_path / ("j" if borrow else "plain")),
        initial_cash="100000",
        strategy=StrategyConfig(name="scripted"),
        fill=FillModel(commission_e8=0),
        risk=one_name_policy(),
        borrow=borrow,
    )


def _expected_fee(qty: int, close_raw: int, rate_e8: int, days: int, collateral_e8: int) -> int:
    value_cents = Decimal(qty) * Decimal(close_raw)  # price in cents = value in cents
    value = (value_cents * Decimal(collateral_e8) / Decimal(10**8)).to_integral_value(ROUND_CEILING)
    fee = value * Decimal(rate_e8) / Decimal(10**8) * days / 360
    return int(fee.to_integral_value(ROUND_HALF_UP))


def test_short_pays_borrow_from_close_to_next_session(tmp_path: Path) -> None:
    borrow = BorrowConfig(default_rate_e8=3_000_000, rates_e8={"XYZ": 25_000_000}, collateral_e8=102_000_000)
    config = _config(tmp_path, borrow)
    targets = {0: -0.5}
    run_backtest(config, Scripted(targets))
    journal = open_journal(config.journal)
    outcome = replay(
        journal, lambda r, ref: build_setup(config, Scripted(targets), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    events = [e for _, e in journal.events()]
    (fill,) = [e for e in events if isinstance(e, OrderFilled)]
    qty = fill.fill_qty_raw
    assert fill.side == -1 and qty == 500  # 50% of 100,000.00 at the 100.00 close, filled at Friday's open
    fees = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("borrow XYZ")]
    # Friday close -> Monday: 3 days; Monday -> Tuesday: 1; the last session: 1.
    expected = [
        _expected_fee(qty, CLOSES[1], 25_000_000, 3, 102_000_000),
        _expected_fee(qty, CLOSES[2], 25_000_000, 1, 102_000_000),
        _expected_fee(qty, CLOSES[3], 25_000_000, 1, 102_000_000),
    ]
    assert [e.postings[0].amount_minor for e in fees] == expected
    assert all(e.postings[0].account == "expenses:borrow_fee:USD" for e in fees)
    assert all(sum(p.amount_minor for p in e.postings) == 0 for e in fees)
    assert "days=3" in fees[0].memo and "rate_e8=25000000" in fees[0].memo
    # The fee is in the day's NAV: each day's close is after its accrual.
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert all(fee.ts_ns == close.ts_ns for fee, close in zip(fees, closes[1:], strict=True))
    plain_config = _config(tmp_path, None)
    run_backtest(plain_config, Scripted(targets))
    plain_nav = [
        e.nav_minor for _, e in open_journal(plain_config.journal).events() if isinstance(e, DayClosed)
    ]
    assert plain_nav[-1] - closes[-1].nav_minor == sum(expected)
    assert '"borrow":' not in plain_config.canonical_json()


def test_bad_borrow_rates_are_refused() -> None:
    with pytest.raises(ValueError, match=r"borrow\.XYZ"):
        BorrowConfig(rates_e8={"XYZ": -1})
    with pytest.raises(ValueError, match="collateral_e8"):
        BorrowConfig(collateral_e8=5)
