"""AAPL buy-and-hold through the 2014 7-for-1 split and eight quarterly dividends, on the raw
abu daily bars in ../shared/data/us/abu_raw (skipped with a reason when absent).

Data construction (explicit, because the file starts ON the split day):

* ``usAAPL_20140609_20160726.csv`` is used as is from 2014-06-09 to 2016-07-26 (raw prices;
  the split shows as ``pre_close=645.57, close=93.70`` on the first row). Prices are parsed
  exactly to the cent; the one value with a third decimal (2015-08-06 low 114.115) is rounded
  half-even to 114.12 (lows are not used by market orders).
* Two bars are **prepended**, for the XNYS sessions 2014-06-05 and 2014-06-06, each with
  ``O=H=L=C=645.57`` (the first row's ``pre_close``, i.e. the real 2014-06-06 close) and volume
  0. The strategy decides once at the 2014-06-05 close; its market order fills at the next bar's
  open, so the 100 shares are bought on 2014-06-06 at 645.57 — held before the split's ex-date.
  (A decision on 2014-06-06 would fill on 2014-06-09, the ex-date, where the kernel cancels
  orders sized before the split.)

Corporate actions (public facts, Apple Investor Relations "Dividend history" / "Stock split
history" pages; amounts per share, dates ex-date / payable date):

* 2014-06-09: 7-for-1 split (ex-date; shareholders of record on 2014-06-02).
* $0.47: 2014-08-07 / 08-14, 2014-11-06 / 11-13, 2015-02-05 / 02-12;
  $0.52: 2015-05-07 / 05-14, 2015-08-06 / 08-13, 2015-11-05 / 11-12, 2016-02-04 / 02-11;
  $0.57: 2016-05-05 / 05-12.
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
    DayClosed,
    LedgerPosted,
    OrderFilled,
    StateSnapshotted,
)
from domain.fixed import Rounding, from_decimal_text
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import session_intervals_ns
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import one_name_policy

ABU = Path(__file__).resolve().parents[3] / "shared" / "data" / "us" / "abu_raw"
AAPL_FILE = ABU / "usAAPL_20140609_20160726.csv"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not AAPL_FILE.exists(), reason=f"real market data not present at {AAPL_FILE}"),
]

AAPL = Instrument(
    instrument_id=1,
    symbol="AAPL",
    venue="XNAS",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
SPLIT = (20140609, 7, 1)
DIVIDENDS = [  # (ex-date, pay date, USD per share as text)
    (20140807, 20140814, "0.47"),
    (20141106, 20141113, "0.47"),
    (20150205, 20150212, "0.47"),
    (20150507, 20150514, "0.52"),
    (20150806, 20150813, "0.52"),
    (20151105, 20151112, "0.52"),
    (20160204, 20160211, "0.52"),
    (20160505, 20160512, "0.57"),
]
PREPENDED_DAYS = (20140605, 20140606)


class BuyOnce:
    """Target ``weight`` of NAV in the one instrument, decided at step 0 only."""

    strategy_id = "buy_once"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self.weight])


def _cents(text: str) -> int:
    return from_decimal_text(text, 2, Rounding.HALF_EVEN)


def _close_ns(day: int) -> int:
    return session_intervals_ns("XNYS", day)[-1][1]


def _dataset(path: Path) -> Path:
    with AAPL_FILE.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["date"] == "20140609" and rows[0]["pre_close"] == "645.57"
    flat = _cents(rows[0]["pre_close"])
    days = [*PREPENDED_DAYS, *(int(row["date"]) for row in rows)]
    prices = {
        name: [flat, flat, *(_cents(row[name]) for row in rows)] for name in ("open", "high", "low", "close")
    }
    volume = [0, 0, *(int(float(row["volume"])) for row in rows)]
    bars = pa.table(
        {
            "ts_ns": [_close_ns(day) for day in days],
            "day": days,
            "instrument_id": [1] * len(days),
            **prices,
            "volume": volume,
        }
    )
    actions = pa.table(
        {
            "instrument_id": [1] * (1 + len(DIVIDENDS)),
            "ex_date": [SPLIT[0], *(ex for ex, _, _ in DIVIDENDS)],
            "pay_date": [0, *(pay for _, pay, _ in DIVIDENDS)],
            "cash_e8": [0, *(from_decimal_text(cash, 8, Rounding.HALF_EVEN) for _, _, cash in DIVIDENDS)],
            "split_to": [SPLIT[1], *([1] * len(DIVIDENDS))],
            "split_from": [SPLIT[2], *([1] * len(DIVIDENDS))],
        }
    )
    write_dataset(
        path,
        name="aapl-2014-2016",
        frequency="1d",
        calendar="XNYS",
        instruments=[AAPL],
        bars=bars,
        actions=actions,
    )
    return path


def _config(tmp_path: Path, **changes: object) -> BacktestConfig:
    fields: dict[str, object] = {
        "run_id": "aapl-hold",
        "dataset": str(_dataset(tmp_path / "aapl")),
        "journal": str(tmp_path / "journal"),
        "currency": "USD",
        "initial_cash": "100000",
        "strategy": StrategyConfig(name="buy_once"),
        "fill": FillModel(commission_e8=50_000),  # 5 bps, half-up to the cent
        "us_regulatory_fees": False,  # SEC/TAF tables start 2023/2024: explicitly off for 2014
        "risk": one_name_policy(),  # one name, 65% of NAV
    }
    fields.update(changes)
    return BacktestConfig(**fields)  # type: ignore[arg-type]


def test_aapl_buy_and_hold_through_split_and_dividends(tmp_path: Path) -> None:
    config = _config(tmp_path)
    strategy = BuyOnce(0.65)  # 65,000 USD at 645.57 -> 100 whole shares
    run_backtest(config, strategy)
    journal = open_journal(config.journal)
    events = [event for _, event in journal.events()]

    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.fill_qty_raw, f.fill_px_raw, f.notional_minor) for f in fills] == [(100, 64_557, 6_455_700)]
    assert fills[0].commission_minor == 3_228  # 6,455,700 x 0.0005 = 3,227.85 cents, half-up
    assert fills[0].ts_ns == _close_ns(20140606)

    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(e.ex_day, e.qty_before_raw, e.qty_after_raw) for e in applied] == [
        (20140609, 100, 700),
        *((ex, 700, 700) for ex, _, _ in DIVIDENDS),
    ]
    split = applied[0]
    assert (split.split_to, split.split_from, split.dividend_minor, split.cash_in_lieu_minor) == (7, 1, 0, 0)
    assert split.cost_minor == 6_455_700  # the cost basis is unchanged by the split
    expected_dividends = [700 * _cents(cash) for _, _, cash in DIVIDENDS]
    assert [e.dividend_minor for e in applied[1:]] == expected_dividends
    assert all(
        e.pay_day and e.tax_minor == 0 and "no dividend withholding" in e.tax_note for e in applied[1:]
    )

    posted = [e for e in events if isinstance(e, LedgerPosted)]
    paid = [e for e in posted if e.memo.startswith("dividend paid AAPL")]
    assert len(paid) == len(DIVIDENDS)
    for event, (ex, pay, _), amount in zip(paid, DIVIDENDS, expected_dividends, strict=True):
        assert event.ts_ns == _close_ns(pay), ex
        assert {p.account: p.amount_minor for p in event.postings} == {
            "assets:cash:USD": amount,
            f"assets:receivable:dividend:1:{ex}": -amount,
        }
    balances: dict[str, int] = {}
    for event in posted:
        assert sum(p.amount_minor for p in event.postings) == 0, event.memo
        for p in event.postings:
            balances[p.account] = balances.get(p.account, 0) + p.amount_minor
    assert sum(balances.values()) == 0
    assert all(v == 0 for k, v in balances.items() if k.startswith("assets:receivable"))
    assert sum(expected_dividends) == 284_200  # 700 x (3 x 0.47 + 4 x 0.52 + 0.57) = 2,842.00 USD
    assert balances["income:dividend:USD"] == -284_200
    # initial - cost - commission + dividends, to the cent
    assert balances["assets:cash:USD"] == 10_000_000 - 6_455_700 - 3_228 + 284_200 == 3_825_272

    final = [e for e in events if isinstance(e, StateSnapshotted)][-1].snapshot
    assert [(p.instrument_id, p.qty_raw, p.cost_minor) for p in final.positions] == [(1, 700, 6_455_700)]
    closes = {e.day: e for e in events if isinstance(e, DayClosed)}
    assert closes[20140609].nav_minor == 10_000_000 - 6_455_700 - 3_228 + 700 * 9_370
    assert closes[20160726].nav_minor == 3_825_272 + 700 * _cents("97.76")  # the 2016-07-26 close

    # The SQLite ledger projection holds the split-adjusted position too.
    assert tape(["rebuild", config.journal, "--db", str(tmp_path / "ledger.db")]) == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT instrument_id, qty_raw FROM positions").fetchall() == [(1, 700)]

    def build(run: object, ref: object) -> object:
        return build_setup(config, strategy, expected_hash=ref.content_hash)  # type: ignore[attr-defined]

    outcome = replay(journal, build)  # type: ignore[arg-type]
    assert outcome.ok, outcome.divergence
    assert outcome.records_compared > 0
    # One session from its snapshot: the split day, an ex-date (receivable), a pay date (cash).
    for day in (20140609, 20150507, 20150514):
        one_day = replay(journal, build, day=day)  # type: ignore[arg-type]
        assert one_day.ok and one_day.records_compared > 0, (day, one_day.divergence)


def test_us_regulatory_fees_default_refuses_a_2014_run(tmp_path: Path) -> None:
    config = _config(tmp_path, us_regulatory_fees=True)
    with pytest.raises(KernelError, match="us_regulatory_fees = false"):
        run_backtest(config, BuyOnce(0.65))
    assert not Path(config.journal).exists() or len(open_journal(config.journal)) == 0
    # The journaled config records the explicit choice; the default is left out (old bytes).
    assert '"us_regulatory_fees":false' in _config(tmp_path / "other").canonical_json()
    assert '"us_regulatory_fees":' not in config.canonical_json()
    assert BacktestConfig.from_json(config.canonical_json()).us_regulatory_fees is True
