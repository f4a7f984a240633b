"""武钢股份 (600005.SH) held through its 2011-04-07 rights issue (10配3 at 3.70 CNY) and its
2011-06-23 dividend (10派1), on the raw hikyuu daily bars and 权息 table in
../shared/data/cn/hikyuu, with both holder decisions (``[corporate_actions] rights``).

Honest set-up notes:

* The stock was suspended 2011-03-28..2011-04-06 (the subscription window); the previous close
  before the ex-date is 2011-03-25's 4.73. The model pays for the rights at the ex-date session
  (the real payment was during the suspension, the listing later: U, ``docs/markets.md``).
* 2011 A-share transfer, handling and CSRC fees are not in the built-in tables; the config
  supplies illustrative user rows (stamp duty as the built-in table has it: 0.1% on sells).
* The 权息 table has no pay date: ``pay_date`` 0 (cash on the ex-date) is this test's choice.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from cli.main import main as tape
from domain.events import (
    CorporateActionApplied,
    DatasetReferenced,
    LedgerPosted,
    OrderFilled,
    OrderSubmitted,
    RightsIssueApplied,
    RunStarted,
    StateSnapshotted,
)
from domain.fixed import Rounding, from_decimal_text
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import Board, CnCorporateAction, CnFeeRow, CnFeeRows, CorporateAction, cn_price_limits
from domain.orders import new_order
from kernel.corporate_actions import CorporateActionConfig, actions_of
from kernel.replay import replay
from kernel.setup import RunSetup
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_hikyuu_actions, parse_hikyuu_day
from lake.store import actions_table, dataset_ref, load_panel, write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import one_name_policy

HIKYUU = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not HIKYUU.is_dir(), reason=f"real market data not present at {HIKYUU}"),
]
FIRST, LAST = 20110201, 20110630
BUY_DAY, EX_DAY, DIVIDEND_DAY = 20110301, 20110407, 20110623
WISCO = Instrument(
    instrument_id=5,
    symbol="600005",
    venue="XSHG",
    asset_class="equity",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=100,
    board="main",
    listing_day=19990803,
)
USER_FEES = CnFeeRows(
    rows=[
        CnFeeRow(
            effective_from=20110101,
            stamp_duty_buy_e8=0,
            stamp_duty_sell_e8=100_000,
            transfer_e8=0,
            handling_e8=8_700,
            regulatory_e8=0,
        )
    ],
    source="test: illustrative user rates for 2011",
)


def _ts(day: int) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T15:00"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))  # Asia/Shanghai


def _fen(text: str) -> int:
    return from_decimal_text(text, 2, Rounding.HALF_EVEN)


def _actions() -> list[CorporateAction]:
    actions = []
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        for r in csv.DictReader(handle):
            if (r["market"], r["code"]) != ("SH", "600005") or not FIRST <= int(r["date"]) <= LAST:
                continue
            cn = CnCorporateAction.from_text(
                int(r["date"]),
                bonus=r["bonus_shares_per10"],
                capitalization=r["capitalization_shares_per10"],
                rights=r["rights_shares_per10"],
                rights_price=r["rights_price"],
                cash=r["cash_dividend_per10"],
            )
            if cn.affects_price:
                actions.append(CorporateAction.from_cn(WISCO.instrument_id, cn))
    return actions


def _dataset(path: Path, *, with_actions: bool = True) -> Path:
    with (HIKYUU / "h5_600005.SH_day_raw.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if FIRST <= int(r["date"].replace("-", "")) <= LAST]
    days = [int(r["date"].replace("-", "")) for r in rows]
    bars = pa.table(
        {
            "ts_ns": [_ts(day) for day in days],
            "day": days,
            "instrument_id": [WISCO.instrument_id] * len(days),
            **{k: [_fen(r[k]) for r in rows] for k in ("open", "high", "low", "close")},
            "volume": [int(r["volume"]) * 100 for r in rows],  # h5 volume is in lots of 100
        }
    )
    table = actions_table(_actions()) if with_actions else None
    write_dataset(
        path, name=path.name, frequency="1d", calendar="XSHG", instruments=[WISCO], bars=bars, actions=table
    )
    return path


class BuyAt:
    """Target ``weight`` at the close of one session, then hold."""

    strategy_id = "buy_at"

    def __init__(self, day: int, weight: float) -> None:
        self.day, self.weight = day, weight

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(panel.day_end_mask() & (panel.day == self.day)).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self.weight])


def _config(tmp_path: Path, dataset: Path, name: str, rights: str) -> BacktestConfig:
    return BacktestConfig(
        run_id=name,
        dataset=str(dataset),
        journal=str(tmp_path / name),
        currency="CNY",
        initial_cash="1000000",
        strategy=StrategyConfig(name="buy_at"),
        fill=FillModel(commission_e8=25_000, commission_min_minor=500),
        risk=one_name_policy(),
        cn_fees=USER_FEES,
        corporate_actions=CorporateActionConfig(rights=rights),
    )


def _run(config: BacktestConfig, weight: float) -> list[object]:
    run_backtest(config, BuyAt(BUY_DAY, weight))
    journal = open_journal(config.journal)

    def build(run: RunStarted, ref: DatasetReferenced) -> RunSetup:
        journaled = BacktestConfig.from_json(run.config_json)  # the decision comes from the journal
        return build_setup(journaled, BuyAt(BUY_DAY, weight), expected_hash=ref.content_hash)

    outcome = replay(journal, build)
    assert outcome.ok, outcome.divergence
    for day in (EX_DAY, DIVIDEND_DAY):  # tape replay --day: from the previous day's snapshot
        outcome = replay(journal, build, day=day)
        assert outcome.ok and outcome.records_compared > 0, (day, outcome.divergence)
    return [event for _, event in journal.events()]


def _check_ledger(events: list[object]) -> dict[str, int]:
    balances: dict[str, int] = {}
    for event in events:
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0, event.memo
            for p in event.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
            assert balances.get("assets:cash:CNY", 0) >= 0, event.memo  # no step overdraws cash
    return balances


def test_the_data_set_carries_the_rights_issue(tmp_path: Path) -> None:
    assert [(a.ex_day, a.rights_to, a.rights_from, a.rights_price_e8, a.cash_e8) for a in _actions()] == [
        (EX_DAY, 3, 10, 370_000_000, 0),  # 10配3 at 3.70
        (DIVIDEND_DAY, 0, 1, 0, 10_000_000),  # 10派1: 0.10 CNY a share
    ]
    panel, _ = load_panel(_dataset(tmp_path / "wisco"))
    assert panel.action_rights_to.tolist() == [3, 0]
    assert panel.action_rights_price_e8.tolist() == [370_000_000, 0]


def test_subscribe_through_the_rights_issue(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "wisco")
    config = _config(tmp_path, dataset, "subscribe", "subscribe")
    events = _run(config, 0.5)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and all(f.side == 1 and f.ts_ns < _ts(EX_DAY) for f in fills)
    held = sum(f.fill_qty_raw for f in fills)
    cost = sum(f.notional_minor for f in fills)
    rights = [e for e in events if isinstance(e, RightsIssueApplied)]
    assert len(rights) == 1
    event = rights[0]
    entitlement = held * 3 // 10
    assert (event.ts_ns, event.qty_before_raw, event.entitlement_raw) == (_ts(EX_DAY), held, entitlement)
    assert (event.subscribed_raw, event.lapsed_raw) == (entitlement, 0)
    assert event.paid_minor == entitlement * 370  # 3.70 CNY a share, in fen, exactly
    subscription = [
        e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("rights subscription")
    ]
    assert [{p.account: p.amount_minor for p in e.postings} for e in subscription] == [
        {"assets:inventory:5": event.paid_minor, "assets:cash:CNY": -event.paid_minor}
    ]
    # the dividend of 2011-06-23 is paid on the holding with the rights shares: 0.10 CNY each
    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(e.ex_day, e.qty_before_raw, e.dividend_minor) for e in applied] == [
        (EX_DAY, held, 0),
        (DIVIDEND_DAY, held + entitlement, (held + entitlement) * 10),
    ]
    balances = _check_ledger(events)
    assert sum(balances.values()) == 0
    final = [e for e in events if isinstance(e, StateSnapshotted)][-1].snapshot
    positions = [(p.instrument_id, p.qty_raw) for p in final.positions]
    assert positions == [(5, held + entitlement)]
    fill_cash = sum(
        p.amount_minor
        for e in events
        if isinstance(e, LedgerPosted) and e.memo.startswith("fill ")
        for p in e.postings
        if p.account == "assets:cash:CNY"
    )
    assert fill_cash < -cost  # the buys, their commission and fees
    # cash = initial + fills - rights + dividend: nothing else moved it
    assert (
        balances["assets:cash:CNY"] == 100_000_000 + fill_cash - event.paid_minor + (held + entitlement) * 10
    )
    assert balances["assets:inventory:5"] == final.positions[0].cost_minor
    # the SQLite ledger projection holds the subscribed shares too
    assert tape(["rebuild", config.journal, "--db", str(tmp_path / "ledger.db")]) == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT instrument_id, qty_raw FROM positions").fetchall() == [
            (5, held + entitlement)
        ]


def test_lapse_and_short_cash(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "wisco")
    lapse = _run(_config(tmp_path, dataset, "lapse", "lapse"), 0.5)
    event = next(e for e in lapse if isinstance(e, RightsIssueApplied))
    assert (event.subscribed_raw, event.paid_minor, event.lapsed_raw) == (0, 0, event.entitlement_raw)
    assert event.entitlement_raw > 0 and event.decision == "lapse"
    assert not [e for e in lapse if isinstance(e, LedgerPosted) and e.memo.startswith("rights subscription")]
    # 95% invested: the cash left pays for part of the entitlement only, and ends near zero
    short = _run(_config(tmp_path, dataset, "short", "subscribe"), 0.95)
    event = next(e for e in short if isinstance(e, RightsIssueApplied))
    assert 0 < event.subscribed_raw < event.entitlement_raw
    assert event.lapsed_raw == event.entitlement_raw - event.subscribed_raw
    balances: dict[str, int] = {}
    for e in short:
        if isinstance(e, LedgerPosted):
            for p in e.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
            if e.memo.startswith("rights subscription"):
                assert 0 <= balances["assets:cash:CNY"] < 370  # less than one more share's price
    _check_ledger(short)


def test_ex_date_limits_come_from_the_ex_rights_reference(tmp_path: Path) -> None:
    panel, _ = load_panel(_dataset(tmp_path / "wisco"))
    naive, _ = load_panel(_dataset(tmp_path / "wisco-no-actions", with_actions=False))
    step = int(np.flatnonzero(panel.day == EX_DAY)[0]) - 1  # an order sent here works on 2011-04-07
    assert int(panel.day[step]) == 20110325 and int(panel.close[step, 0]) == 473  # suspended in between
    # (4.73 + 3.70 x 0.3) / 1.3 = 4.4923 -> 4.49; ±10%: 4.04 .. 4.94
    limits = cn_price_limits(Board.MAIN, False, EX_DAY, 449, 1)
    assert limits is not None and (limits.down_raw, limits.up_raw) == (404, 494)

    def verdict(venue: SimVenue, side: int, px: int) -> str:
        submitted = OrderSubmitted(
            ts_ns=int(panel.ts_ns[step]),
            order_id=f"o{side}{px}",
            strategy_id="t",
            instrument_id=5,
            side=side,
            order_type="limit",
            qty_raw=100,
            limit_px_raw=px,
            decision_px_raw=px,
        )
        return getattr(venue.submit(step, new_order(submitted)), "reason", "accepted")

    venue = SimVenue(panel, FillModel())
    assert verdict(venue, 1, 494) == "accepted"
    assert verdict(venue, 1, 495).startswith("CN_PRICE_LIMIT: limit_up=4.94")
    assert verdict(venue, -1, 404) == "accepted"
    assert verdict(venue, -1, 403).startswith("CN_PRICE_LIMIT: limit_down=4.04")
    # from the previous close alone (4.73: 4.26 .. 5.20) a sell at 4.10 would be refused
    assert verdict(SimVenue(naive, FillModel()), -1, 410).startswith("CN_PRICE_LIMIT: limit_down=4.26")
    ex = step + 1
    assert limits.down_raw <= int(panel.low[ex, 0]) <= int(panel.high[ex, 0]) <= limits.up_raw


def test_lake_export_carries_the_rights_issue(tmp_path: Path) -> None:
    """hikyuu 权息 rows ingested into a lake reach ``actions.parquet`` with ``export --actions``."""
    table = tmp_path / "actions.csv"
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        lines = handle.readlines()
    table.write_text(lines[0] + "".join(line for line in lines[1:] if line.startswith("SH,600005,")))
    root = tmp_path / "lake"
    ingest(root, [HIKYUU / "h5_600005.SH_day_raw.csv"], parse_hikyuu_day)
    ingest(root, [table], parse_hikyuu_actions)
    lake = Lake(root)
    plain = lake.export(tmp_path / "plain", "1d", calendar="XSHG")
    assert not (tmp_path / "plain" / "actions.parquet").exists()  # without --actions: as before
    assert tape(["export", str(root), str(tmp_path / "set"), "--calendar", "XSHG", "--actions"]) == 0
    ref = dataset_ref(tmp_path / "set")
    assert ref.content_hash != plain.content_hash
    panel, _ = load_panel(tmp_path / "set", expected_hash=ref.content_hash)
    (inst,) = panel.instruments
    rows = [(a.ex_day, a.rights_to, a.rights_from, a.rights_price_e8, a.cash_e8) for a in actions_of(panel)]
    window = [row for row in rows if FIRST <= row[0] <= LAST]
    assert window == [(EX_DAY, 3, 10, 370_000_000, 0), (DIVIDEND_DAY, 0, 1, 0, 10_000_000)]
    assert all(a.instrument_id == inst.instrument_id for a in actions_of(panel))


def test_a_rights_row_without_a_price_stops_the_export_with_the_row_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two hikyuu rows (000528.SZ 1994-10-19, 200013.SZ 1993-06-15) give a rights ratio at price
    0.00; the same defect on the 600005 row must stop ``export --actions`` with the row named."""
    table = tmp_path / "actions.csv"
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        lines = handle.readlines()
    rows = [line for line in lines[1:] if line.startswith("SH,600005,")]
    broken = [line.replace(",3.0000,3.7000,", ",3.0000,0.0000,") for line in rows]
    assert sum(a != b for a, b in zip(rows, broken, strict=True)) == 1
    table.write_text(lines[0] + "".join(broken))
    root = tmp_path / "lake"
    ingest(root, [HIKYUU / "h5_600005.SH_day_raw.csv"], parse_hikyuu_day)
    ingest(root, [table], parse_hikyuu_actions)
    assert tape(["export", str(root), str(tmp_path / "set"), "--calendar", "XSHG", "--actions"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "corporate actions of 600005.SH" in out and "20110407" in out
    assert "needs both a ratio and a price" in out
