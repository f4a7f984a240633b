"""The US pattern-day-trader rule in the kernel, on hand-made XNYS minute bars (2026-06-01 ..
06-05, around the FINRA replacement day 2026-06-04): a $10,000 account making two round trips a
session has its 4th day trade within 5 sessions refused with the numbers, a $100,000 account is
never refused, and after the broker's stop day nothing is refused; full and per-day replays
reproduce each journal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from domain.events import (
    DatasetReferenced,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RunStarted,
    StateSnapshotted,
)
from domain.instruments import Instrument
from domain.markets import PdtRule
from kernel.replay import replay
from kernel.setup import RunSetup
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
DAYS = [20260601, 20260602, 20260603, 20260604, 20260605]  # Mon..Fri; 06-04 FINRA's new rule
BARS = 5  # 09:30..09:34 New York (13:30 UTC, daylight time)
# Each session: buy half the NAV, sell it, buy again, sell again (orders fill at the next bar).
TARGETS = {k * BARS + i: w for k in range(len(DAYS)) for i, w in enumerate((0.5, 0.0, 0.5, 0.0))}


def _dataset(path: Path) -> Path:
    stamps = [
        np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T13:3{m}", "ns").astype(np.int64)
        for d in DAYS
        for m in range(BARS)
    ]
    n = len(stamps)
    price = [50_00] * n  # a flat price: the NAV stays at the deposit, to the cent
    bars = pa.table(
        {
            "ts_ns": [int(t) for t in stamps],
            "day": [d for d in DAYS for _ in range(BARS)],
            "instrument_id": [1] * n,
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": [1_000_000] * n,
        }
    )
    write_dataset(path, name="pdt", frequency="1m", calendar="XNYS", instruments=[XYZ], bars=bars)
    return path


def _run(tmp_path: Path, name: str, cash: str, pdt: PdtRule | None) -> tuple[BacktestConfig, list[object]]:
    data = tmp_path / "data"
    if not data.exists():
        _dataset(data)
    config = BacktestConfig(
        run_id=name,
        dataset=str(data),
        journal=str(tmp_path / name),
        initial_cash=cash,
        strategy=StrategyConfig(name="scripted"),
        fill=FillModel(commission_e8=0),
        risk=one_name_policy(),
        us_regulatory_fees=False,
        pdt=pdt,
    )
    run_backtest(config, Scripted(TARGETS))
    journal = open_journal(config.journal)

    def build(run: RunStarted, ref: DatasetReferenced) -> RunSetup:
        return build_setup(
            BacktestConfig.from_json(run.config_json), Scripted(TARGETS), expected_hash=ref.content_hash
        )

    outcome = replay(journal, build)
    assert outcome.ok, outcome.divergence
    for day in DAYS[1:]:  # each session from the previous day's snapshot (the counter included)
        outcome = replay(journal, build, day=day)
        assert outcome.ok, (day, outcome.divergence)
    return config, [e for _, e in journal.events()]


def _refusals(events: list[object]) -> list[tuple[int, str]]:
    """(session, reason) of each order refused by the PDT rule."""
    day_of = {e.order_id: int(e.order_id.split("-")[1]) for e in events if isinstance(e, OrderSubmitted)}
    return [(day_of[e.order_id], e.reason) for e in events if isinstance(e, OrderRejected)]


def _sells_filled(events: list[object]) -> dict[int, int]:
    """Sell fills per session (each closes that session's buy, or the hold of a refused sell)."""
    sells: dict[int, int] = {}
    for e in events:
        if isinstance(e, OrderFilled) and e.side < 0:
            day = int(e.order_id.split("-")[1])
            sells[day] = sells.get(day, 0) + 1
    return sells


def test_small_account_fourth_day_trade_refused_until_the_stop_day(tmp_path: Path) -> None:
    config, events = _run(tmp_path, "small", "10000", PdtRule(broker="finra-day"))
    reason_0602 = (
        "US_PDT: day_trades_5d=4, trades_5d=8, equity_minor=1000000, min_equity_minor=2500000, "
        "stop_day=20260604"
    )
    # 06-03: yesterday's refused sell left 100 shares overnight; selling them first is not a day
    # trade (FINRA's exception), the second round trip's sell would be the 4th in the window.
    reason_0603 = (
        "US_PDT: day_trades_5d=4, trades_5d=10, equity_minor=1000000, min_equity_minor=2500000, "
        "stop_day=20260604"
    )
    assert _refusals(events) == [(20260602, reason_0602), (20260603, reason_0603)]
    assert _sells_filled(events) == {20260601: 2, 20260602: 1, 20260603: 1, 20260604: 2, 20260605: 2}
    assert '"pdt":{"broker":"finra-day"' in config.canonical_json()
    # The counter is kernel state: the 06-02 snapshot holds the records of 06-01 and 06-02.
    snap = next(e for e in events if isinstance(e, StateSnapshotted) and e.day == 20260602)
    assert [(r.day, r.day_trades, r.trades) for r in snap.snapshot.day_trades] == [
        (20260601, 2, 4),
        (20260602, 1, 3),
    ]


def test_broker_phasing_in_later_keeps_refusing(tmp_path: Path) -> None:
    _, events = _run(tmp_path, "late", "10000", PdtRule(broker="late", stop_day=20270101))
    refused = _refusals(events)
    assert [day for day, _ in refused] == [20260602, 20260603, 20260604, 20260605]
    assert all(reason.startswith("US_PDT: day_trades_5d=4, ") for _, reason in refused)
    assert all("stop_day=20270101" in reason for _, reason in refused)


def test_account_at_25k_or_more_is_not_refused(tmp_path: Path) -> None:
    _, events = _run(tmp_path, "big", "100000", PdtRule(stop_day=20270101))
    assert _refusals(events) == []
    assert _sells_filled(events) == dict.fromkeys(DAYS, 2)
    accepted = sum(isinstance(e, OrderAccepted) for e in events)
    assert accepted == 4 * len(DAYS)


def test_without_the_rule_nothing_changes(tmp_path: Path) -> None:
    config, events = _run(tmp_path, "plain", "10000", None)
    assert _refusals(events) == []
    assert '"pdt"' not in config.canonical_json()
    assert all(not e.snapshot.day_trades for e in events if isinstance(e, StateSnapshotted))
