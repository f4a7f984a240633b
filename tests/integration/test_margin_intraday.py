"""Intraday maintenance checks (``[account] maintenance_check = "bar"``, ``kernel.margin``).

Real bars: the SSE Composite's 1-minute bars of 2015-07-06..10 as a proxy index future (300
CNY/pt, ``test_futures_proxy_realdata``), with the CONSTRUCTED 12% / 10% margin rows of
``test_margin_accounts`` (no shared data set has CFFEX's 2015 notices). At each close only, the
2015-07-08 crash calls the account at that day's close; checked at every bar, the call comes
at the first minute bar whose close takes the equity below maintenance, and the forced sale
trades at the next bar of the same session.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from domain.events import MarginCalled, OrderFilled, OrderSubmitted
from domain.fixed import Rounding, apply_rate
from domain.instruments import notional_minor
from kernel.account import AccountConfig
from kernel.margin import MARGIN_CALL_STRATEGY_ID
from kernel.store import open_journal
from sim.backtest import BacktestConfig, build_setup, run_backtest
from tests.integration import test_margin_accounts as proxy

pytestmark = [pytest.mark.needs_shared_data, proxy.needs_proxy]


def _events(path: str | Path) -> list[object]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[BacktestConfig, list[object]]]:
    tmp = tmp_path_factory.mktemp("intraday")
    out = {}
    for check in ("close", "bar"):
        account = AccountConfig(futures_margin=proxy.PROXY_ROWS, maintenance_check=check)
        config = proxy._proxy_config(tmp, check, account)
        run_backtest(config, proxy.Plan({("2015-07-06", "10:00"): 9.0}))
        out[check] = (config, _events(config.journal))
    return out


def test_a_bar_check_calls_the_account_inside_the_session_before_its_close(
    runs: dict[str, tuple[BacktestConfig, list[object]]],
) -> None:
    from tests.integration.test_futures_proxy_realdata import PROXY

    _, at_close = runs["close"]
    config, at_bar = runs["bar"]
    close_calls = [e for e in at_close if isinstance(e, MarginCalled)]
    bar_calls = [e for e in at_bar if isinstance(e, MarginCalled)]
    assert [c.day for c in close_calls] == [20150707, 20150708]  # on settled cash (the default)
    first = bar_calls[0]
    assert first.ts_ns < close_calls[0].ts_ns and "at a bar" in first.reason
    assert first.equity_minor < first.maintenance_minor
    # The requirement is the constructed 10% of the position's notional at that bar's close.
    panel, _ = __import__("lake.store", fromlist=["load_panel"]).load_panel(Path(config.dataset))
    held = sum(
        e.side * e.fill_qty_raw for e in at_bar if isinstance(e, OrderFilled) and e.ts_ns <= first.ts_ns
    )
    close_px = int(panel.close[first.step, 0])
    assert first.maintenance_minor == apply_rate(
        notional_minor(PROXY, abs(held), close_px, Rounding.CEILING), 10_000_000, Rounding.CEILING
    )
    # One call while its forced sale is working; the sale trades at a later bar of that session.
    forced = [e for e in at_bar if isinstance(e, OrderSubmitted) and e.strategy_id == MARGIN_CALL_STRATEGY_ID]
    assert forced[0].ts_ns == first.ts_ns
    fill = next(e for e in at_bar if isinstance(e, OrderFilled) and e.order_id == forced[0].order_id)
    assert first.ts_ns < fill.ts_ns < close_calls[0].ts_ns
    between = [c for c in bar_calls if first.ts_ns < c.ts_ns < fill.ts_ns]
    assert between == []


def test_the_bar_checked_run_replays_whole_and_by_day(
    runs: dict[str, tuple[BacktestConfig, list[object]]],
) -> None:
    config, _ = runs["bar"]
    proxy._replays(config, proxy.Plan({("2015-07-06", "10:00"): 9.0}))


def test_the_setting_journals_only_when_not_the_default(
    runs: dict[str, tuple[BacktestConfig, list[object]]],
) -> None:
    close, _ = runs["close"]
    bar, _ = runs["bar"]
    assert "maintenance_check" not in close.canonical_json()
    assert '"maintenance_check":"bar"' in bar.canonical_json()
    with pytest.raises(ValueError, match="maintenance_check must be one of"):
        AccountConfig(maintenance_check="tick")
    assert build_setup(msgspec.structs.replace(bar), proxy.Plan({})).account.maintenance_check == "bar"


def test_a_halting_bar_check_calls_once_while_trading_is_halted(tmp_path: Path) -> None:
    from domain.events import KillSwitchTripped

    account = AccountConfig(futures_margin=proxy.PROXY_ROWS, maintenance_check="bar", margin_call="halt")
    config = proxy._proxy_config(tmp_path, "halt", account)
    run_backtest(config, proxy.Plan({("2015-07-06", "10:00"): 9.0}))
    events = _events(config.journal)
    calls = [e for e in events if isinstance(e, MarginCalled)]
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    # The first intraday breach halts; no bar inside a session calls again while halted (the
    # closes still judge the account, as without the bar check).
    assert calls and "at a bar" in calls[0].reason and calls[0].policy == "halt"
    assert [c for c in calls[1:] if "at a bar" in c.reason] == []
    assert tripped and tripped[0].trigger == "margin_call" and tripped[0].ts_ns == calls[0].ts_ns
    assert not [
        e for e in events if isinstance(e, OrderSubmitted) and e.strategy_id == MARGIN_CALL_STRATEGY_ID
    ]
