"""Two strategies in one book on real US daily bars (ORCL, NVDA, YHOO 2004-2014): a trend
strategy and a momentum rotation with their own budgets. Their sleeves sum exactly to the book
every day (the kernel checks at each close and stops otherwise), the attribution in
``tape report`` sums to the book, and the run replays whole and by day."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from cli.main import main
from cli.wiring import make_strategies, replay_builder
from domain.events import DayClosed, OrderFilled, OrderSubmitted, RiskVerdict, SleevesMarked
from domain.riskrules import policy_from_mapping
from kernel.replay import replay
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_yahoo
from projections.base import rebuild_ledger
from sim.attribution import strategy_attribution
from sim.backtest import BacktestConfig, StrategyConfig, run_backtest
from sim.metrics import report_from_journal
from tests.contracts.projection_servers import scratch_database
from tests.factories import US_DAILY_NAMES, utc_ns

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]
NAMES = US_DAILY_NAMES


@pytest.fixture(scope="module")
def us_daily(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    ingest(root / "lake", [SHARED / "us" / name for name in NAMES], parse_yahoo)
    out = root / "us3"
    lake = Lake(root / "lake")
    lake.export(out, "1d", calendar="XNYS", start_ns=utc_ns("2004-01-01"), end_ns=utc_ns("2012-12-31"))
    return out


def _config(dataset: Path, journal: Path) -> BacktestConfig:
    return BacktestConfig(
        run_id="two-strategies",
        dataset=str(dataset),
        journal=str(journal),
        initial_cash="1000000",
        us_regulatory_fees=False,  # the SEC / FINRA fee tables start in 2023
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


@pytest.fixture(scope="module")
def two_strategy_run(us_daily: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestConfig, Path]:
    journal = tmp_path_factory.mktemp("run") / "j"
    config = _config(us_daily, journal)
    run_backtest(config, make_strategies(config))
    return config, journal


def test_each_strategy_trades_its_own_orders_and_the_sleeves_sum_to_the_book(
    two_strategy_run: tuple[BacktestConfig, Path],
) -> None:
    _, path = two_strategy_run
    with open_journal(path) as journal:
        events = [event for _, event in journal.events()]
        attribution = strategy_attribution(journal)
        report = report_from_journal(journal)
    orders = Counter(e.strategy_id for e in events if isinstance(e, OrderSubmitted))
    assert orders["trend"] > 20 and orders["rotation"] > 20, orders
    closes = [e for e in events if isinstance(e, DayClosed)]
    marks = [e for e in events if isinstance(e, SleevesMarked)]
    assert len(marks) == len(closes) > 2000
    for close, mark in zip(closes, marks, strict=True):  # every day, exactly
        assert mark.day == close.day
        assert sum(s.nav_minor for s in mark.sleeves) == close.nav_minor
        assert sum(s.cash_minor for s in mark.sleeves) == close.cash_minor
    assert attribution is not None
    attribution.check()
    trend, rotation = attribution.strategies
    assert (trend.strategy_id, rotation.strategy_id) == ("trend", "rotation")
    assert (trend.capital_minor, rotation.capital_minor) == (60_000_000, 40_000_000)
    assert trend.pnl_minor + rotation.pnl_minor == closes[-1].nav_minor - 100_000_000
    assert trend.pnl_minor != rotation.pnl_minor
    lines = [trend, rotation, attribution.kernel_orders]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert sum(line.fills for line in lines) == len(fills) == report.fills
    assert sum(line.traded_minor for line in lines) == sum(f.notional_minor for f in fills)
    assert sum(line.fees_minor for line in lines) == round(report.fees * 100)
    assert trend.fees_minor > 0 and rotation.fees_minor > 0


def test_the_two_strategy_run_replays_whole_and_by_day(two_strategy_run: tuple[BacktestConfig, Path]) -> None:
    _, path = two_strategy_run
    with open_journal(path) as journal:
        whole = replay(journal, replay_builder)
        assert whole.ok, whole.divergence
        days = [e.day for _, e in journal.events() if isinstance(e, DayClosed)]
        one_day = replay(journal, replay_builder, day=days[len(days) // 2])
        assert one_day.ok, one_day.divergence


def test_tape_report_prints_and_writes_the_attribution(
    two_strategy_run: tuple[BacktestConfig, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = two_strategy_run
    out = tmp_path / "strategies.json"
    assert main(["report", str(path), "--worst", "0", "--days", "0", "--strategies", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "strategies (USD" in printed and "trend" in printed and "rotation" in printed
    rows = json.loads(out.read_text())
    assert [row["strategy"] for row in rows] == ["trend", "rotation", "book"]
    book = rows[-1]
    assert rows[0]["nav_minor"] + rows[1]["nav_minor"] == book["nav_minor"]
    assert rows[0]["pnl_minor"] + rows[1]["pnl_minor"] == book["pnl_minor"]
    assert rows[0]["fees_minor"] + rows[1]["fees_minor"] == book["fees_minor"]
    csv_out = tmp_path / "strategies.csv"
    assert main(["report", str(path), "--worst", "0", "--days", "0", "--strategies", str(csv_out)]) == 0
    assert csv_out.read_text().splitlines()[0].startswith("strategy,currency,capital_minor")


def test_tape_report_writes_everything_it_prints_as_json_and_csv(
    two_strategy_run: tuple[BacktestConfig, Path], tmp_path: Path
) -> None:
    _, path = two_strategy_run
    out = tmp_path / "report.json"
    folder = tmp_path / "csv"
    assert main(["report", str(path), "--json", str(out), "--csv", str(folder)]) == 0
    data = json.loads(out.read_text())
    summary = data["summary"]
    assert summary["finished"] is True and summary["run_id"] == "two-strategies"
    assert set(summary["returns"]) >= {"sharpe", "sortino", "calmar", "max_drawdown", "annual_return"}
    assert summary["trades"]["trades"] > 0
    assert [row["strategy"] for row in data["strategies"]] == ["trend", "rotation", "book"]
    assert set(data["by_strategy"]) == {"trend", "rotation"}
    assert len(data["orders"]) == data["total"]["parents"]
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["execution_by_day.csv", "execution_by_strategy.csv", "orders.csv", "strategies.csv",
                     "summary.csv"]  # fmt: skip
    summary_rows = dict(line.split(",", 1) for line in (folder / "summary.csv").read_text().splitlines()[1:])
    assert float(summary_rows["returns.sharpe"]) == pytest.approx(summary["returns"]["sharpe"])
    by_strategy = (folder / "execution_by_strategy.csv").read_text().splitlines()
    assert by_strategy[0].startswith("strategy,currency,parents") and len(by_strategy) == 3


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_tape_report_fits_the_terminal_without_cutting_a_number(
    two_strategy_run: tuple[BacktestConfig, Path], columns: int
) -> None:
    """At 60 columns the strategies table cut every figure ('1,310,499…', '+118.…') and lost
    its strategy column; it is fitted now (fees and turnover named under it)."""
    _, path = two_strategy_run
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", str(path), "--worst", "5", "--days", "5"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in done.stdout  # rich's mark of a cut cell
    strategies = done.stdout[done.stdout.index("strategies (USD") : done.stdout.index("execution quality")]
    assert [line.split()[0] for line in strategies.splitlines() if line.split()[:1] in
            (["trend"], ["rotation"], ["book"])] == ["trend", "rotation", "book"]  # fmt: skip


def test_a_strategy_with_its_own_policy_is_clipped_within_its_budget(us_daily: Path, tmp_path: Path) -> None:
    """The trend sleeve may hold at most 20% of its budget in a name (its own [risk]); the
    rotation sleeve has no policy of its own. Both stay under the book's policy."""
    base = _config(us_daily, tmp_path / "j")
    trend, rotation = base.strategies
    capped = msgspec.structs.replace(
        trend, risk=policy_from_mapping({"name": {"limit_e8": 20_000_000, "action": "clip"}})
    )
    config = msgspec.structs.replace(base, strategies=[capped, rotation])
    run_backtest(config, make_strategies(config))
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
        assert replay(journal, replay_builder).ok
    own = [e for e in events if isinstance(e, RiskVerdict) and e.rule.startswith("strategy.")]
    assert own and {e.strategy_id for e in own} == {"trend"}
    clipped = [e for e in own if e.rule == "strategy.name" and e.action == "clip"]
    assert clipped and all(v.observed > v.limit == 20_000_000 >= v.observed_after for v in clipped)
    marks = [e for e in events if isinstance(e, SleevesMarked)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert all(sum(s.nav_minor for s in m.sleeves) == c.nav_minor for m, c in zip(marks, closes, strict=True))


def test_the_ledger_projections_hold_each_sleeve_summing_to_the_book(
    two_strategy_run: tuple[BacktestConfig, Path], tmp_path: Path
) -> None:
    """The sleeves table on SQLite and on PostgreSQL: one row per strategy per day, their NAV
    and cash summing to the nav table's, and the same checksums from both databases."""
    _, path = two_strategy_run
    sqlite_path = tmp_path / "ledger.sqlite"
    local = rebuild_ledger(path, sqlite_path)
    with sqlite3.connect(sqlite_path) as db:
        mismatched = db.execute(
            "SELECT COUNT(*) FROM nav JOIN (SELECT day, SUM(nav_minor) AS n, SUM(cash_minor) AS c, "
            "COUNT(*) AS k FROM sleeves GROUP BY day) AS s USING (day) "
            "WHERE s.n != nav.nav_minor OR s.c != nav.cash_minor OR s.k != 2"
        ).fetchone()[0]
        days, rows = db.execute("SELECT COUNT(*), (SELECT COUNT(*) FROM sleeves) FROM nav").fetchone()
    assert mismatched == 0 and rows == 2 * days > 4000
    with scratch_database() as url:
        remote = rebuild_ledger(path, url)
    assert remote.checksums["sleeves"] == local.checksums["sleeves"]
