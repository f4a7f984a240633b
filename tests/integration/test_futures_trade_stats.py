"""The report's closing-trade statistics of daily-settled futures.

A future's fill books realised PnL against the position's last settlement (the daily variation
margin paid the rest), so a trade statistic read from ``income:realized`` alone says how the
last session went, not the trade: a long bought at 3,858, called at 3,701 and 3,595 showed a
+436.65 USD expectancy and a 50% hit rate on a run that lost 21,003.40 USD. The trade's PnL is
its exit against its entry, less the closing fill's fees, as for any other instrument.

Hand-made CFFEX-style minute data set of ``test_futures_settlement`` (IC 200 CNY/pt settling at
published prices, IF 300 CNY/pt at its last hour's VWAP): each position is opened once and
closed whole sessions later, so each trade's PnL is exactly ``side x (exit - entry notional) -
the closing fill's commission``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from domain.events import FutureSettled, OrderFilled
from domain.market import Panel
from kernel.store import open_journal
from kernel.strategy import MarketView
from sim.backtest import run_backtest
from sim.metrics import report_from_journal
from sim.tearsheet import daily_series
from tests.integration import test_futures_settlement as fut


class OpenThenClose:
    """IC long from day 0 to day 2, IF short from day 0 to day 3, each closed whole."""

    strategy_id = "plan"
    PLAN: ClassVar[dict[tuple[int, str], tuple[float, float]]] = {
        (0, "10:00"): (0.5, -0.3),
        (2, "10:00"): (0.0, -0.3),
        (3, "14:00"): (0.0, 0.0),
    }

    def __init__(self) -> None:
        self._by_ts = {fut._ts(fut.DAYS[d], hhmm): w for (d, hhmm), w in self.PLAN.items()}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(np.isin(panel.ts_ns, list(self._by_ts))).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array(self._by_ts[view.ts_ns])


def test_a_futures_trade_is_its_exit_against_its_entry_not_against_the_last_settlement(
    tmp_path: Path,
) -> None:
    config = fut._config(tmp_path, fut.CONFIG)
    run_backtest(config, OpenThenClose())
    with open_journal(config.journal) as journal:
        events = [event for _, event in journal.events()]
        report = report_from_journal(journal)
        series = daily_series(journal)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    opens = {f.instrument_id: f for f in fills[:2]}
    closes = {f.instrument_id: f for f in fills[2:]}
    ic, if_ = fut.IC.instrument_id, fut.IF.instrument_id
    assert len(fills) == 4 and opens[ic].side == 1 and opens[if_].side == -1
    assert all(closes[iid].side == -opens[iid].side for iid in (ic, if_))
    # Both positions were settled at closes between their fills, with variation paid.
    settled = {e.instrument_id for e in events if isinstance(e, FutureSettled) and e.variation_minor}
    assert settled == {fut.IC.instrument_id, fut.IF.instrument_id}
    expected = []
    for iid, entry in opens.items():
        exit_ = closes[iid]
        assert exit_.fill_qty_raw == entry.fill_qty_raw  # closed whole
        expected.append(entry.side * (exit_.notional_minor - entry.notional_minor) - exit_.commission_minor)
    trades = report.trades
    assert trades.trades == 2
    assert round(trades.expectancy * 2 * 100) == sum(expected)  # CNY -> fen, to the fen
    assert trades.hit_rate == sum(pnl > 0 for pnl in expected) / 2
    # The round trips are the run: NAV moved by the trades less the opening commissions.
    opening = sum(f.commission_minor for f in opens.values())
    assert round(report.final_nav * 100) - 10_000_000_00 == sum(expected) - opening
    # The tearsheet's trade distribution is the same PnLs.
    assert sorted(round(pnl * 100) for pnl in series.trade_pnls) == sorted(expected)
