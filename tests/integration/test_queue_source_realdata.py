"""The queue source on real data (../shared/data; skipped with a reason when absent): the same
bars pushed one step at a time give the data set's journal byte for byte, and a journal that
holds the bars (as paper and live runs write them) replays whole and by day.

* SPDB 600000 one-minute bars (hikyuu, 43 sessions, XSHG): ``intraday_round_trip`` — T+1
  refusals, day orders expiring at the close, stamp duty, the 5 CNY minimum commission.
* XRP/ETH one-minute bars (freqtrade, Binance, 24x7): SMA(10/30) at a small weight, so it trades
  on every crossover, with the kill switch's stale-data trigger on (gaps in the bars).
* ORCL, NVDA, YHOO daily 2004-2012 (XNYS): two strategies in one book (trend 60%, rotation 40%).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.wiring import make_strategies, replay_builder
from domain.events import INPUT_KINDS, DayClosed
from domain.riskrules import KillSwitchConfig
from kernel.replay import replay
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_freqtrade, parse_hikyuu_minute, parse_yahoo
from sim.backtest import BacktestConfig, StrategyConfig, run_backtest
from sim.fill_models import FillModel
from sim.queued import run_queued
from tests.factories import US_DAILY_NAMES, utc_ns

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SPDB_CSV = SHARED / "cn" / "hikyuu" / "time1min_600000.SH.csv"
XRP_FEATHER = SHARED / "crypto" / "freqtrade" / "XRP_ETH-1m.feather"
US_NAMES = US_DAILY_NAMES

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(
        not (SPDB_CSV.exists() and XRP_FEATHER.exists() and (SHARED / "us" / US_NAMES[0]).exists()),
        reason=f"shared real data not found under {SHARED}",
    ),
]


def _export(
    tmp: Path, sources: list[Path], parser: object, frequency: str, calendar: str, **span: int
) -> Path:
    ingest(tmp / "lake", sources, parser)  # type: ignore[arg-type]
    Lake(tmp / "lake").export(tmp / "set", frequency, calendar=calendar, **span)
    return tmp / "set"


def _config(name: str, dataset: Path, journal: Path, **fields: object) -> BacktestConfig:
    return BacktestConfig(run_id=f"queued-{name}", dataset=str(dataset), journal=str(journal), **fields)  # type: ignore[arg-type]


def _check(config: BacktestConfig, root: Path, days: int = 3) -> None:
    """Data set vs queue source (same bytes), then a queued journal with its bars replays."""
    batch = run_backtest(config, make_strategies(config))
    Path(config.journal).rename(root / "batch")
    queued = run_queued(config, make_strategies(config))
    assert queued.result.last_hash == batch.last_hash
    assert queued.result.records == batch.records
    assert queued.counts.balanced and not queued.counts.quarantined
    Path(config.journal).rename(root / "queued")
    live = run_queued(config, make_strategies(config), journal_bars=True)
    with open_journal(config.journal) as journal, open_journal(root / "batch") as reference:
        derived = [r.payload for r in journal.records() if r.kind not in INPUT_KINDS]
        assert derived == [r.payload for r in reference.records() if r.kind not in INPUT_KINDS]
        outcome = replay(journal, replay_builder)
        assert outcome.ok, outcome.divergence
        closes = [e.day for _, e in journal.events() if isinstance(e, DayClosed)]
        picks = sorted({closes[0], closes[len(closes) // 2], closes[-1]})[:days]
        for day in picks:
            by_day = replay(journal, replay_builder, day=day)
            assert by_day.ok, (day, by_day.divergence)
    assert live.counts.accepted == queued.counts.accepted > 0


def test_spdb_minutes_a_share_rules(tmp_path: Path) -> None:
    data = _export(tmp_path, [SPDB_CSV], parse_hikyuu_minute, "1m", "XSHG")
    config = _config(
        "spdb",
        data,
        tmp_path / "j",
        currency="CNY",
        initial_cash="1000000",
        fill=FillModel(commission_e8=25_000, commission_min_minor=500, participation_e8=1_000_000),
        strategy=StrategyConfig(name="intraday_round_trip", params={"weight": 0.5}),
    )
    _check(config, tmp_path)


def test_xrp_minutes_decision_dense_with_stale_data_trigger(tmp_path: Path) -> None:
    data = _export(tmp_path, [XRP_FEATHER], parse_freqtrade, "1m", "24x7")
    config = _config(
        "xrp",
        data,
        tmp_path / "j",
        currency="ETH",
        initial_cash="100",
        strategy=StrategyConfig(name="sma_crossover", params={"fast": 10, "slow": 30, "weight": 0.05}),
        kill_switch=KillSwitchConfig(stale_data_ns_max=30 * 60 * 10**9),
    )
    _check(config, tmp_path)


def test_us_daily_two_strategies_in_one_book(tmp_path: Path) -> None:
    data = _export(
        tmp_path, [SHARED / "us" / name for name in US_NAMES], parse_yahoo, "1d", "XNYS",
        start_ns=utc_ns("2004-01-01"), end_ns=utc_ns("2012-12-31"),
    )  # fmt: skip
    config = _config(
        "two",
        data,
        tmp_path / "j",
        initial_cash="1000000",
        us_regulatory_fees=False,
        strategies=[
            StrategyConfig(
                name="sma_crossover",
                params={"fast": 10, "slow": 40, "weight": 0.9, "strategy_id": "trend"},
                budget="0.6",
            ),
            StrategyConfig(
                name="momentum",
                params={"lookback": 60, "skip": 5, "top": 1, "weight": 0.95, "strategy_id": "rotation"},
                budget="0.4",
            ),
        ],
    )
    _check(config, tmp_path)
