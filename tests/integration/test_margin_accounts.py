"""Margin accounts with explicit requirements (``[account]``, ``kernel.margin``).

Real bars: the SSE Composite's 1-minute bars of 2015-07-06..10 as a proxy index future (see
``test_futures_proxy_realdata``; 300 CNY/pt) and SPDB daily bars 2001-2003. The margin rates are
**constructed** (labelled so): no shared data set has CFFEX's 2015 margin notices or a broker's
house requirement, so the tests use 12% / 10% of notional for the future, 50% / 40% for SPDB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from domain.events import (
    DayClosed,
    FutureSettled,
    KillSwitchTripped,
    MarginCalled,
    OrderFilled,
    OrderSubmitted,
    RiskVerdict,
    RunStarted,
)
from domain.fixed import Rounding, apply_rate
from domain.instruments import notional_minor
from domain.market import Panel
from domain.riskrules import policy_from_mapping
from kernel.account import AccountConfig
from kernel.futures import FuturesConfig
from kernel.loop import KernelError
from kernel.margin import MARGIN_CALL_STRATEGY_ID, FuturesMarginRow
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import make_config

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PROXY_ZIP = SHARED / "cn" / "czsc" / "000001.XSHG_index_1min_2015-2019.zip"
SPDB = SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"
needs_proxy = pytest.mark.skipif(
    not PROXY_ZIP.exists(), reason=f"real market data not present at {PROXY_ZIP}"
)
needs_spdb = pytest.mark.skipif(not SPDB.exists(), reason=f"real market data not present at {SPDB}")

# Constructed rates (not an exchange's notice): 12% initial, 10% maintenance of notional.
PROXY_ROWS = [
    FuturesMarginRow(symbol="*", since="2015-07-01", initial_e8=12_000_000, maintenance_e8=10_000_000)
]
LEVERED = policy_from_mapping(
    {
        "name": {"limit_e8": 2_000_000_000, "action": "clip"},
        "gross_leverage": {"limit_e8": 2_000_000_000, "action": "scale"},
        "net_leverage": {"limit_e8": 2_000_000_000, "action": "scale"},
    }
)


def _ts(day: str, hhmm: str) -> int:
    return int((np.datetime64(f"{day}T{hhmm}", "ns") - np.timedelta64(8, "h")).astype(np.int64))


class Plan:
    """One-name target weights at given (date, HH:MM) times (Asia/Shanghai)."""

    strategy_id = "proxy"

    def __init__(self, plan: dict[tuple[str, str], float]) -> None:
        self._plan = {_ts(day, hhmm): weight for (day, hhmm), weight in plan.items()}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array(sorted(int(np.searchsorted(panel.ts_ns, ts)) for ts in self._plan), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array([self._plan[view.ts_ns]])


def _proxy_config(tmp_path: Path, name: str, account: AccountConfig) -> BacktestConfig:
    from tests.integration.test_futures_proxy_realdata import _dataset, _raw

    data = tmp_path / "data"
    if not data.exists():
        _dataset(data, _raw())
    return BacktestConfig(
        run_id=f"margin-{name}",
        dataset=str(data),
        journal=str(tmp_path / name),
        currency="CNY",
        initial_cash="5000000",
        strategy=StrategyConfig(name="proxy"),
        fill=FillModel(commission_e8=2_300),
        risk=LEVERED,
        futures=FuturesConfig(settlement="vwap_last_minutes", last_minutes=60),
        account=account,
    )


def _events(path: str | Path) -> list[object]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


def _replays(config: BacktestConfig, strategy: object) -> None:
    journal = open_journal(config.journal)

    def build(r, ref):  # type: ignore[no-untyped-def]
        return build_setup(config, strategy, expected_hash=ref.content_hash)  # type: ignore[arg-type]

    assert replay(journal, build).ok
    for day in (20150707, 20150708, 20150709):
        outcome = replay(journal, build, day=day)
        assert outcome.ok, (day, outcome.divergence)


@pytest.mark.needs_shared_data
@needs_proxy
def test_futures_initial_margin_sizes_the_order_and_a_margin_call_liquidates(tmp_path: Path) -> None:
    """9x notional asked, 12% initial margin: cut to what 5M CNY margins (36 of 39 lots). The
    2015-07-08 crash takes the equity below 10% maintenance at the close: a margin call, and the
    kernel's margin_call order sells down to what the equity margins initially, next session."""
    strategy = Plan({("2015-07-06", "10:00"): 9.0})
    # Futures judged at the last close, as the NAV marks them (the settlement price, the
    # default: test_the_close_check_judges_futures_at_the_settlement_price)
    account = AccountConfig(futures_margin=PROXY_ROWS, futures_margin_at="close")
    config = _proxy_config(tmp_path, "liquidate", account)
    run_backtest(config, strategy)
    events = _events(config.journal)
    from tests.integration.test_futures_proxy_realdata import PROXY

    verdict = next(e for e in events if isinstance(e, RiskVerdict) and e.rule == "initial_margin")
    assert verdict.action == "clip" and verdict.observed > verdict.limit >= verdict.observed_after > 0
    assert verdict.limit == 5_000_000_00  # the equity, nothing in use before
    assert "36 of 39 fit" in verdict.detail
    opening = next(e for e in events if isinstance(e, OrderFilled))
    assert opening.fill_qty_raw == 36
    calls = [e for e in events if isinstance(e, MarginCalled)]
    assert [c.day for c in calls] == [20150708]
    call = calls[0]
    assert call.equity_minor < call.maintenance_minor < call.initial_minor
    assert call.maintenance_minor == sum(call.maintenance_by_position_minor)
    close = next(e for e in events if isinstance(e, DayClosed) and e.day == 20150708)
    assert call.equity_minor == close.nav_minor  # the call judges the NAV of that close
    # The requirements are the constructed rates on the notional at the close, rounded up.
    mark = close.gross_exposure_minor
    assert call.maintenance_minor == apply_rate(mark, 10_000_000, Rounding.CEILING)
    assert call.initial_minor == apply_rate(mark, 12_000_000, Rounding.CEILING)
    forced = [e for e in events if isinstance(e, OrderSubmitted) and e.strategy_id == MARGIN_CALL_STRATEGY_ID]
    assert len(forced) == 1 and forced[0].side == -1
    kept = 36 - forced[0].qty_raw
    # What is kept needs no more initial margin (at the call's mark) than the equity; one lot more would.
    per_lot = notional_minor(PROXY, 1, close.gross_exposure_minor // (36 * 300), Rounding.HALF_EVEN)
    assert kept == 36 * call.equity_minor // call.initial_minor
    assert apply_rate(kept * per_lot, 12_000_000, Rounding.CEILING) <= call.equity_minor
    sold = [e for e in events if isinstance(e, OrderFilled) and e.order_id == forced[0].order_id]
    assert sold and sold[0].fill_qty_raw == forced[0].qty_raw  # filled in the next session
    _replays(config, strategy)


@pytest.mark.needs_shared_data
@needs_proxy
def test_the_close_check_judges_futures_at_the_settlement_price(tmp_path: Path) -> None:
    """A clearing house calls on settled cash: at the 2015-07-07 close the proxy (settled at its
    last hour's VWAP, 3,714.49, below the 3,727.13 close) leaves 3,961,929.47 CNY of settled
    cash against 10% of the settled notional, 4,011,649.20 CNY: a call. The NAV at the close
    (4,098,441.47 = cash + 12.64 x 36 x 300) cleared the 4,025,300.40 asked at the close, so
    judging the NAV (``futures_margin_at = "close"``, the code before the setting) called the
    account only on 07-08."""
    strategy = Plan({("2015-07-06", "10:00"): 9.0})
    config = _proxy_config(tmp_path, "settled", AccountConfig(futures_margin=PROXY_ROWS))
    run_backtest(config, strategy)
    events = _events(config.journal)
    calls = [e for e in events if isinstance(e, MarginCalled)]
    assert [c.day for c in calls] == [20150707, 20150708]
    call = calls[0]
    closed = next(e for e in events if isinstance(e, DayClosed) and e.day == 20150707)
    settled = next(e for e in events if isinstance(e, FutureSettled) and e.day == 20150707)
    # The book is the future alone: the equity judged is the cash after the day's variation.
    assert call.equity_minor == closed.cash_minor == 3_961_929_47
    assert closed.nav_minor == 4_098_441_47  # no call on it: 10% of the close's notional is less
    assert closed.nav_minor >= apply_rate(closed.gross_exposure_minor, 10_000_000, Rounding.CEILING)
    assert closed.nav_minor - closed.cash_minor == (closed.gross_exposure_minor - settled.settled_value_minor)
    # The requirements are the constructed rates on the settled notional, rounded up.
    assert call.maintenance_minor == apply_rate(settled.settled_value_minor, 10_000_000, Rounding.CEILING)
    assert call.maintenance_minor == 4_011_649_20
    assert call.initial_minor == apply_rate(settled.settled_value_minor, 12_000_000, Rounding.CEILING)
    forced = [e for e in events if isinstance(e, OrderSubmitted) and e.strategy_id == MARGIN_CALL_STRATEGY_ID]
    assert forced[0].qty_raw == 36 - 36 * call.equity_minor // call.initial_minor
    # The journal states the setting (its default is left out of the configuration) and replays.
    with open_journal(config.journal) as journal:
        started = next(event for _, event in journal.events())
    assert isinstance(started, RunStarted)
    assert '"futures_margin_at":"settlement"' in started.config_json
    assert "futures_margin_at" not in config.canonical_json()
    _replays(config, strategy)


@pytest.mark.needs_shared_data
@needs_proxy
def test_a_margin_call_with_the_halt_policy_trips_the_kill_switch(tmp_path: Path) -> None:
    strategy = Plan({("2015-07-06", "10:00"): 9.0, ("2015-07-09", "10:00"): 12.0})
    account = AccountConfig(futures_margin=PROXY_ROWS, margin_call="halt", futures_margin_at="close")
    config = _proxy_config(tmp_path, "halt", account)
    run_backtest(config, strategy)
    events = _events(config.journal)
    calls = [e for e in events if isinstance(e, MarginCalled)]
    assert [c.day for c in calls] == [20150708] and calls[0].policy == "halt"
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert len(tripped) == 1 and tripped[0].trigger == "margin_call" and not tripped[0].flatten
    assert tripped[0].observed == calls[0].equity_minor and tripped[0].limit == calls[0].maintenance_minor
    # No forced sale; the later decision (12x) buys nothing while halted: the halt holds the
    # book, and only the risk policy's gross limit (20x of a shrunken NAV) trims it.
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert not [e for e in submitted if e.strategy_id == MARGIN_CALL_STRATEGY_ID]
    assert [e.side for e in submitted if e.ts_ns > tripped[0].ts_ns] in ([], [-1])
    halted = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "kill_switch"]
    assert halted and "margin_call" in halted[-1].detail
    _replays(config, strategy)


@pytest.mark.needs_shared_data
@needs_proxy
def test_dated_rows_apply_from_their_day_and_a_missing_row_is_refused(tmp_path: Path) -> None:
    """Constructed per-contract rows: 150,000 CNY initial until 2015-07-08, then 400,000 (an
    exchange raising margins in a crash). 20 lots margin 3M on day 1; the raise calls the account."""
    rows = [
        FuturesMarginRow(symbol="*", since="2015-07-01", initial="150000", maintenance="120000"),
        FuturesMarginRow(
            symbol="SSE-COMPOSITE-PROXY-FUT", since="2015-07-08", initial="400000", maintenance="300000"
        ),
    ]
    strategy = Plan({("2015-07-06", "10:00"): 4.5})
    config = _proxy_config(tmp_path, "dated", AccountConfig(futures_margin=rows))
    run_backtest(config, strategy)
    events = _events(config.journal)
    opening = next(e for e in events if isinstance(e, OrderFilled))
    assert opening.fill_qty_raw <= 5_000_000 // 150_000
    calls = [e for e in events if isinstance(e, MarginCalled)]
    assert calls and calls[0].day == 20150708
    assert calls[0].maintenance_minor == opening.fill_qty_raw * 300_000_00
    # A row in force only from a later day than the future's first is refused up front.
    late = [FuturesMarginRow(symbol="*", since="2015-07-07", initial="150000", maintenance="120000")]
    refused = _proxy_config(tmp_path, "late", AccountConfig(futures_margin=late))
    with pytest.raises(KernelError, match=r"no row for SSE-COMPOSITE-PROXY-FUT in force on 20150706"):
        run_backtest(refused, strategy)
    unknown = [FuturesMarginRow(symbol="IF2507", since="2015-07-01", initial="1", maintenance="1")]
    with pytest.raises(KernelError, match=r"\['IF2507'\] are not futures of this data set"):
        run_backtest(_proxy_config(tmp_path, "unknown", AccountConfig(futures_margin=unknown)), strategy)


class Weekly:
    strategy_id = "targets"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(5, panel.steps, 7, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array([self.weight])


@pytest.mark.needs_shared_data
@needs_spdb
def test_a_stock_margin_account_is_held_to_its_initial_and_maintenance_requirements(tmp_path: Path) -> None:
    """SPDB 2001-2003, a 250% target re-asked weekly. Reg T's 50% initial requirement cuts the
    first buy to what 1M CNY margins; a constructed 40% house maintenance requirement calls the
    account as the price falls, and the forced sales bring it back to initial margin."""
    from tests.integration.test_cash_account import COMMISSION, FEES, _spdb

    dataset = _spdb(tmp_path)
    account = AccountConfig(initial_e8=50_000_000, maintenance_e8=40_000_000)
    config = make_config(dataset, tmp_path / "j", risk=LEVERED, currency="CNY", cn_fees=FEES,  # type: ignore[arg-type]
                         fill=COMMISSION, account=account)  # fmt: skip
    strategy = Weekly(2.5)
    run_backtest(config, strategy)
    events = _events(config.journal)
    verdicts = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "initial_margin"]
    first = verdicts[0]
    assert first.action == "clip" and first.limit == 1_000_000_00
    assert "100200 of 125400 fit" in first.detail  # 2x the equity at 19.93, commission included
    assert all(v.observed > v.limit for v in verdicts)
    assert all(v.observed_after <= v.limit for v in verdicts if v.action == "clip")
    refused = [v for v in verdicts if v.action == "reject"]
    assert refused and all(v.observed_after == 0 for v in refused)
    calls = [e for e in events if isinstance(e, MarginCalled)]
    assert calls and all(c.equity_minor < c.maintenance_minor for c in calls)
    for call in calls:
        assert call.maintenance_minor == sum(call.maintenance_by_position_minor)
        forced = [
            e for e in events
            if isinstance(e, OrderSubmitted) and e.strategy_id == MARGIN_CALL_STRATEGY_ID
            and e.order_id.split("-")[1] == str(call.day)
        ]  # fmt: skip
        assert len(forced) == 1 and forced[0].qty_raw % 100 == 0

    def build(r, ref):  # type: ignore[no-untyped-def]
        return build_setup(config, strategy, expected_hash=ref.content_hash)

    assert replay(open_journal(config.journal), build).ok


def test_account_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="a cash account pays in full"):
        AccountConfig(type="cash", initial_e8=50_000_000, maintenance_e8=25_000_000)
    with pytest.raises(ValueError, match=r"need 0 < maintenance_e8 \(60000000\) <= initial_e8"):
        AccountConfig(initial_e8=50_000_000, maintenance_e8=60_000_000)
    with pytest.raises(ValueError, match="margin_call must be one of"):
        AccountConfig(margin_call="pray")
    with pytest.raises(ValueError, match="one pair"):
        FuturesMarginRow(symbol="*", since="2024-01-02", initial="1000", initial_e8=10_000_000)
    with pytest.raises(ValueError, match="since must be a date"):
        FuturesMarginRow(symbol="*", since="2024/01/02", initial_e8=2, maintenance_e8=1)
    with pytest.raises(ValueError, match="futures trade in a margin account"):
        row = FuturesMarginRow(symbol="*", since="2024-01-02", initial_e8=2, maintenance_e8=1)
        AccountConfig(type="cash", futures_margin=[row])


def test_a_cash_account_journals_the_config_it_did_before(tmp_path: Path) -> None:
    """The new settings at their defaults stay out of the journaled configuration."""
    config = make_config(tmp_path / "d", tmp_path / "j", account=AccountConfig(type="cash"))  # type: ignore[arg-type]
    text = config.canonical_json()
    assert '"account":{"collar_e8":2000000,"type":"cash"}' in text
    assert BacktestConfig.from_json(text).account == AccountConfig(type="cash")
