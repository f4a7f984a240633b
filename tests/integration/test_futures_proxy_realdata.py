"""Daily settlement on real minute data: the SSE Composite index's 1-minute bars (czsc,
2015-07-06..10, the crash's most volatile week) as a **proxy underlying** for an index future
(the index is not a futures contract: its prices, 0.01 tick and share volumes stand in for a
CFFEX contract's, with IF's 300 CNY/pt multiplier). Settled CFFEX-style at the VWAP of each
session's last hour, recomputed here from the raw CSV with fractions; the run replays whole and
per session."""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pytest

from domain.events import DayClosed, FutureSettled, LedgerPosted, OrderFilled
from domain.fixed import Rounding
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from kernel.futures import FuturesConfig
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import one_name_policy

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ZIP = SHARED / "cn" / "czsc" / "000001.XSHG_index_1min_2015-2019.zip"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not ZIP.exists(), reason=f"real market data not present at {ZIP}"),
]

PROXY = Instrument(
    instrument_id=1,
    symbol="SSE-COMPOSITE-PROXY-FUT",
    venue="CCFX",
    asset_class="future",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
    multiplier=300,
)
DAYS = [20150706, 20150707, 20150708, 20150709, 20150710]


def _raw() -> pl.DataFrame:
    with zipfile.ZipFile(ZIP) as archive:
        raw = pl.read_csv(io.BytesIO(archive.read("000001.XSHG_1min.csv")))
    raw = raw.with_columns(
        pl.col("dt").str.slice(0, 10).str.replace_all("-", "").cast(pl.Int32).alias("day"),
        pl.col("dt")
        .str.to_datetime("%Y-%m-%d %H:%M:%S")
        .dt.replace_time_zone("Asia/Shanghai")
        .dt.epoch("ns")
        .alias("ts_ns"),
    )
    return raw.filter(pl.col("day").is_in(DAYS)).sort("ts_ns")


def _dataset(path: Path, raw: pl.DataFrame) -> Path:
    cents = {c: (raw[c] * 100).round().cast(pl.Int64).to_list() for c in ("open", "high", "low", "close")}
    bars = pa.table(
        {
            "ts_ns": raw["ts_ns"].to_list(),
            "day": raw["day"].to_list(),
            "instrument_id": [1] * raw.height,
            **cents,
            "volume": raw["vol"].cast(pl.Int64).to_list(),
        }
    )
    write_dataset(path, name="sse-proxy", frequency="1m", calendar="XSHG", instruments=[PROXY], bars=bars)
    return path


class LongThenShort:
    """Long 80% of NAV on day 1 at 10:00, short 50% from day 3 at 10:00, flat on day 5 at 14:00."""

    strategy_id = "proxy"

    def _plan(self, panel: Panel) -> dict[int, float]:
        def step(day: int, hhmm: str) -> int:
            stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T{hhmm}"
            ts = int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))
            return int(np.searchsorted(panel.ts_ns, ts))

        return {step(DAYS[0], "10:00"): 0.8, step(DAYS[2], "10:00"): -0.5, step(DAYS[4], "14:00"): 0.0}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array(sorted(self._plan(panel)), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self._plan(view.panel)[view.step]])


def test_proxy_index_future_settles_at_last_hour_vwap_and_replays(tmp_path: Path) -> None:
    raw = _raw()
    assert raw["day"].unique().sort().to_list() == DAYS and raw.height == 5 * 240
    config = BacktestConfig(
        run_id="proxy-future",
        dataset=str(_dataset(tmp_path / "data", raw)),
        journal=str(tmp_path / "journal"),
        currency="CNY",
        initial_cash="5000000",
        strategy=StrategyConfig(name="proxy"),
        fill=FillModel(commission_e8=2_300),
        risk=one_name_policy(),
        futures=FuturesConfig(settlement="vwap_last_minutes", last_minutes=60),
    )
    run_backtest(config, LongThenShort())
    journal = open_journal(config.journal)
    events = [e for _, e in journal.events()]
    settled = [e for e in events if isinstance(e, FutureSettled)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [e.day for e in settled] == DAYS[:4]  # flat before the fifth close
    for event in settled:
        last_hour = raw.filter((pl.col("day") == event.day) & (pl.col("dt").str.slice(11, 5) > "14:00"))
        assert last_hour.height == 60
        weighted = sum(
            Fraction(round(Fraction(str(c)) * 100)) * v
            for c, v in zip(last_hour["close"].to_list(), last_hour["vol"].to_list(), strict=True)
        )
        vwap = weighted / sum(last_hour["vol"].to_list())
        assert event.settle_px_raw == round(vwap) and event.method == "vwap_last_minutes=60"
        assert event.variation_minor == event.settled_value_minor - event.reference_value_minor
    # Settlement differs from the close (it is not a silent close) on these days.
    closes = {d: round(raw.filter(pl.col("day") == d)["close"][-1] * 100) for d in DAYS}
    assert sum(e.settle_px_raw != closes[e.day] for e in settled) >= 3
    # Day 1 long: variation = (settle - fill price) x lots x 300 in fen, exactly.
    first = settled[0]
    opening = fills[0]
    assert first.variation_minor == (first.settle_px_raw - opening.fill_px_raw) * opening.fill_qty_raw * 300
    # Round trip: variation margin + realised P&L == the fills' notional flows, cash holds only that.
    flows = sum(-f.side * f.notional_minor for f in fills)
    balances: dict[str, int] = {}
    for posted in events:
        if isinstance(posted, LedgerPosted):
            for p in posted.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
    assert sum(balances.values()) == 0
    assert -balances["income:variation_margin:CNY"] - balances.get("income:realized:CNY", 0) == flows
    assert balances["assets:cash:CNY"] == 5_000_000_00 + flows - sum(f.commission_minor for f in fills)
    day_closes = [e for e in events if isinstance(e, DayClosed)]
    assert day_closes[-1].nav_minor == day_closes[-1].cash_minor == balances["assets:cash:CNY"]
    # Gross exposure at a close is the notional held, not the unsettled P&L.
    qty = opening.fill_qty_raw
    assert day_closes[0].gross_exposure_minor == notional_minor(
        PROXY, qty, closes[DAYS[0]], Rounding.HALF_EVEN
    )

    def build(r, ref):  # type: ignore[no-untyped-def]
        return build_setup(config, LongThenShort(), expected_hash=ref.content_hash)

    assert replay(journal, build).ok
    for day in DAYS:
        outcome = replay(journal, build, day=day)
        assert outcome.ok, (day, outcome.divergence)
