"""One book across three markets on real bars: SPDB 600000.SH (CNY, hikyuu daily 2011), AAPL
(USD, abu daily 2014) and the XRP/USDT:USDT perpetual (USDT, freqtrade 1h 2021) in one run.

The bars are real; the FX table is CONSTRUCTED (no shared data set has CNY/USD or USDT/USD
rates): one row per session day of the panel, a deterministic wave around 0.15 USD per CNY and
1 USD per USDT, labelled "constructed" in the data set's name. The three markets' data do not
overlap in time, so the book holds SPDB from 2011 on (marked at its last close afterwards),
adds AAPL in 2014 and the perpetual in 2021: on the last days it holds all three currencies.
"""

from __future__ import annotations

import csv
import itertools
import json
import sqlite3
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from cli.main import main as tape
from cli.wiring import replay_builder
from domain.events import (
    CurrenciesMarked,
    DayClosed,
    FxConverted,
    LedgerPosted,
    OrderFilled,
    RunFinished,
)
from domain.fixed import Rounding, from_decimal_text, minor_digits
from domain.fx import FxRate
from domain.instruments import Instrument
from domain.ledger import assert_balanced, cash_account
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows, session_intervals_ns
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import fx_table, write_dataset
from projections.ledger_sqlite import rebuild
from sim.backtest import BacktestConfig, FxConfig, FxConversionConfig, StrategyConfig, run_backtest
from tests.factories import one_name_policy

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SPDB_FILE = SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"
AAPL_FILE = SHARED / "us" / "abu_raw" / "usAAPL_20140609_20160726.csv"
XRP_FILE = SHARED / "crypto" / "freqtrade" / "futures" / "XRP_USDT_USDT-1h-futures.feather"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(
        not (SPDB_FILE.exists() and AAPL_FILE.exists() and XRP_FILE.exists()),
        reason=f"real market data not present under {SHARED}",
    ),
]

SPDB = Instrument(
    instrument_id=1, symbol="600000", venue="XSHG", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main", listing_day=19991110,
)  # fmt: skip
AAPL = Instrument(
    instrument_id=2, symbol="AAPL", venue="XNAS", asset_class="equity", currency="USD",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
)  # fmt: skip
XRP = Instrument(
    instrument_id=3, symbol="XRP/USDT:USDT", venue="BINANCE", asset_class="crypto_perp", currency="USDT",
    price_digits=4, tick_raw=1, qty_digits=1, lot_raw=1,
)  # fmt: skip
HOUR_NS = 3_600_000_000_000
# A-share fee rates for 2011 as a user supplies them (illustrative, not verified by the project;
# the built-in tables start in 2015): stamp duty on sells only, 0.1%; handling 0.0087%; the
# per-share SSE transfer fee of the time cannot be a notional rate, so zero.
FEES_2011 = CnFeeRows(
    rows=[
        CnFeeRow(
            effective_from=20080919, stamp_duty_buy_e8=0, stamp_duty_sell_e8=100_000,
            transfer_e8=0, handling_e8=8_700, regulatory_e8=0,
        )
    ]
)  # fmt: skip


class ThreeMarkets:
    """Buys each name at its first bar (SPDB 0.3, AAPL 0.3, XRP 0.2 of the base NAV) and
    rebalances each to half its weight at its 40th bar; no target for names without a bar."""

    strategy_id = "three_markets"

    def __init__(self, weights: list[float] | None = None) -> None:
        self.weights = weights or [0.3, 0.3, 0.2]
        self._plan: dict[int, list[float]] = {}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        plan: dict[int, list[float]] = {}
        for column, weight in enumerate(self.weights):
            rows = np.flatnonzero(panel.valid[:, column])
            for row, scaled in ((rows[0], weight), (rows[40], weight / 2)):
                plan.setdefault(int(row), [float("nan")] * len(self.weights))[column] = scaled
        self._plan = plan
        return np.array(sorted(plan), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array(self._plan[view.step])


def _price(text: str, digits: int) -> int:
    return from_decimal_text(text, digits, Rounding.HALF_EVEN)


def _spdb_rows(first: int = 20110104, last: int = 20111206) -> Iterator[dict[str, int]]:
    with SPDB_FILE.open() as handle:
        for row in csv.DictReader(handle):
            day = int(row["date"].replace("-", ""))
            if first <= day <= last:
                yield {
                    "ts_ns": session_intervals_ns("XSHG", day)[-1][1], "day": day, "instrument_id": 1,
                    **{k: _price(row[k], 2) for k in ("open", "high", "low", "close")},
                    "volume": int(row["volume"]) * 100,
                }  # fmt: skip


def _aapl_rows() -> Iterator[dict[str, int]]:
    with AAPL_FILE.open() as handle:
        for row in csv.DictReader(handle):
            day = int(row["date"])
            if 20140610 <= day <= 20141231:  # after the 7:1 split of 2014-06-09
                yield {
                    "ts_ns": session_intervals_ns("XNYS", day)[-1][1], "day": day, "instrument_id": 2,
                    **{k: _price(row[k], 2) for k in ("open", "high", "low", "close")},
                    "volume": int(float(row["volume"])),
                }  # fmt: skip


def _xrp_rows() -> Iterator[dict[str, int]]:
    bars = feather.read_table(XRP_FILE)
    start_ns = bars.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    columns = {k: bars.column(k).to_numpy() for k in ("open", "high", "low", "close", "volume")}
    for index, start in enumerate(start_ns.tolist()):
        ts = start + HOUR_NS  # stamped at its close
        day = int(np.datetime64(ts - 1, "ns").astype("datetime64[D]").astype(str).replace("-", ""))
        yield {
            "ts_ns": ts, "day": day, "instrument_id": 3,
            **{k: round(float(columns[k][index]) * 10_000) for k in ("open", "high", "low", "close")},
            "volume": round(float(columns["volume"][index]) * 10),
        }  # fmt: skip


def constructed_rates(days: list[int], skip: tuple[str, int] | None = None) -> list[FxRate]:
    """CONSTRUCTED rates, one row per day: CNY and USDT into USD, and USD and USDT into CNY."""
    rates = []
    for index, day in enumerate(sorted(set(days))):
        wave = (index * 37) % 101 - 50  # a deterministic wiggle in [-50, 50]
        usd_per_cny = 15_000_000 + wave * 4_321  # about 0.15 USD per CNY, 1e-8
        usd_per_usdt = 100_000_000 + wave * 9_973  # about 1 USD per USDT
        for currency, base, rate in (
            ("CNY", "USD", usd_per_cny),
            ("USDT", "USD", usd_per_usdt),
            ("USD", "CNY", 10**16 // usd_per_cny),
            ("USDT", "CNY", usd_per_usdt * 10**8 // usd_per_cny),
        ):
            if skip != (currency, day):
                rates.append(FxRate(day=day, currency=currency, base=base, rate_e8=rate))
    return rates


def build_dataset(path: Path, skip: tuple[str, int] | None = None) -> Path:
    rows = [*_spdb_rows(), *_aapl_rows(), *_xrp_rows()]
    bars = pa.Table.from_pylist(rows)
    write_dataset(
        path,
        name="three-markets-real-bars-constructed-fx",
        frequency="mixed",
        calendar="mixed",
        instruments=[SPDB, AAPL, XRP],
        bars=bars,
        fx=fx_table(constructed_rates([row["day"] for row in rows], skip)),
    )
    return path


def config(tmp: Path, dataset: Path, name: str = "j", **overrides: Any) -> BacktestConfig:
    values: dict[str, Any] = {
        "run_id": "fx-three",
        "dataset": str(dataset),
        "journal": str(tmp / name),
        "currency": "USD",
        "initial_cash": "1000000",
        "us_regulatory_fees": False,  # their dated tables start in 2023
        "cn_fees": FEES_2011,
        "risk": one_name_policy(),  # up to 100% of NAV per name: the weights trade as decided
        "strategy": StrategyConfig(entry="tests.integration.test_fx_three_markets:ThreeMarkets"),
        "fx": FxConfig(
            initial_cash={"CNY": "2000000"},
            conversions=[
                FxConversionConfig(at="2021-11-15T00:00:00Z", source="USD", target="USDT", amount="150000"),
            ],
        ),
    }
    values.update(overrides)
    return BacktestConfig(**values)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("fx") / "data")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple[BacktestConfig, list[Any]]:
    tmp = tmp_path_factory.mktemp("run")
    cfg = config(tmp, dataset)
    run_backtest(cfg, ThreeMarkets())
    journal = open_journal(cfg.journal)
    try:
        return cfg, [event for _, event in journal.events()]
    finally:
        journal.close()


def _to_base(amount: int, currency: str, base: str, rate_e8: int) -> int:
    """The conversion worked in Decimal, independently of ``domain.fx``: half-even to the base's
    minor unit."""
    value = Decimal(amount) / 10 ** minor_digits(currency) * Decimal(rate_e8) / 10**8
    return int((value * 10 ** minor_digits(base)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def test_the_run_replays_bit_for_bit_whole_and_by_day(run: tuple[BacktestConfig, list[Any]]) -> None:
    cfg, events = run
    journal = open_journal(cfg.journal)
    try:
        whole = replay(journal, replay_builder)
        assert whole.ok, whole.divergence
        days = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (days[len(days) // 2], days[-3]):  # an SPDB-era day and a perpetual-era day
            one = replay(journal, replay_builder, day=day)
            assert one.ok, (day, one.divergence)
    finally:
        journal.close()


def test_every_transaction_balances_in_each_currency_and_cash_folds(
    run: tuple[BacktestConfig, list[Any]],
) -> None:
    _, events = run
    cash: dict[str, int] = {}
    currencies_seen: set[str] = set()
    for event in events:
        if isinstance(event, LedgerPosted):
            assert_balanced(event.postings)
            for posting in event.postings:
                currencies_seen.add(posting.currency)
                if posting.account == cash_account(posting.currency):
                    cash[posting.currency] = cash.get(posting.currency, 0) + posting.amount_minor
        if isinstance(event, CurrenciesMarked):
            for mark in event.currencies:  # the journaled cash is the fold of the postings
                assert mark.cash_minor == cash.get(mark.currency, 0), (event.day, mark.currency)
    assert currencies_seen == {"CNY", "USD", "USDT"}
    fills = {e.currency for e in events if isinstance(e, OrderFilled)}
    assert fills == {"CNY", "USD", "USDT"}


def test_nav_in_the_base_is_the_sum_of_converted_currency_navs(
    run: tuple[BacktestConfig, list[Any]],
) -> None:
    _, events = run
    pairs = 0
    for before, event in itertools.pairwise(events):
        if not isinstance(event, CurrenciesMarked):
            continue
        assert isinstance(before, DayClosed)
        assert event.base == before.currency == "USD"
        converted = [_to_base(m.nav_minor, m.currency, "USD", m.rate_e8) for m in event.currencies]
        assert [m.nav_base_minor for m in event.currencies] == converted
        assert before.nav_minor == sum(converted)
        cash = [_to_base(m.cash_minor, m.currency, "USD", m.rate_e8) for m in event.currencies]
        assert before.cash_minor == sum(cash)
        for mark in event.currencies:
            assert mark.nav_minor == mark.cash_minor + mark.value_minor
        pairs += 1
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert pairs == len(closes) > 300
    last = [e for e in events if isinstance(e, CurrenciesMarked)][-1]
    held = {m.currency for m in last.currencies if m.value_minor}
    assert held == {"CNY", "USD", "USDT"}  # one book holding all three at the end
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert finished.currency == "USD"


def test_weights_are_fractions_of_the_base_nav(run: tuple[BacktestConfig, list[Any]]) -> None:
    """The first AAPL buy (0.3) is worth 0.3 of the base NAV; the first XRP buy (0.2) is worth
    0.2 of it in USDT at the day's rate (both within a lot and the price move to the fill)."""
    _, events = run
    fills = [e for e in events if isinstance(e, OrderFilled)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    marks = [e for e in events if isinstance(e, CurrenciesMarked)]
    for iid, weight in ((2, 0.3), (3, 0.2)):
        fill = next(f for f in fills if f.instrument_id == iid)
        index = max(i for i, c in enumerate(closes) if c.ts_ns < fill.ts_ns)
        rate = next(m.rate_e8 for m in marks[index].currencies if m.currency == fill.currency)
        value_base = _to_base(fill.notional_minor, fill.currency, "USD", rate)
        assert abs(value_base / closes[index].nav_minor - weight) < 0.01, (iid, value_base)


def test_the_conversion_is_journaled_at_the_days_rates(run: tuple[BacktestConfig, list[Any]]) -> None:
    _, events = run
    [converted] = [e for e in events if isinstance(e, FxConverted)]
    assert (converted.source, converted.target, converted.source_minor) == ("USD", "USDT", 15_000_000)
    expected = Decimal(15_000_000) / 100 * converted.source_rate_e8 / converted.target_rate_e8 * 10**6
    assert converted.target_minor == int(expected.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    index = events.index(converted)
    posted = events[index + 1]
    assert isinstance(posted, LedgerPosted)
    amounts = {(p.account, p.currency): p.amount_minor for p in posted.postings}
    assert amounts[("assets:cash:USD", "USD")] == -15_000_000
    assert amounts[("assets:cash:USDT", "USDT")] == converted.target_minor


def test_a_cny_base_values_the_same_book_in_cny(tmp_path: Path, dataset: Path) -> None:
    """The base is the config's ``currency``: the same trades in a CNY base (the table's CNY
    rows), NAV in CNY equal to the sum of the converted currencies."""
    cfg = config(
        tmp_path, dataset, currency="CNY", initial_cash="6000000",
        fx=FxConfig(initial_cash={"USD": "1000000"}),
    )  # fmt: skip
    run_backtest(cfg, ThreeMarkets())
    journal = open_journal(cfg.journal)
    try:
        events = [event for _, event in journal.events()]
        assert replay(journal, replay_builder).ok
    finally:
        journal.close()
    marked = [e for e in events if isinstance(e, CurrenciesMarked)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert len(marked) == len(closes)
    for close, mark in zip(closes, marked, strict=True):
        assert close.currency == "CNY"
        navs = [_to_base(m.nav_minor, m.currency, "CNY", m.rate_e8) for m in mark.currencies]
        assert close.nav_minor == sum(navs)


def test_a_missing_rate_stops_the_run_naming_currency_and_day(tmp_path: Path) -> None:
    days = sorted({row["day"] for row in _aapl_rows()})
    gap = days[10]
    data = build_dataset(tmp_path / "data", skip=("CNY", gap))
    cfg = config(tmp_path, data, fx=FxConfig(stale_days_max=0, initial_cash={"CNY": "1"}))
    with pytest.raises(KernelError, match=rf"no CNY/USD rate on {gap}"):
        run_backtest(cfg, ThreeMarkets())
    cfg = config(tmp_path, data, name="j2", fx=FxConfig(stale_days_max=5, initial_cash={"CNY": "1"}))
    run_backtest(cfg, ThreeMarkets())  # the day before's rate stands in within five days


def test_tape_report_shows_the_base_and_each_currency(
    run: tuple[BacktestConfig, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed report, its JSON and its CSV give each currency's cash and NAV and the NAV in
    the base at the last close; the fees are each day's fee postings at that day's rates."""
    cfg, events = run
    out_dir = Path(cfg.journal).parent / "report"
    assert tape(["report", cfg.journal, "--json", str(out_dir / "r.json"), "--csv", str(out_dir)]) == 0
    out = capsys.readouterr().out
    last = [e for e in events if isinstance(e, CurrenciesMarked)][-1]
    assert "base USD" in out
    summary = json.loads((out_dir / "r.json").read_text())["summary"]
    with (out_dir / "summary.csv").open() as handle:
        flat = {row["metric"]: row["value"] for row in csv.DictReader(handle)}
    for mark in last.currencies:
        digits = minor_digits(mark.currency)
        cash, nav = mark.cash_minor / 10**digits, mark.nav_minor / 10**digits
        assert f"{cash:,.{digits}f} / {nav:,.{digits}f} {mark.currency}" in out  # its minor unit
        assert f"{mark.nav_base_minor / 100:,.2f} USD" in out
        assert summary["currencies"][mark.currency] == {
            "cash": cash, "nav": nav, "rate_e8": mark.rate_e8, "nav_base": mark.nav_base_minor / 100,
        }  # fmt: skip
        assert float(flat[f"currencies.{mark.currency}.nav_base"]) == mark.nav_base_minor / 100
    # Fees: each transaction's expense postings (funding is its own line) converted at the
    # rates of the close of its day.
    fees, pending, paid = 0, [], {}  # paid: per currency, [in it, in USD]
    for event in events:
        if isinstance(event, LedgerPosted):
            pending += [p for p in event.postings if p.account.split(":")[:2] != ["expenses", "funding"]
                        and p.account.startswith("expenses:")]  # fmt: skip
        elif isinstance(event, CurrenciesMarked):
            rates = {m.currency: m.rate_e8 for m in event.currencies}
            for p in pending:
                in_usd = _to_base(p.amount_minor, p.currency, "USD", rates[p.currency])
                fees += in_usd
                both = paid.setdefault(p.currency, [0, 0])
                both[0] += p.amount_minor
                both[1] += in_usd
            pending = []
    assert fees > 0 and summary["fees"] == fees / 100
    # and per currency paid in (the USDT perpetual's fees in USDT, 6 digits), with the same total
    assert set(paid) == {"CNY", "USD", "USDT"}
    assert summary["fees_by_currency"] == {
        ccy: {"paid": amount / 10 ** minor_digits(ccy), "base": in_usd / 100}
        for ccy, (amount, in_usd) in paid.items()
    }
    assert float(flat["fees_by_currency.CNY.base"]) == paid["CNY"][1] / 100


def test_the_reports_fx_and_trading_pnl_sum_to_the_nav_change(
    run: tuple[BacktestConfig, list[Any]],
) -> None:
    """Each other currency's FX PnL, worked here in Decimal from the marks (its NAV at each
    previous close at the close's rate, less its value then), and the trading PnL, the rest,
    sum to the NAV change to the cent; the USD -> USDT conversion moves no FX PnL."""
    cfg, events = run
    out_dir = Path(cfg.journal).parent / "report-pnl"
    assert tape(["report", cfg.journal, "--json", str(out_dir / "r.json")]) == 0
    split = json.loads((out_dir / "r.json").read_text())["summary"]["pnl_by_source"]
    marks = [e for e in events if isinstance(e, CurrenciesMarked)]
    fx: dict[str, int] = {"CNY": 0, "USDT": 0}
    for before, now in itertools.pairwise(marks):
        rates = {m.currency: m.rate_e8 for m in now.currencies}
        for mark in before.currencies:
            if mark.currency != "USD":
                fx[mark.currency] += (
                    _to_base(mark.nav_minor, mark.currency, "USD", rates[mark.currency]) - mark.nav_base_minor
                )
    assert all(fx.values())  # both rates moved on held balances
    assert {ccy: round(pnl * 100) for ccy, pnl in split["fx"].items()} == fx
    first = {m.currency: m.rate_e8 for m in marks[0].currencies}
    initial = 1_000_000_00 + _to_base(2_000_000_00, "CNY", "USD", first["CNY"])
    last_nav = [e for e in events if isinstance(e, DayClosed)][-1].nav_minor
    assert round(split["trading"] * 100) == last_nav - initial - sum(fx.values())
    assert round(split["nav_change"] * 100) == last_nav - initial


def test_report_orders_to_a_dash_is_every_currency_under_one_header(
    run: tuple[BacktestConfig, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--orders F.csv`` writes a file per currency (``F.CNY.csv``, ...); ``--orders -`` one
    CSV on stdout: one header, each currency's rows in turn (each row names its currency)."""
    cfg, _ = run
    out_dir = Path(cfg.journal).parent / "orders"
    assert tape(["report", cfg.journal, "--orders", str(out_dir / "o.csv")]) == 0
    files = sorted(out_dir.glob("o.*.csv"))
    assert len(files) > 1
    capsys.readouterr()
    assert tape(["report", cfg.journal, "--orders", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    per_file = [path.read_text().splitlines() for path in files]
    assert lines == [per_file[0][0], *(line for rows in per_file for line in rows[1:])]


def test_the_sqlite_ledger_holds_each_currency_and_the_base(
    run: tuple[BacktestConfig, list[Any]], tmp_path: Path
) -> None:
    """The projection (the apply loop SQLite and PostgreSQL share): postings balance per
    transaction and currency, cash per currency folds to the last marks, and the marks in the
    base sum to each day's NAV."""
    cfg, events = run
    db_path = tmp_path / "ledger.db"
    rebuild(cfg.journal, db_path)
    db = sqlite3.connect(db_path)
    try:
        unbalanced = db.execute(
            "SELECT txn_id, currency, SUM(amount_minor) FROM postings GROUP BY txn_id, currency "
            "HAVING SUM(amount_minor) != 0"
        ).fetchall()
        assert unbalanced == []
        cash = dict(
            db.execute(
                "SELECT currency, SUM(amount_minor) FROM postings WHERE account = 'assets:cash:' || currency "
                "GROUP BY currency"
            ).fetchall()
        )
        last = [e for e in events if isinstance(e, CurrenciesMarked)][-1]
        assert cash == {m.currency: m.cash_minor for m in last.currencies}
        mismatched = db.execute(
            "SELECT n.day FROM nav n JOIN (SELECT day, SUM(nav_base_minor) AS total FROM currency_marks "
            "GROUP BY day) m ON m.day = n.day WHERE m.total != n.nav_minor"
        ).fetchall()
        assert mismatched == []
        (days,) = db.execute("SELECT COUNT(DISTINCT day) FROM currency_marks").fetchone()
        assert days == len([e for e in events if isinstance(e, DayClosed)])
    finally:
        db.close()
