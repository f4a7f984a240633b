"""Tearsheets: a run's (or a sweep's, or a walk-forward's) figures as PNG files and one
self-contained HTML page (the PNGs embedded), drawn with matplotlib's Agg backend (no display).

Everything drawn comes from the journal's events (``DayClosed``, ``SleevesMarked`` and the
closing trades of ``sim.metrics``) or from the experiments table and ``walkforward.json`` a
sweep or walk-forward wrote — the same numbers ``tape report`` and ``tape runs`` print.
matplotlib is in the ``research`` extra (``pip install 'tape[research]'``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.events import (
    CurrenciesMarked,
    DayClosed,
    FutureSettled,
    LedgerPosted,
    OrderFilled,
    RunStarted,
    SleevesMarked,
)
from domain.fixed import minor_digits
from kernel.journal import Journal
from sim.experiments import Experiment, metric_score, short_names
from sim.metrics import ClosingFills, RunReport, closing_trade_pnl, closing_trade_pnl_in_base, initial_nav
from sim.performance import return_stats

__all__ = [
    "DailySeries",
    "Figure",
    "TearsheetError",
    "daily_series",
    "run_figures",
    "sweep_figures",
    "walkforward_figures",
    "write_tearsheet",
]

FloatArray = npt.NDArray[np.float64]


class TearsheetError(ValueError):
    """Nothing to draw, or matplotlib is not installed."""


@dataclass
class DailySeries:
    currency: str
    initial: float  # the initial NAV in the base, as ``tape report`` counts it
    days: list[int] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)
    gross: list[float] = field(default_factory=list)  # gross exposure, currency units
    sleeves: dict[str, list[float]] = field(default_factory=dict)  # strategy id -> NAV per day
    trade_pnls: list[float] = field(default_factory=list)  # in the base currency


class _Trades:
    """Closing trades in journal order; one in another currency than the base waits for its
    day's ``CurrenciesMarked`` and is converted at its rates, as ``tape report`` does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.closing = ClosingFills()
        self.pending: list[tuple[LedgerPosted, bool, int]] = []
        self.first_marks: CurrenciesMarked | None = None


def daily_series(journal: Journal) -> DailySeries:
    """NAV, gross exposure and sleeve NAVs per session day, and closing-trade PnLs."""
    wanted = {
        "run.started.v1",
        "day.closed.v1",
        "book.sleeves_marked.v1",
        "ledger.posted.v1",
        "order.filled.v1",
        "future.settled.v1",
        "book.currencies_marked.v1",
    }
    first = journal.record(0).event() if len(journal) else None
    if not isinstance(first, RunStarted):
        raise TearsheetError("the journal does not start with run.started")
    config = json.loads(first.config_json)
    currency = str(config.get("currency", "USD"))
    scale = float(10 ** minor_digits(currency))
    series = DailySeries(currency, 0.0)
    trades = _Trades(currency)
    for record in journal.records(1):
        if record.kind in wanted:
            _add(series, record.event(), scale, trades)
    series.initial = initial_nav(config, trades.first_marks)
    if len(series.days) < 2:
        raise TearsheetError("the journal holds fewer than two closed days: nothing to draw")
    return series


def _add(series: DailySeries, event: object, scale: float, trades: _Trades) -> None:
    closing = trades.closing
    if isinstance(event, DayClosed):
        series.days.append(event.day)
        series.nav.append(event.nav_minor / scale)
        series.gross.append(event.gross_exposure_minor / scale)
    elif isinstance(event, SleevesMarked):
        for mark in event.sleeves:
            series.sleeves.setdefault(mark.strategy_id, []).append(mark.nav_minor / scale)
    elif isinstance(event, OrderFilled):
        closing.fill(event)
    elif isinstance(event, FutureSettled):
        closing.settle(event)
    elif isinstance(event, LedgerPosted):
        closes, settled = closing.closes(event), closing.settled_share(event)
        if any(posting.currency != trades.base for posting in event.postings):
            trades.pending.append((event, closes, settled))
            return
        pnl = closing_trade_pnl(event, closes, settled)
        if pnl is not None:
            series.trade_pnls.append(pnl / scale)
    elif isinstance(event, CurrenciesMarked):
        _close_currencies(series, event, scale, trades)


def _close_currencies(series: DailySeries, event: CurrenciesMarked, scale: float, trades: _Trades) -> None:
    rates = {mark.currency: mark.rate_e8 for mark in event.currencies}
    for posted, closes, settled in trades.pending:
        pnl = closing_trade_pnl_in_base(posted, closes, settled, trades.base, rates)
        if pnl is not None:
            series.trade_pnls.append(pnl / scale)
    trades.pending.clear()
    trades.first_marks = trades.first_marks or event


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    title: str
    png: bytes


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TearsheetError("tearsheets need matplotlib: pip install 'tape[research]'") from None
    return plt


def _dates(days: list[int]) -> list[date]:
    return [date(d // 10000, d // 100 % 100, d % 100) for d in days]


def _render(plt: Any, draw: Callable[[Any], None], size: tuple[float, float] = (9.0, 3.6)) -> bytes:
    figure = plt.figure(figsize=size, dpi=100)
    try:
        draw(figure)
        figure.tight_layout()
        buffer = io.BytesIO()
        # Fixed metadata: the same run draws the same bytes.
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        plt.close(figure)


def run_figures(series: DailySeries, report: RunReport, factor: int) -> list[Figure]:
    """Equity and drawdown, monthly returns, rolling Sharpe and volatility, exposure, the
    closing trades' PnL distribution, and (several strategies) each sleeve's NAV."""
    plt = _pyplot()
    curves = _Curves(series)
    draws: list[tuple[str, str, Callable[[Any], None], tuple[float, float]]] = [
        ("equity", "Equity and drawdown", lambda f: _equity(f, curves, report), (9.0, 5.0)),
    ]
    months = _monthly(series.days, curves.returns)
    if months:
        height = max(1.2 + 0.35 * len({year for year, _ in months}), 2.5)
        draws.append(("monthly", "Monthly returns", lambda f: _heatmap(f, months), (9.0, height)))
    window = min(63, max(len(curves.returns) // 4, 2))
    if len(curves.returns) > window:
        rolling = ("rolling", "Rolling Sharpe and volatility")
        draws.append((*rolling, lambda f: _rolling_figure(f, curves, window, factor), (9.0, 3.6)))
    draws.append(("exposure", "Exposure", lambda f: _exposure(f, curves, report), (9.0, 3.6)))
    if series.trade_pnls:
        draws.append(("trades", "Trade distribution", lambda f: _trades(f, series, report), (9.0, 3.6)))
    if series.sleeves:
        draws.append(("strategies", "Per-strategy attribution", lambda f: _sleeves(f, curves), (9.0, 3.6)))
    figures = [Figure(name, title, _render(plt, draw, size)) for name, title, draw, size in draws]
    return figures


class _Curves:
    def __init__(self, series: DailySeries) -> None:
        self.series = series
        self.when = _dates(series.days)
        self.nav = np.array(series.nav)
        self.base = series.initial if series.initial > 0 else float(self.nav[0])
        curve = np.concatenate([[self.base], self.nav])
        self.returns = np.diff(curve) / curve[:-1]
        self.drawdown = self.nav / np.fmax.accumulate(curve)[1:] - 1.0


def _equity(fig: Any, c: _Curves, report: RunReport) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(c.when, c.nav, color="#1f5fa8", linewidth=1.2)
    top.axhline(c.base, color="#888888", linewidth=0.6, linestyle="--")
    top.set_ylabel(f"NAV ({c.series.currency})")
    top.set_title(f"{report.run_id}: return {report.total_return:+.1%}, Sharpe {report.sharpe:.2f}")
    bottom.fill_between(c.when, c.drawdown * 100, 0, color="#c0392b", alpha=0.5)
    bottom.set_ylabel("drawdown %")


def _heatmap(fig: Any, months: dict[tuple[int, int], float]) -> None:
    years = sorted({year for year, _ in months})
    grid = np.full((len(years), 12), np.nan)
    for (year, month), value in months.items():
        grid[years.index(year), month - 1] = value * 100
    axis = fig.subplots()
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    image = axis.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    axis.set_yticks(range(len(years)), [str(y) for y in years])
    for row, col in zip(*np.nonzero(~np.isnan(grid)), strict=True):
        axis.text(col, row, f"{grid[row, col]:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=axis, label="return %")
    axis.set_title("Monthly returns (%)")


def _rolling_figure(fig: Any, c: _Curves, window: int, factor: int) -> None:
    left = fig.subplots()
    sharpe, vol = _rolling(c.returns, window, factor)
    left.plot(c.when[window - 1 :], sharpe, color="#1f5fa8", linewidth=1.0)
    left.set_ylabel(f"rolling Sharpe ({window} sessions)")
    right = left.twinx()
    right.plot(c.when[window - 1 :], vol * 100, color="#e67e22", linewidth=1.0)
    right.set_ylabel("annualised volatility % (orange)")
    left.set_title(f"Rolling Sharpe (blue) and volatility ({window} sessions)")


def _exposure(fig: Any, c: _Curves, report: RunReport) -> None:
    axis = fig.subplots()
    with np.errstate(divide="ignore", invalid="ignore"):
        gross = np.array(c.series.gross) / np.where(c.nav > 0, c.nav, np.nan)
    axis.fill_between(c.when, gross * 100, 0, color="#16a085", alpha=0.5)
    axis.set_ylabel("gross exposure, % of NAV")
    axis.set_title(f"Exposure over time (days held: {report.exposure:.0%})")


def _trades(fig: Any, series: DailySeries, report: RunReport) -> None:
    axis = fig.subplots()
    pnls = np.array(series.trade_pnls)
    axis.hist(pnls, bins=min(60, max(10, len(pnls) // 5)), color="#7f8c8d")
    axis.axvline(0, color="#000000", linewidth=0.8)
    axis.set_xlabel(f"closing trade PnL ({series.currency})")
    trades = report.trades
    axis.set_title(f"{len(pnls):,} closing trades: hit rate {trades.hit_rate:.0%}, "
                   f"profit factor {trades.profit_factor:.2f}")  # fmt: skip


def _sleeves(fig: Any, c: _Curves) -> None:
    axis = fig.subplots()
    for name, values in c.series.sleeves.items():
        axis.plot(c.when[-len(values) :], values, linewidth=1.0, label=name)
    axis.plot(c.when, c.nav, color="#000000", linewidth=1.2, label="book")
    axis.set_ylabel(f"NAV ({c.series.currency})")
    axis.legend(loc="upper left")
    axis.set_title("Per-strategy attribution: each sleeve's NAV (they sum to the book)")


def _monthly(days: list[int], returns: FloatArray) -> dict[tuple[int, int], float]:
    out: dict[tuple[int, int], float] = {}
    for day, value in zip(days, returns.tolist(), strict=True):
        key = (day // 10000, day // 100 % 100)
        out[key] = (1.0 + out.get(key, 0.0)) * (1.0 + value) - 1.0
    return out


def _rolling(returns: FloatArray, window: int, factor: int) -> tuple[FloatArray, FloatArray]:
    views = np.lib.stride_tricks.sliding_window_view(returns, window)
    std = views.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, views.mean(axis=1) / std * math.sqrt(factor), np.nan)
    return sharpe, std * math.sqrt(factor)


def sweep_figures(experiments: list[Experiment], metric: str) -> list[Figure]:
    """For each pair of swept parameters, a heatmap of ``metric`` (the best run, by the metric's
    better direction, where other parameters vary); one parameter: ``metric`` against it. Each
    figure is named by the parameters' shortest unambiguous names (``sim.experiments.short_names``)."""
    plt = _pyplot()
    keys = sorted({key for e in experiments for key in e.params})
    if not keys:
        raise TearsheetError("the sweep has no parameters to draw")
    names = short_names(keys)  # file names and page ids: unique where keys share a last part
    figures = []
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]] or [(keys[0], "")]
    for first, second in pairs[:6]:
        xs = sorted({e.params[first] for e in experiments}, key=_sortable)
        ys = sorted({e.params[second] for e in experiments}, key=_sortable) if second else [""]
        grid = np.full((len(ys), len(xs)), np.nan)
        for e in experiments:
            value = e.metrics.get(metric)
            if value is None:
                continue
            row = ys.index(e.params[second]) if second else 0
            col = xs.index(e.params[first])
            if np.isnan(grid[row, col]) or metric_score(metric, value) > metric_score(metric, grid[row, col]):
                grid[row, col] = value  # the best run by the metric's better direction

        def draw(fig: Any, grid: FloatArray = grid, xs: list[Any] = xs, ys: list[Any] = ys,
                 first: str = first, second: str = second) -> None:  # fmt: skip
            axis = fig.subplots()
            image = axis.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
            axis.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=45)
            axis.set_yticks(range(len(ys)), [str(y) for y in ys])
            axis.set_xlabel(first)
            axis.set_ylabel(second)
            for row, col in zip(*np.nonzero(~np.isnan(grid)), strict=True):
                axis.text(col, row, f"{grid[row, col]:.2f}", ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(image, ax=axis, label=metric)
            axis.set_title(f"{metric} by {first} and {second}" if second else f"{metric} by {first}")

        stem = "sweep_" + "_".join(names[k] for k in (first, second) if k)
        figures.append(Figure(stem, f"{metric}: {first} x {second}" if second else f"{metric}: {first}",
                              _render(plt, draw, (7.0, 5.0))))  # fmt: skip
    return figures


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def walkforward_figures(report: dict[str, Any]) -> list[Figure]:
    """The stitched out-of-sample equity curve, with the folds' test windows marked."""
    plt = _pyplot()
    stitched = report["stitched"]
    when = _dates(stitched["days"])
    if len(when) < 2:
        raise TearsheetError("the walk-forward has fewer than two out-of-sample sessions")
    curve = np.cumprod(1.0 + np.array(stitched["returns"]))
    # The walk-forward's own stats (annualised on its calendar: 365 sessions on 24x7 data);
    # a report without them (none is written so) would be recomputed on 252.
    stats = stitched.get("stats") or return_stats(np.array(stitched["returns"]), 252).__dict__

    def figure(key: str, spec: str) -> str:
        value = stats.get(key)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "-" if missing else format(value, spec)

    def draw(fig: Any) -> None:
        axis = fig.subplots()
        axis.plot(when, curve, color="#1f5fa8", linewidth=1.2)
        for index, fold in enumerate(report["folds"]):
            start = date.fromisoformat(fold["test"][0])
            axis.axvline(start, color="#888888", linewidth=0.6, linestyle=":")
            axis.text(start, float(curve.max()), f" f{index}", fontsize=7, va="top")
        axis.set_ylabel("growth of 1 (out-of-sample)")
        axis.set_title(
            f"Stitched out-of-sample: return {figure('total_return', '+.1%')}, "
            f"Sharpe {figure('sharpe', '.2f')}, max drawdown {figure('max_drawdown', '.1%')} "
            f"(longest {figure('max_drawdown_periods', ',')} sessions)"
        )

    return [Figure("walkforward", "Stitched out-of-sample curve", _render(plt, draw, (9.0, 4.5)))]


def write_tearsheet(out: Path, title: str, figures: list[Figure], rows: list[tuple[str, str]]) -> Path:
    """Each figure as ``OUT/NAME.png`` and ``OUT/tearsheet.html`` with all of them embedded
    (base64) and a table of ``rows``: one self-contained file."""
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td{padding:2px 12px;border-bottom:1px solid #ddd}"
        "td:last-child{text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if rows:
        parts.append("<table>")
        parts.extend(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
        parts.append("</table>")
    for figure in figures:
        (out / f"{figure.name}.png").write_bytes(figure.png)
        data = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<h2>{html.escape(figure.title)}</h2>")
        alt = html.escape(figure.title)
        parts.append(f"<img id='{figure.name}' alt='{alt}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    page = out / "tearsheet.html"
    page.write_text("\n".join(parts) + "\n")
    return page
