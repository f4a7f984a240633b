"""A-share rules enforced by the kernel and the simulated venue: T+1 rejections, limit-locked
bars that cannot fill (day orders expire with the reason), dated statutory fees as postings,
all replayed bit for bit. Built on hand-made bars (exact limit prices) and on real SPDB data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from domain.events import LedgerPosted, OrderExpired, OrderFilled, OrderRejected
from domain.fixed import Rounding, apply_rate
from domain.riskrules import policy_from_mapping
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import SPDB, Scripted

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn" / "hikyuu"


def _ts(day: int, hhmm: str = "15:00") -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T{hhmm}"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))  # Asia/Shanghai


def _dataset(path: Path, stamps: list[tuple[int, str]], ohlc: list[tuple[int, int, int, int]]) -> Path:
    o, h, low, c = (list(col) for col in zip(*ohlc, strict=True))
    bars = pa.table(
        {
            "ts_ns": [_ts(day, hhmm) for day, hhmm in stamps],
            "day": [day for day, _ in stamps],
            "instrument_id": [1] * len(stamps),
            "open": o,
            "high": h,
            "low": low,
            "close": c,
            "volume": [1_000_000] * len(stamps),
        }
    )
    write_dataset(path, name="cn-test", frequency="1d", calendar="XSHG", instruments=[SPDB], bars=bars)
    return path


def _run(tmp_path: Path, dataset: Path, targets: dict[int, float]) -> list[object]:
    config = BacktestConfig(
        run_id="cn",
        dataset=str(dataset),
        journal=str(tmp_path / "j"),
        currency="CNY",
        initial_cash="1000000",
        strategy=StrategyConfig(name="scripted"),
        fill=FillModel(commission_e8=25_000, commission_min_minor=500),
        risk=policy_from_mapping({"name": {"limit_e8": 100_000_000, "action": "clip"}}),
    )
    run_backtest(config, Scripted(targets))
    journal = open_journal(tmp_path / "j")
    outcome = replay(
        journal, lambda run, ref: build_setup(config, Scripted(targets), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    return [event for _, event in journal.events()]


def _postings(events: list[object], order_id: str) -> dict[str, int]:
    (posted,) = [e for e in events if isinstance(e, LedgerPosted) and e.memo == f"fill {order_id}"]
    totals: dict[str, int] = {}
    for posting in posted.postings:
        totals[posting.account] = totals.get(posting.account, 0) + posting.amount_minor
    return totals


def test_same_session_sell_is_refused_by_t1_and_goes_through_next_session(tmp_path: Path) -> None:
    stamps = [(20240102, t) for t in ("10:00", "10:30", "11:00", "14:00")]
    stamps += [(20240103, t) for t in ("10:00", "10:30", "11:00", "14:00")]
    bar = (1000, 1010, 990, 1000)
    # buy at 10:00 (fills 10:30), sell at 10:30 and 11:00 the same day, sell again next morning
    events = _run(tmp_path, _dataset(tmp_path / "data", stamps, [bar] * 8), {0: 0.5, 1: 0.0, 2: 0.0, 4: 0.0})
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.reason for e in rejected] == [
        "CN_T_PLUS_1: sellable=0, order_qty=50000, holding=50000, bought_today=50000"
    ] * 2
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.side, f.ts_ns) for f in fills] == [(1, _ts(20240102, "10:30")), (-1, _ts(20240103, "10:30"))]


def test_daily_fills_pay_dated_statutory_fees(tmp_path: Path) -> None:
    stamps = [(d, "15:00") for d in (20240102, 20240103, 20240104)]
    bars = [(1000, 1010, 990, 1000), (1005, 1020, 1000, 1010), (1010, 1030, 1005, 1020)]
    events = _run(tmp_path, _dataset(tmp_path / "data", stamps, bars), {0: 0.5, 1: 0.0})
    buy, sell = [e for e in events if isinstance(e, OrderFilled)]
    assert (buy.fill_px_raw, sell.fill_px_raw) == (1005, 1010)  # a close decision works next session
    sold = _postings(events, sell.order_id)
    # From 2023-08-28 stamp duty is 0.05% of a sell's notional (none on buys), half up to the fen.
    assert sold["expenses:stamp_duty:CNY"] == apply_rate(sell.notional_minor, 50_000, Rounding.HALF_UP)
    assert sold["expenses:transfer_fee:CNY"] == apply_rate(sell.notional_minor, 1_000, Rounding.HALF_UP)
    assert sum(sold.values()) == 0
    assert "expenses:stamp_duty:CNY" not in _postings(events, buy.order_id)


def test_order_into_a_locked_limit_up_expires_with_the_reason(tmp_path: Path) -> None:
    stamps = [(d, "15:00") for d in (20240102, 20240103, 20240104)]
    bars = [(1000, 1010, 990, 1000), (1100, 1100, 1100, 1100), (1150, 1160, 1140, 1150)]
    events = _run(tmp_path, _dataset(tmp_path / "data", stamps, bars), {0: 0.5})
    expired = [e for e in events if isinstance(e, OrderExpired)]
    assert [e.reason for e in expired] == ["CN_LIMIT_LOCKED: limit_up=11.00, bar_low=11.00"]
    assert not [e for e in events if isinstance(e, OrderFilled)]


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/cn/hikyuu (real SPDB minute prices)")
def test_spdb_minutes_t1_and_stamp_duty_replay(tmp_path: Path) -> None:
    frame = pl.read_csv(SHARED / "time1min_600000.SH.csv")
    stamps = [(int(d[:10].replace("-", "")), d[11:16]) for d in frame["datetime"]]
    prices = [round(p * 100) for p in frame["price"]]
    dataset = _dataset(tmp_path / "data", stamps, [(p, p, p, p) for p in prices])
    starts = [i for i in range(len(stamps)) if i == 0 or stamps[i][0] != stamps[i - 1][0]]
    targets: dict[int, float] = {}
    for session in range(0, len(starts) - 1, 5):  # every 5th session
        first, following = starts[session], starts[session + 1]
        targets.update({first + 30: 0.5, first + 200: 0.0, following + 10: 0.0})
    events = _run(tmp_path, dataset, targets)
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    sells = [e for e in events if isinstance(e, OrderFilled) and e.side < 0]
    assert len(rejected) == len(sells) == len(range(0, len(starts) - 1, 5))
    assert all(e.reason.startswith("CN_T_PLUS_1: sellable=0") for e in rejected)
    for sell in sells:  # 2018-12 .. 2019-02: stamp duty 0.1% on sells
        stamp = _postings(events, sell.order_id)["expenses:stamp_duty:CNY"]
        assert stamp == apply_rate(sell.notional_minor, 100_000, Rounding.HALF_UP)
