"""Issue 3 "done means" on real A-share data (skipped with a reason without ../shared/data).

* SPDB 600000 daily bars 2001-07..2003-06 (raw TDX): ``limit_up_chase`` buys the session after
  each real limit-up close. With limit buys one tick above the next limit-up every order is
  refused with ``CN_PRICE_LIMIT``; with market orders the fills pay the fee rows the config
  supplies (the built-in tables start 2008/2012/2015), and without rows the run is refused
  before its journal opens, with the table, the day and the instrument named. SPDB never had a
  one-price (locked) limit-up session in this data, so
* 000005.SZ 2002-06 (hikyuu h5) gives the locked case: it closed at limit-up on 2002-06-21 and
  traded the whole of 2002-06-24 at 6.40, the limit-up; the chase order expires with
  ``CN_LIMIT_LOCKED``. (Closes 5.82 -> 6.40 -> 7.04 are two +10% steps, so the ±10% band, not
  the ST ±5% one, applied: the instrument carries no ST period here.)
* SPDB one-minute bars 2018-12..2019-02: ``intraday_round_trip`` buys in the morning, is
  refused (``CN_T_PLUS_1``) when it sells the same shares in the afternoon and sells them the
  next session, paying stamp duty on the sell only; partial fills (1% of each minute's volume)
  pay the 5 CNY commission minimum once per order.

Every fee line is recomputed here from the rates, to the fen; every run replays bit for bit.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from domain.events import (
    DayClosed,
    LedgerPosted,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RunFinished,
)
from domain.fixed import Rounding, apply_rate, from_decimal_text
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import load_panel, write_dataset
from models.strategies.cn_rules_probes import IntradayRoundTrip, LimitUpChase
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel

HIKYUU = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn" / "hikyuu"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not HIKYUU.is_dir(), reason=f"real A-share data not found at {HIKYUU}"),
]

CASH = "1000000"
COMMISSION = FillModel(commission_e8=25_000, commission_min_minor=500)  # 0.025%, 5 CNY minimum
# Rates the *user* supplies for 2001-2003 (illustrative, not verified by the project): stamp
# duty both sides 0.4% then 0.2% from 2001-11-16, handling 0.0087%, and explicit zeros for the
# transfer fee (charged per share on SSE then, which a notional rate cannot express) and the
# CSRC fee.
USER_ROWS = CnFeeRows(
    rows=[
        CnFeeRow(
            effective_from=20010101,
            stamp_duty_buy_e8=400_000,
            stamp_duty_sell_e8=400_000,
            transfer_e8=0,
            handling_e8=8_700,
            regulatory_e8=0,
        ),
        CnFeeRow(
            effective_from=20011116,
            stamp_duty_buy_e8=200_000,
            stamp_duty_sell_e8=200_000,
            transfer_e8=0,
            handling_e8=8_700,
            regulatory_e8=0,
        ),
    ],
    source="test: illustrative user rates for 2001-2003",
)


def _instrument(symbol: str, venue: str) -> Instrument:
    return Instrument(
        instrument_id=1,
        symbol=symbol,
        venue=venue,
        asset_class="equity",
        currency="CNY",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=100,
        board="main",
    )


def _fen(text: str) -> int:
    return from_decimal_text(text, 2, Rounding.HALF_EVEN)


def _utc_ns(day: int, hhmm: str) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T{hhmm}"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))  # Asia/Shanghai


def _daily_rows(name: str, first: int, last: int) -> list[tuple[int, int, int, int, int, int]]:
    """(day, open, high, low, close, volume in shares); h5 files count volume in lots of 100."""
    rows = []
    with (HIKYUU / name).open() as handle:
        for row in csv.DictReader(handle):
            day = int(row["date"].replace("-", ""))
            if first <= day <= last:
                volume = int(float(row["volume"])) * (100 if name.startswith("h5_") else 1)
                rows.append((day, *(_fen(row[k]) for k in ("open", "high", "low", "close")), volume))
    return rows


def _daily_dataset(path: Path, inst: Instrument, rows: list[tuple[int, int, int, int, int, int]]) -> Path:
    columns = list(zip(*rows, strict=True))
    bars = pa.table(
        {
            "ts_ns": [_utc_ns(day, "15:00") for day in columns[0]],
            "day": list(columns[0]),
            "instrument_id": [inst.instrument_id] * len(rows),
            "open": list(columns[1]),
            "high": list(columns[2]),
            "low": list(columns[3]),
            "close": list(columns[4]),
            "volume": list(columns[5]),
        }
    )
    write_dataset(path, name=path.name, frequency="1d", calendar="XSHG", instruments=[inst], bars=bars)
    return path


def _run(
    tmp_path: Path, dataset: Path, name: str, params: dict[str, object], **fields: object
) -> list[object]:
    config = BacktestConfig(
        run_id=name,
        dataset=str(dataset),
        journal=str(tmp_path / name),
        currency="CNY",
        initial_cash=str(fields.pop("initial_cash", CASH)),
        strategy=StrategyConfig(name=name, params=params),
        **fields,  # type: ignore[arg-type]
    )
    factory = {"limit_up_chase": LimitUpChase, "intraday_round_trip": IntradayRoundTrip}[name]
    run_backtest(config, factory(**params))  # type: ignore[arg-type]
    journal = open_journal(tmp_path / name)
    outcome = replay(
        journal,
        lambda run, ref: build_setup(config, factory(**params), expected_hash=ref.content_hash),  # type: ignore[arg-type]
    )
    assert outcome.ok, outcome.divergence
    assert outcome.records_compared > 0
    return [event for _, event in journal.events()]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _limit_up(ref: int) -> int:
    """±10% band: ref x 1.1, half up to the fen (independent of domain.markets)."""
    return (22 * ref + 10) // 20


def _limit_up_closes(rows: list[tuple[int, int, int, int, int, int]]) -> list[int]:
    return [i for i in range(1, len(rows)) if rows[i][4] == _limit_up(rows[i - 1][4])]


def _fill_postings(events: list[object], fill: OrderFilled) -> dict[str, int]:
    memo = f"fill {fill.order_id}"
    posted = [e for e in events if isinstance(e, LedgerPosted) and e.memo == memo and e.ts_ns == fill.ts_ns]
    index = [
        e
        for e in events
        if isinstance(e, OrderFilled) and e.order_id == fill.order_id and e.ts_ns == fill.ts_ns
    ]
    assert len(posted) == len(index) == 1
    totals: dict[str, int] = {}
    for posting in posted[0].postings:
        totals[posting.account] = totals.get(posting.account, 0) + posting.amount_minor
    return totals


def _assert_ledger_balances(events: list[object], initial_minor: int, expected_cash_minor: int) -> None:
    cash = 0
    for event in events:
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0, event.memo
            cash += sum(p.amount_minor for p in event.postings if p.account == "assets:cash:CNY")
    assert cash == expected_cash_minor
    last_day = [e for e in events if isinstance(e, DayClosed)][-1]
    assert last_day.cash_minor == expected_cash_minor
    assert isinstance(events[-1], RunFinished)
    assert initial_minor > 0


def _spdb_daily(tmp_path: Path) -> tuple[Path, list[tuple[int, int, int, int, int, int]]]:
    rows = _daily_rows("600000.SH_day_raw_tdx.csv", 20010701, 20030630)
    return _daily_dataset(tmp_path / "spdb_daily", _instrument("600000", "XSHG"), rows), rows


def test_spdb_limit_buys_above_the_next_limit_up_are_refused(tmp_path: Path) -> None:
    dataset, rows = _spdb_daily(tmp_path)
    signals = _limit_up_closes(rows)
    assert [rows[i][0] for i in signals] == [20011023, 20020624, 20030114, 20030428]
    events = _run(tmp_path, dataset, "limit_up_chase", {"weight": 0.5, "limit_ticks": 1}, cn_fees=USER_ROWS)
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    expected = []
    for i in signals:
        up = _limit_up(rows[i][4])
        expected.append(f"CN_PRICE_LIMIT: limit_up={_yuan(up)}, order_px={_yuan(up + 1)}")
    assert [e.reason for e in rejected] == expected
    assert expected[1] == "CN_PRICE_LIMIT: limit_up=18.46, order_px=18.47"  # SPDB closed 16.78 on 2002-06-24
    assert [(o.order_type, o.side, o.limit_px_raw) for o in submitted] == [
        ("limit", 1, _limit_up(rows[i][4]) + 1) for i in signals
    ]
    assert [o.order_id for o in submitted] == [r.order_id for r in rejected]
    assert not [e for e in events if isinstance(e, OrderFilled)]
    initial = _fen(CASH) * 1
    _assert_ledger_balances(events, initial, initial)


def test_spdb_chase_fills_pay_the_users_dated_fee_rows_to_the_fen(tmp_path: Path) -> None:
    dataset, rows = _spdb_daily(tmp_path)
    signals = _limit_up_closes(rows)
    events = _run(tmp_path, dataset, "limit_up_chase", {"weight": 0.5}, cn_fees=USER_ROWS, fill=COMMISSION)
    assert not [e for e in events if isinstance(e, OrderRejected | OrderExpired)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    day_of = {_utc_ns(r[0], "15:00"): r for r in rows}
    # buy at the open of the session after the limit-up close, sell at the open of the one after
    expected = []
    for i in signals:
        expected += [(1, rows[i + 1][0], rows[i + 1][1]), (-1, rows[i + 2][0], rows[i + 2][1])]
    assert [(f.side, day_of[f.ts_ns][0], f.fill_px_raw) for f in fills] == expected
    initial = _fen(CASH)
    cash = initial
    for fill in fills:
        day = day_of[fill.ts_ns][0]
        assert fill.leaves_qty_raw == 0
        assert fill.notional_minor == fill.fill_qty_raw * fill.fill_px_raw  # fen = shares x price in fen
        stamp_rate = 400_000 if day < 20011116 else 200_000  # both sides, per the user's rows
        stamp = apply_rate(fill.notional_minor, stamp_rate, Rounding.HALF_UP)
        handling = apply_rate(fill.notional_minor, 8_700, Rounding.HALF_UP)
        commission = max(apply_rate(fill.notional_minor, 25_000, Rounding.HALF_UP), 500)
        posted = _fill_postings(events, fill)
        lines = {k: v for k, v in posted.items() if k.startswith("expenses:")}
        assert lines == {
            "expenses:stamp_duty:CNY": stamp,
            "expenses:handling_fee:CNY": handling,
            "expenses:commission:CNY": commission,
        }  # transfer and CSRC rows are explicit zeros: no posting line
        assert fill.commission_minor == commission
        cash += -fill.side * fill.notional_minor - stamp - handling - commission
        assert posted["assets:cash:CNY"] == -fill.side * fill.notional_minor - stamp - handling - commission
    assert [day_of[f.ts_ns][0] for f in fills[:3]] == [20011024, 20011025, 20020625]
    stamps = [_fill_postings(events, f)["expenses:stamp_duty:CNY"] for f in fills[1:3]]
    assert stamps == [  # 2001-10-25 still at the first row's 0.4%, 2002-06-25 at the second's 0.2%
        apply_rate(fills[1].notional_minor, 400_000, Rounding.HALF_UP),
        apply_rate(fills[2].notional_minor, 200_000, Rounding.HALF_UP),
    ]
    _assert_ledger_balances(events, initial, cash)


def test_spdb_without_fee_rows_is_refused_before_its_journal_opens(tmp_path: Path) -> None:
    dataset, _ = _spdb_daily(tmp_path)
    config = BacktestConfig(
        run_id="limit_up_chase",
        dataset=str(dataset),
        journal=str(tmp_path / "journal"),
        currency="CNY",
        initial_cash=CASH,
        strategy=StrategyConfig(name="limit_up_chase", params={"weight": 0.5}),
    )
    with pytest.raises(
        KernelError,
        match=r"600000 \(CN stamp duty: no rule before 20080424 \(asked for 20010702\).*\[cn_fees\] table "
        r"with a row dated on or before 20010702",
    ):
        run_backtest(config, LimitUpChase(weight=0.5))
    assert not (tmp_path / "journal").exists()  # not a run stopped at its first fill (2001-10-24)


def test_000005_chase_into_a_locked_limit_up_session_expires(tmp_path: Path) -> None:
    rows = _daily_rows("h5_000005.SZ_day_raw.csv", 20020601, 20020731)
    dataset = _daily_dataset(tmp_path / "sz5", _instrument("000005", "XSHE"), rows)
    index = {r[0]: i for i, r in enumerate(rows)}
    locked = rows[index[20020624]]
    assert locked[1:5] == (640, 640, 640, 640) and _limit_up(rows[index[20020621]][4]) == 640
    at_limit = msgspec.structs.replace(COMMISSION, at_limit="fill")  # fills at an open at the limit
    events = _run(tmp_path, dataset, "limit_up_chase", {"weight": 0.5}, cn_fees=USER_ROWS, fill=at_limit)
    expired = [e for e in events if isinstance(e, OrderExpired)]
    assert [(e.order_id, e.reason, e.ts_ns) for e in expired] == [
        (
            "limit_up_chase-20020621-000001",
            "CN_LIMIT_LOCKED: limit_up=6.40, bar_low=6.40",
            _utc_ns(20020624, "15:00"),
        )
    ]
    first_fill = next(e for e in events if isinstance(e, OrderFilled))
    # 2002-06-24 closed at limit-up again: the next chase buys at 2002-06-25's open, 7.04
    assert (first_fill.order_id, first_fill.side, first_fill.fill_px_raw, first_fill.ts_ns) == (
        "limit_up_chase-20020624-000002",
        1,
        704,
        _utc_ns(20020625, "15:00"),
    )
    stamp = apply_rate(first_fill.notional_minor, 200_000, Rounding.HALF_UP)
    assert _fill_postings(events, first_fill)["expenses:stamp_duty:CNY"] == stamp


def test_000005_a_session_that_opens_at_limit_up_gives_a_buy_no_fill_by_default(tmp_path: Path) -> None:
    """2002-06-25 opened at its limit-up, 7.04, and traded below it later: with the default
    ``fill.at_limit = "skip"`` the chase bought there is not filled (the queue at the limit),
    and expires at the close naming why."""
    rows = _daily_rows("h5_000005.SZ_day_raw.csv", 20020601, 20020731)
    dataset = _daily_dataset(tmp_path / "sz5", _instrument("000005", "XSHE"), rows)
    index = {r[0]: i for i, r in enumerate(rows)}
    opened = rows[index[20020625]]
    assert opened[1] == 704 == _limit_up(rows[index[20020624]][4]) and opened[3] < 704  # not locked
    events = _run(tmp_path, dataset, "limit_up_chase", {"weight": 0.5}, cn_fees=USER_ROWS, fill=COMMISSION)
    expired = {e.order_id: e.reason for e in events if isinstance(e, OrderExpired)}
    reason = "CN_LIMIT_QUEUE: opened at limit_up=7.04 (fill.at_limit skip)"
    assert expired["limit_up_chase-20020624-000002"] == reason
    assert not [e for e in events if isinstance(e, OrderFilled) and e.ts_ns == _utc_ns(20020625, "15:00")]


# --- one-minute bars: T+1 --------------------------------------------------------------------


def _minute_dataset(path: Path) -> tuple[Path, list[tuple[int, str, int, int]]]:
    """One-price minute bars (hikyuu 分时), stamped at the minute's end; vol is in lots."""
    rows = []
    with (HIKYUU / "time1min_600000.SH.csv").open() as handle:
        for row in csv.DictReader(handle):
            stamp = row["datetime"]
            rows.append(
                (int(stamp[:10].replace("-", "")), stamp[11:16], _fen(row["price"]), int(row["vol"]) * 100)
            )
    end_ns = [_utc_ns(day, hhmm) + 60_000_000_000 for day, hhmm, _, _ in rows]
    bars = pa.table(
        {
            "ts_ns": end_ns,
            "day": [r[0] for r in rows],
            "instrument_id": [1] * len(rows),
            "open": [r[2] for r in rows],
            "high": [r[2] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[2] for r in rows],
            "volume": [r[3] for r in rows],
        }
    )
    inst = _instrument("600000", "XSHG")
    write_dataset(path, name="spdb-1m", frequency="1m", calendar="XSHG", instruments=[inst], bars=bars)
    return path, rows


def test_spdb_minutes_same_session_sell_refused_next_session_sell_pays_stamp_duty(tmp_path: Path) -> None:
    dataset, rows = _minute_dataset(tmp_path / "spdb_1m")
    assert (rows[0][0], rows[-1][0], len(rows)) == (20181203, 20190201, 43 * 240)
    params = {"weight": 0.5, "buy_bar": 30, "sell_bar": 200, "exit_bar": 10, "every": 5}
    fill = FillModel(commission_e8=25_000, commission_min_minor=500, participation_e8=1_000_000)
    events = _run(tmp_path, dataset, "intraday_round_trip", params, fill=fill, initial_cash="100000")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    bought: dict[str, int] = {}
    for f in fills:
        if f.side > 0:
            bought[f.order_id] = bought.get(f.order_id, 0) + f.fill_qty_raw
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    sessions = sorted({r[0] for r in rows})
    round_trips = list(range(0, len(sessions) - 1, 5))
    assert len(bought) == len(rejected) == len(round_trips) == 9
    assert [e.reason for e in rejected] == [
        f"CN_T_PLUS_1: sellable=0, order_qty={q}, holding={q}, bought_today={q}" for q in bought.values()
    ]
    for rejection, (buy_id, qty) in zip(rejected, bought.items(), strict=True):
        order = submitted[rejection.order_id]
        assert (order.side, order.qty_raw) == (-1, qty)
        assert buy_id.split("-")[-2] == rejection.order_id.split("-")[-2]  # same session
    # stamp duty 0.1% on sells only; transfer 0.002%, handling 0.00487%, CSRC 0.002% both sides
    by_order: dict[str, list[OrderFilled]] = {}
    for f in fills:
        by_order.setdefault(f.order_id, []).append(f)
    assert any(len(parts) > 1 for parts in by_order.values())  # partial fills happen
    cash = _fen("100000")
    for order_id, parts in by_order.items():
        notional = 0
        charged = 0
        for f in parts:
            notional += f.notional_minor
            total = max(apply_rate(notional, 25_000, Rounding.HALF_UP), 500)
            assert f.commission_minor == total - charged  # the minimum once per order
            charged = total
            stamp = apply_rate(f.notional_minor, 100_000, Rounding.HALF_UP) if f.side < 0 else 0
            lines = {
                "expenses:stamp_duty:CNY": stamp,
                "expenses:transfer_fee:CNY": apply_rate(f.notional_minor, 2_000, Rounding.HALF_UP),
                "expenses:handling_fee:CNY": apply_rate(f.notional_minor, 4_870, Rounding.HALF_UP),
                "expenses:regulatory_fee:CNY": apply_rate(f.notional_minor, 2_000, Rounding.HALF_UP),
                "expenses:commission:CNY": f.commission_minor,
            }
            lines = {k: v for k, v in lines.items() if v}
            posted = _fill_postings(events, f)
            assert {k: v for k, v in posted.items() if k.startswith("expenses:")} == lines
            cash += -f.side * f.notional_minor - sum(lines.values())
        assert charged == max(apply_rate(notional, 25_000, Rounding.HALF_UP), 500)
        sold = [f for f in parts if f.side < 0]
        if sold:  # the sell went through the session after the buy
            assert sum(f.fill_qty_raw for f in sold) == submitted[order_id].qty_raw
    sells = [f for f in fills if f.side < 0]
    assert sum(f.fill_qty_raw for f in sells) == sum(bought.values())
    _assert_ledger_balances(events, _fen("100000"), cash)


def _truncate(panel: Panel, steps: int) -> Panel:
    cut = {
        name: getattr(panel, name)[:steps]
        for name in ("ts_ns", "day", "open", "high", "low", "close", "volume", "valid", "last_close")
    }
    return replace(panel, **cut)


@pytest.mark.parametrize("which", ["daily", "minute"])
def test_probe_strategies_decide_from_the_past_only(tmp_path: Path, which: str) -> None:
    if which == "daily":
        path, _ = _spdb_daily(tmp_path)
        strategy: LimitUpChase | IntradayRoundTrip = LimitUpChase(weight=0.5, limit_ticks=1)
        cuts = (100, 231, 400)
    else:
        path, _ = _minute_dataset(tmp_path / "m")
        strategy = IntradayRoundTrip(every=3)
        cuts = (500, 1230, 7000)
    panel, _ = load_panel(path)
    full = {int(s): strategy.decide(MarketView(panel, int(s))) for s in strategy.schedule(panel)}
    prices = {s: getattr(strategy, "limit_prices", lambda v: None)(MarketView(panel, s)) for s in full}
    for cut in cuts:
        short = _truncate(panel, cut)
        steps = [int(s) for s in strategy.schedule(short)]
        assert steps == sorted(s for s in full if s < cut)
        for step in steps:
            np.testing.assert_array_equal(strategy.decide(MarketView(short, step)), full[step])  # type: ignore[arg-type]
            assert getattr(strategy, "limit_prices", lambda v: None)(MarketView(short, step)) == prices[step]
