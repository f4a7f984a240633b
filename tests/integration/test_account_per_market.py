"""An account type per market (``[account] venues``, ``kernel.account``): A-shares in a cash
account and US stocks on margin in one book of two currencies.

Real bars: SPDB 600000.SH (CNY, hikyuu daily 2011) and AAPL (USD, abu daily 2014), with the
CONSTRUCTED FX table of ``test_fx_three_markets`` (no shared data set has CNY/USD rates). The
property test runs on a CONSTRUCTED data set (random walks in CNY, USD and USDT): no accepted
order of a cash market leaves its currency's cash negative after fees, whatever the targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import DayClosed, LedgerPosted, OrderFilled, OrderSubmitted, RiskVerdict
from domain.fx import FxRate
from domain.instruments import Instrument
from domain.ledger import cash_account
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows, session_intervals_ns
from kernel.account import AccountConfig
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import fx_table, write_dataset
from sim.backtest import BacktestConfig, FxConfig, StrategyConfig, run_backtest
from sim.fill_models import FillModel
from tests.factories import one_name_policy
from tests.integration import test_fx_three_markets as three

A_SHARES_CASH_US_MARGIN = AccountConfig(type="margin", venues={"XSHG": "cash"})


def _cash_paths(events: list[Any], currencies: tuple[str, ...]) -> dict[str, list[int]]:
    """Each currency's cash balance after every ledger posting."""
    balance = dict.fromkeys(currencies, 0)
    seen: dict[str, list[int]] = {ccy: [] for ccy in currencies}
    for event in events:
        if isinstance(event, LedgerPosted):
            for ccy in currencies:
                balance[ccy] += sum(p.amount_minor for p in event.postings if p.account == cash_account(ccy))
                seen[ccy].append(balance[ccy])
    return seen


def _events(path: Path) -> list[Any]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


# --- real bars: SPDB in a cash account, AAPL on margin ------------------------------------------


real_data = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(
        not (three.SPDB_FILE.exists() and three.AAPL_FILE.exists() and three.XRP_FILE.exists()),
        reason=f"real market data not present under {three.SHARED}",
    ),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (three.SPDB_FILE.exists() and three.AAPL_FILE.exists() and three.XRP_FILE.exists()):
        pytest.skip(f"real market data not present under {three.SHARED}")
    return three.build_dataset(tmp_path_factory.mktemp("acct") / "data")


def _config(tmp: Path, dataset: Path, name: str, account: AccountConfig) -> BacktestConfig:
    # SPDB at 60% of a ~1.3M USD book is ~5M CNY against 2M CNY of cash; AAPL at 100% is
    # ~1.3M USD against 1M USD: the cash market must stop at its cash, the margin one borrows.
    return three.config(
        tmp, dataset, name, account=account,
        strategy=StrategyConfig(entry="tests.integration.test_account_per_market:SpdbAaplHeavy"),
    )  # fmt: skip


class SpdbAaplHeavy(three.ThreeMarkets):
    def __init__(self) -> None:
        super().__init__([0.6, 1.0, 0.0])


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, dataset: Path
) -> dict[str, tuple[BacktestConfig, list[Any]]]:
    tmp = tmp_path_factory.mktemp("runs")
    out = {}
    for name, account in (("split", A_SHARES_CASH_US_MARGIN), ("margin", AccountConfig())):
        cfg = _config(tmp, dataset, name, account)
        run_backtest(cfg, SpdbAaplHeavy())
        out[name] = (cfg, _events(Path(cfg.journal)))
    return out


@pytest.mark.needs_shared_data
def test_the_a_share_cash_market_never_overdraws_cny_while_us_margin_borrows_usd(
    runs: dict[str, tuple[BacktestConfig, list[Any]]],
) -> None:
    _, margin = runs["margin"]
    _, split = runs["split"]
    before = _cash_paths(margin, ("CNY", "USD"))
    assert min(before["CNY"]) < -1_000_000_00  # one margin account: SPDB borrows CNY
    after = _cash_paths(split, ("CNY", "USD"))
    assert min(after["CNY"]) >= 0  # the cash market pays from its CNY
    assert min(after["USD"]) < -100_000_00  # the margin market still borrows USD
    verdicts = [e for e in split if isinstance(e, RiskVerdict) and e.rule == "buying_power"]
    assert verdicts and all(v.instrument_ids == [1] for v in verdicts)  # SPDB only, never AAPL
    assert all(v.observed > v.limit >= v.observed_after for v in verdicts)
    assert "CNY minor units" in verdicts[0].detail
    spdb_buys = [f for f in split if isinstance(f, OrderFilled) and f.instrument_id == 1 and f.side > 0]
    assert spdb_buys and all(f.fill_qty_raw % 100 == 0 for f in spdb_buys)
    no_short = [e for e in split if isinstance(e, RiskVerdict) and e.rule == "no_short"]
    assert all(v.instrument_ids == [1] for v in no_short)  # AAPL is never checked as cash


@pytest.mark.needs_shared_data
def test_the_split_account_replays_bit_for_bit(runs: dict[str, tuple[BacktestConfig, list[Any]]]) -> None:
    from cli.wiring import replay_builder

    cfg, _ = runs["split"]
    with open_journal(cfg.journal) as journal:
        result = replay(journal, replay_builder)
    assert result.ok, result.divergence


def test_a_default_account_journals_no_venues_key(tmp_path: Path) -> None:
    strategy = StrategyConfig(name="sma_crossover")
    cfg = BacktestConfig(run_id="r", dataset=str(tmp_path), journal=str(tmp_path / "j"), strategy=strategy)
    assert '"venues"' not in cfg.canonical_json()
    cash = BacktestConfig(run_id="r", dataset=str(tmp_path), journal=str(tmp_path / "j"), strategy=strategy,
                          account=AccountConfig(type="cash"))  # fmt: skip
    assert '"venues"' not in cash.canonical_json()  # a cash account of before journals as before
    split = BacktestConfig(run_id="r", dataset=str(tmp_path), journal=str(tmp_path / "j"), strategy=strategy,
                           account=A_SHARES_CASH_US_MARGIN)  # fmt: skip
    assert '"venues":{"XSHG":"cash"}' in split.canonical_json()
    assert BacktestConfig.from_json(split.canonical_json()).account == A_SHARES_CASH_US_MARGIN


def test_bad_venue_keys_and_types_are_refused() -> None:
    with pytest.raises(ValueError, match=r"account\.venues\.XSHG must be one of"):
        AccountConfig(venues={"XSHG": "credit"})
    with pytest.raises(ValueError, match=r"not a venue"):
        AccountConfig(venues={"BINANCE:": "cash"})
    with pytest.raises(ValueError, match=r"a cash account pays in full"):
        AccountConfig(type="cash", initial_e8=50_000_000, maintenance_e8=25_000_000)
    # requirements with a margin market named are a margin market's
    AccountConfig(type="cash", venues={"XNAS": "margin"}, initial_e8=50_000_000, maintenance_e8=25_000_000)
    split = AccountConfig(type="margin", venues={"BINANCE": "cash", "BINANCE:crypto_perp": "margin"})
    spot = Instrument(instrument_id=1, symbol="XRP/USDT", venue="BINANCE", asset_class="crypto_spot",
                      currency="USDT", price_digits=4, tick_raw=1, qty_digits=1, lot_raw=1)  # fmt: skip
    perp = Instrument(instrument_id=2, symbol="XRP/USDT:USDT", venue="BINANCE", asset_class="crypto_perp",
                      currency="USDT", price_digits=4, tick_raw=1, qty_digits=1, lot_raw=1)  # fmt: skip
    assert (split.type_of(spot), split.type_of(perp)) == ("cash", "margin")


# --- constructed: three currencies, random targets ----------------------------------------------

CN = Instrument(
    instrument_id=1, symbol="CN1", venue="XSHG", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main", listing_day=20000101,
)  # fmt: skip
US = Instrument(instrument_id=2, symbol="US1", venue="XNAS", asset_class="equity", currency="USD",
                price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
COIN = Instrument(instrument_id=3, symbol="XRP/USDT", venue="BINANCE", asset_class="crypto_spot",
                  currency="USDT", price_digits=4, tick_raw=1, qty_digits=1, lot_raw=1)  # fmt: skip
CN_FEES = CnFeeRows(rows=[CnFeeRow(effective_from=20080919, stamp_duty_buy_e8=0, stamp_duty_sell_e8=100_000,
                                   transfer_e8=2_000, handling_e8=4_870, regulatory_e8=0)])  # fmt: skip


def _weekdays() -> list[int]:
    days = np.arange(np.datetime64("2020-02-03"), np.datetime64("2020-04-01"))
    kept = [d for d in days if np.is_busday(d)]
    return [int(str(d).replace("-", "")) for d in kept if str(d) != "2020-02-17"]  # US holiday


CN2 = Instrument(
    instrument_id=4, symbol="CN2", venue="XSHE", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main", listing_day=20000101,
)  # fmt: skip
_WALKS = {1: (1_000, "XSHG"), 2: (10_000, "XNYS"), 3: (5_000, None), 4: (2_000, "XSHG")}


def constructed_dataset(path: Path, seed: int, instruments: tuple[Instrument, ...] = (CN, US, COIN)) -> Path:
    """CONSTRUCTED bars (a seeded random walk, moves within 4% so no A-share limit binds) and
    CONSTRUCTED rates for three currencies, every instrument with a bar on every day."""
    rng = np.random.default_rng(seed)
    days = _weekdays()
    rows: list[dict[str, int]] = []
    scale = 1
    for inst in instruments:
        start, calendar = _WALKS[inst.instrument_id]
        px = start
        for day in days:
            move = int(px * rng.uniform(-0.04, 0.04))
            open_, close = px, max(px + move, 10)
            high, low = max(open_, close) + px // 100, max(min(open_, close) - px // 100, 1)
            if calendar is None:
                ts = int(
                    np.datetime64(f"{str(day)[:4]}-{str(day)[4:6]}-{str(day)[6:]}T23:59:00", "ns").astype(
                        np.int64
                    )
                )
            else:
                ts = session_intervals_ns(calendar, day)[-1][1]
            rows.append({"ts_ns": ts, "day": day, "instrument_id": inst.instrument_id, "open": open_,
                         "high": high, "low": low, "close": close, "volume": 10**9 * scale})  # fmt: skip
            px = close
    rates = []
    for index, day in enumerate(days):
        wave = (index * 37 + seed) % 101 - 50
        rates += [
            FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000 + wave * 3_000),
            FxRate(day=day, currency="USDT", base="USD", rate_e8=100_000_000 + wave * 5_000),
        ]
    write_dataset(
        path, name=f"constructed-three-currencies-{seed}", frequency="1d", calendar="mixed",
        instruments=list(instruments), bars=pa.Table.from_pylist(rows), fx=fx_table(rates),
    )  # fmt: skip
    return path


class RandomTargets:
    """Given target weights per instrument, re-asked every ``every`` steps."""

    strategy_id = "random_targets"

    def __init__(self, weights: list[float], every: int) -> None:
        self.weights, self.every = weights, every

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(3, panel.steps, self.every, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        turn = view.step // self.every
        return np.roll(np.array(self.weights, dtype=np.float64), turn % 2)


def _run_constructed(
    tmp: Path, weights: list[float], seed: int, every: int, account: AccountConfig
) -> list[Any]:
    dataset = constructed_dataset(tmp / "d", seed)
    cfg = BacktestConfig(
        run_id="acct-prop", dataset=str(dataset), journal=str(tmp / "j"), currency="USD",
        initial_cash="100000", us_regulatory_fees=False, cn_fees=CN_FEES, risk=one_name_policy(),
        fx=FxConfig(initial_cash={"CNY": "500000", "USDT": "80000"}),
        fill=FillModel(commission_e8=30_000, commission_min_minor=500, slippage_e8=10_000),
        strategy=StrategyConfig(entry="tests.integration.test_account_per_market:RandomTargets"),
        account=account,
    )  # fmt: skip
    run_backtest(cfg, RandomTargets(weights, every))
    return _events(tmp / "j")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    weights=st.lists(st.floats(-1.0, 2.5, allow_nan=False), min_size=3, max_size=3),
    seed=st.integers(0, 40),
    every=st.integers(1, 6),
    us_margin=st.booleans(),
)
def test_no_accepted_order_leaves_a_cash_market_negative_in_any_currency(
    tmp_path_factory: pytest.TempPathFactory, weights: list[float], seed: int, every: int, us_margin: bool
) -> None:
    """CONSTRUCTED data: A-shares (CNY) and crypto spot (USDT) in cash markets, US (USD) on
    margin or (``us_margin`` false) all three in cash markets."""
    account = AccountConfig(type="cash", venues={"XNAS": "margin"} if us_margin else {})
    events = _run_constructed(tmp_path_factory.mktemp("prop"), weights, seed, every, account)
    paths = _cash_paths(events, ("CNY", "USDT", "USD"))
    cash_currencies = ("CNY", "USDT") if us_margin else ("CNY", "USDT", "USD")
    assert all(min(paths[currency]) >= 0 for currency in cash_currencies)
    held: dict[int, int] = {}
    for event in events:
        if isinstance(event, OrderFilled):
            held[event.instrument_id] = held.get(event.instrument_id, 0) + event.side * event.fill_qty_raw
            if event.instrument_id != US.instrument_id or not us_margin:
                assert held[event.instrument_id] >= 0  # a cash market never shorts


def test_the_constructed_margin_market_is_not_checked(tmp_path: Path) -> None:
    """CONSTRUCTED data: with US on margin, a 2.5x US target borrows USD; all-cash, it cannot."""
    split = _run_constructed(
        tmp_path / "a", [0.1, 2.5, 0.1], 5, 50, AccountConfig(type="cash", venues={"XNAS": "margin"})
    )
    cash = _run_constructed(tmp_path / "b", [0.1, 2.5, 0.1], 5, 50, AccountConfig(type="cash"))
    assert min(_cash_paths(split, ("USD",))["USD"]) < 0
    assert min(_cash_paths(cash, ("USD",))["USD"]) >= 0


def test_a_currency_shared_by_a_cash_and_a_margin_market_is_refused(tmp_path: Path) -> None:
    """CONSTRUCTED data: Shanghai (XSHG) cash and Shenzhen (XSHE) margin would share one CNY
    balance: refused at start, naming both markets. XSHG and XNAS cash with USDT on margin: runs."""
    fine = AccountConfig(type="margin", venues={"XSHG": "cash", "XNAS": "cash"})
    _run_constructed(tmp_path / "ok", [0.2, 0.2, 0.2], 1, 10, fine)
    dataset = constructed_dataset(tmp_path / "d2", 1, (CN, US, COIN, CN2))
    cfg = BacktestConfig(
        run_id="acct-bad", dataset=str(dataset), journal=str(tmp_path / "bad"), currency="USD",
        initial_cash="100000", us_regulatory_fees=False, cn_fees=CN_FEES,
        account=AccountConfig(type="margin", venues={"XSHG": "cash"}),
        fx=FxConfig(initial_cash={"CNY": "500000"}),
        strategy=StrategyConfig(entry="tests.integration.test_account_per_market:RandomTargets"),
    )  # fmt: skip
    with pytest.raises(KernelError, match=r"same currency: CNY \(cash: XSHG:equity; margin: XSHE:equity\)"):
        run_backtest(cfg, RandomTargets([0.1, 0.1, 0.1, 0.1], 5))


class AaplLevered(three.ThreeMarkets):
    def __init__(self) -> None:
        super().__init__([0.3, 2.5, 0.0])


@pytest.mark.needs_shared_data
def test_us_margin_requirements_in_a_cny_based_book(dataset: Path, tmp_path: Path) -> None:
    """Base CNY; SPDB in a cash account, AAPL on margin with Reg T 50% / 25% (constructed FX):
    the 2.5x AAPL target is cut to what the equity margins, the requirement converted from USD
    into CNY at the day's rate, and the CNY cash of the A-share market never goes negative."""
    from domain.fixed import Rounding, apply_rate
    from domain.fx import to_base_minor
    from domain.instruments import notional_minor
    from tests.integration.test_margin_accounts import LEVERED

    account = AccountConfig(venues={"XSHG": "cash"}, initial_e8=50_000_000, maintenance_e8=25_000_000)
    cfg = three.config(
        tmp_path, dataset, "cny", account=account, currency="CNY", initial_cash="2000000", risk=LEVERED,
        fx=FxConfig(initial_cash={"USD": "1000000"}),
        strategy=StrategyConfig(entry="tests.integration.test_account_per_market:AaplLevered"),
    )  # fmt: skip
    run_backtest(cfg, AaplLevered())
    events = _events(Path(cfg.journal))
    assert min(_cash_paths(events, ("CNY",))["CNY"]) >= 0
    verdicts = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "initial_margin"]
    assert verdicts and all(v.instrument_ids == [2] for v in verdicts)  # AAPL only: SPDB is cash
    first = verdicts[0]
    assert first.observed > first.limit >= first.observed_after > 0 and "CNY minor" in first.detail
    # The kept order's requirement, recomputed in USD and converted at that day's constructed rate.
    order = next(
        e for e in events if isinstance(e, OrderSubmitted) and e.instrument_id == 2 and e.ts_ns == first.ts_ns
    )
    rate = next(
        r.rate_e8 for r in three.constructed_rates([e.day for e in events if isinstance(e, DayClosed)])
        if r.currency == "USD" and r.base == "CNY" and r.day == first_day(events, first.ts_ns)
    )  # fmt: skip
    notional = notional_minor(three.AAPL, order.qty_raw, order.decision_px_raw, Rounding.CEILING)
    usd = apply_rate(notional, 50_000_000, Rounding.CEILING)
    # plus the default venue commission, 0.1% of the notional (its rounding: either way)
    low, high = (usd + apply_rate(notional, 100_000, way) for way in (Rounding.FLOOR, Rounding.CEILING))
    assert (
        to_base_minor(low, "USD", "CNY", rate)
        <= first.observed_after
        <= to_base_minor(high, "USD", "CNY", rate)
    )
    with open_journal(cfg.journal) as journal:
        from cli.wiring import replay_builder

        assert replay(journal, replay_builder).ok


def first_day(events: list[Any], ts_ns: int) -> int:
    """The session day of the first DayClosed at or after ``ts_ns``."""
    return next(e.day for e in events if isinstance(e, DayClosed) and e.ts_ns >= ts_ns)
