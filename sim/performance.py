"""Return and trade statistics of a run, with the definitions empyrical uses where it has them.

Return statistics take the periodic simple returns of the NAV (one per session day, the first
against the initial capital) and an annualisation factor (252 sessions, or 365 on a 24x7
calendar); ``tests/integration/test_performance_vs_empyrical.py`` holds each one equal to
empyrical-reloaded's to 1e-12 on real returns:

- total return: the product of (1 + r) less one; annual return: its geometric annualisation
  ``(1 + total) ** (factor / n) - 1`` (empyrical's ``annual_return``);
- volatility: the sample standard deviation (ddof 1) times ``sqrt(factor)``;
- Sharpe (risk-free 0): the mean over the sample standard deviation, times ``sqrt(factor)``;
- Sortino (required return 0): the annualised mean over the annualised downside deviation
  ``sqrt(mean(min(r, 0) ** 2) * factor)``;
- maximum drawdown: the largest fall of the compounded NAV from its running peak, the initial
  capital counting as the first peak (a negative fraction, as empyrical reports it);
- Calmar: annual return over the magnitude of the maximum drawdown (NaN without a drawdown).

Not in empyrical, defined here: the longest drawdown (periods from a peak until the NAV is back
at it, or to the end), and the trade statistics below.

A *trade* is a fill that books realised PnL (it closes some or all of a position); its PnL is
the realised PnL less that fill's own fees. Hit rate: the share of trades with a positive PnL.
Profit factor: gains over the magnitude of losses (inf without a loss). Expectancy: the mean
trade PnL. SQN (System Quality Number): ``sqrt(n) * mean / sample std`` of trade PnLs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ReturnStats", "TradeStats", "return_stats", "trade_stats"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReturnStats:
    periods: int
    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float  # <= 0, a fraction of the peak
    max_drawdown_periods: int  # the longest time under a previous peak
    calmar: float


@dataclass(frozen=True)
class TradeStats:
    trades: int
    hit_rate: float
    profit_factor: float
    expectancy: float  # mean trade PnL, currency units
    sqn: float


def return_stats(returns: FloatArray, factor: int) -> ReturnStats:
    """Statistics of periodic simple ``returns`` annualised with ``factor`` periods a year."""
    r = np.asarray(returns, dtype=np.float64)
    n = int(r.size)
    if n == 0:
        nan = math.nan
        return ReturnStats(0, 0.0, nan, nan, nan, nan, 0.0, 0, nan)
    total = float(np.prod(1.0 + r)) - 1.0
    annual = (1.0 + total) ** (factor / n) - 1.0
    std = float(np.std(r, ddof=1)) if n > 1 else math.nan
    mean = float(np.mean(r))
    volatility = std * math.sqrt(factor)
    sharpe = mean / std * math.sqrt(factor) if std and not math.isnan(std) else math.nan
    downside = math.sqrt(float(np.mean(np.square(np.minimum(r, 0.0)))) * factor)
    sortino = mean * factor / downside if downside else math.inf if mean > 0 else math.nan
    drawdown, duration = _drawdown(r)
    calmar = annual / abs(drawdown) if drawdown < 0 else math.nan
    return ReturnStats(n, total, annual, volatility, sharpe, sortino, drawdown, duration, calmar)


def _drawdown(returns: FloatArray) -> tuple[float, int]:
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    peak = np.fmax.accumulate(wealth)
    depth = float(np.min((wealth - peak) / peak))
    under = wealth < peak
    longest = run = 0
    for flag in under.tolist():
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return depth, longest


def trade_stats(pnls: list[float]) -> TradeStats:
    """Statistics of closed trades' PnLs (currency units)."""
    n = len(pnls)
    if n == 0:
        return TradeStats(0, math.nan, math.nan, math.nan, math.nan)
    values = np.asarray(pnls, dtype=np.float64)
    gains = float(values[values > 0].sum())
    losses = float(-values[values < 0].sum())
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    return TradeStats(
        trades=n,
        hit_rate=float((values > 0).sum()) / n,
        profit_factor=gains / losses if losses else math.inf if gains else math.nan,
        expectancy=mean,
        sqn=math.sqrt(n) * mean / std if std and not math.isnan(std) else math.nan,
    )
