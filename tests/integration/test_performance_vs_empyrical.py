"""``sim.performance`` against empyrical-reloaded on real returns (ORCL and NVDA daily closes,
1999-2014, and the NAV of a backtest on them): every statistic empyrical defines agrees to 1e-12."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest

from domain.events import DayClosed
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_yahoo
from sim.metrics import report_from_journal
from sim.performance import return_stats, trade_stats
from tests.factories import make_config, run

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]


def _closes(name: str) -> np.ndarray:
    with (SHARED / "us" / name).open() as handle:
        return np.array([float(row["Close"]) for row in csv.DictReader(handle)])


def _agree(ours: float, theirs: float) -> None:
    if math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("name", ["orcl-1995-2014.txt", "nvda-1999-2014.txt", "orcl-2014.txt"])
@pytest.mark.parametrize("factor", [252, 365])
def test_return_statistics_equal_empyricals(name: str, factor: int) -> None:
    closes = _closes(name)
    returns = closes[1:] / closes[:-1] - 1.0
    ours = return_stats(returns, factor)
    series = pd.Series(returns)
    period = {"annualization": factor}
    _agree(ours.total_return, float(empyrical.cum_returns_final(series)))
    _agree(ours.annual_return, float(empyrical.annual_return(series, **period)))
    _agree(ours.annual_volatility, float(empyrical.annual_volatility(series, **period)))
    _agree(ours.sharpe, float(empyrical.sharpe_ratio(series, **period)))
    _agree(ours.sortino, float(empyrical.sortino_ratio(series, **period)))
    _agree(ours.max_drawdown, float(empyrical.max_drawdown(series)))
    _agree(ours.calmar, float(empyrical.calmar_ratio(series, **period)))
    assert ours.max_drawdown < -0.1 and ours.max_drawdown_periods > 100  # real series: deep, long


def test_the_reports_statistics_are_empyricals_on_a_backtests_nav(tmp_path: Path) -> None:
    files = [SHARED / "us" / "orcl-1995-2014.txt", SHARED / "us" / "nvda-1999-2014.txt"]
    ingest(tmp_path / "lake", files, parse_yahoo)
    Lake(tmp_path / "lake").export(tmp_path / "set", "1d", calendar="XNYS")
    config = make_config(tmp_path / "set", tmp_path / "j", params={"fast": 10, "slow": 50, "weight": 0.9},
                         us_regulatory_fees=False)  # fmt: skip
    run(config)
    with open_journal(tmp_path / "j") as journal:
        report = report_from_journal(journal)
        navs = [e.nav_minor / 100 for _, e in journal.events() if isinstance(e, DayClosed)]
    series = pd.Series(np.diff([1_000_000.0, *navs]) / np.array([1_000_000.0, *navs[:-1]]))
    assert report.finished and report.days == len(navs) > 3000
    _agree(report.returns.sharpe, float(empyrical.sharpe_ratio(series)))
    _agree(report.returns.sortino, float(empyrical.sortino_ratio(series)))
    _agree(report.returns.annual_return, float(empyrical.annual_return(series)))
    _agree(report.returns.max_drawdown, float(empyrical.max_drawdown(series)))
    _agree(report.returns.calmar, float(empyrical.calmar_ratio(series)))
    assert report.trades.trades > 50 and 0 < report.trades.hit_rate < 1
    assert 0 < report.exposure < 1


def test_the_longest_drawdown_counts_periods_under_the_last_peak() -> None:
    # up 10%, down to 0.99 of start, back to exactly the peak, then below again to the end.
    returns = np.array([0.1, -0.1, 1.1 / 0.99 - 1.0, -0.01, -0.01])
    stats = return_stats(returns, 252)
    assert stats.max_drawdown_periods == 2
    assert stats.max_drawdown == pytest.approx(-0.1)


def test_trade_statistics() -> None:
    stats = trade_stats([100.0, -50.0, 30.0, -20.0])
    assert stats.trades == 4
    assert stats.hit_rate == 0.5
    assert stats.profit_factor == pytest.approx(130 / 70)
    assert stats.expectancy == 15.0
    values = np.array([100.0, -50.0, 30.0, -20.0])
    assert stats.sqn == pytest.approx(2 * 15.0 / values.std(ddof=1))
    assert math.isinf(trade_stats([5.0, 1.0]).profit_factor)
    assert trade_stats([]).trades == 0
