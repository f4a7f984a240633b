"""The execution router on real minute bars (../shared/data; skipped with a reason when absent):
SPDB 600000 (hikyuu 1m, 43 sessions, XSHG) and Binance XRP/ETH (freqtrade 1m, 24x7), both loaded
through the lake's ingest and export. TWAP children are equal whole lots per slice, VWAP slices
follow the volume profile of the previous sessions (recomputed here from the raw CSV) within one
lot, POV children never exceed participation x the volume observed since the parent started."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_freqtrade, parse_hikyuu_minute
from lake.store import load_panel
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from tests.factories import Scripted
from tests.router_checks import ParentView, check_parents, parent_views

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SPDB_CSV = SHARED / "cn" / "hikyuu" / "time1min_600000.SH.csv"
XRP_FEATHER = SHARED / "crypto" / "freqtrade" / "XRP_ETH-1m.feather"
XRP_CSV = SHARED / "crypto" / "freqtrade" / "csv" / "XRP_ETH-1m.csv"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(
        not (SPDB_CSV.exists() and XRP_FEATHER.exists() and XRP_CSV.exists()),
        reason=f"shared real minute data not found under {SHARED}",
    ),
]

PARTICIPATION_E8 = 10_000_000  # 10%


def _export(tmp: Path, source: Path, parser: object, calendar: str) -> Path:
    ingest(tmp / "lake", [source], parser)  # type: ignore[arg-type]
    Lake(tmp / "lake").export(tmp / "set", "1m", calendar=calendar)
    return tmp / "set"


@pytest.fixture(scope="module")
def spdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("spdb"), SPDB_CSV, parse_hikyuu_minute, "XSHG")


@pytest.fixture(scope="module")
def xrp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("xrp"), XRP_FEATHER, parse_freqtrade, "24x7")


def _session_rows(rows: list[tuple[str, int]]) -> tuple[list[int], list[int]]:
    """(session index, bar-of-session) of each row from its session key, as read from the CSV."""
    session, position, keys = [], [], []
    for key, _ in rows:
        if not keys or keys[-1] != key:
            keys.append(key)
            count = 0
        session.append(len(keys) - 1)
        position.append(count)
        count += 1
    return session, position


def _spdb_rows() -> list[tuple[str, int]]:
    with SPDB_CSV.open() as handle:
        return [(row["datetime"][:10], int(row["vol"])) for row in csv.DictReader(handle)]


def _xrp_rows() -> list[tuple[str, int]]:
    with XRP_CSV.open() as handle:  # UTC days are the 24x7 sessions; volume at 8 digits
        return [(row["date"][:10], round(float(row["volume"]) * 10**8)) for row in csv.DictReader(handle)]


def _run(
    tmp: Path, dataset: Path, targets: dict[int, float], currency: str, cash: str, execution: ExecutionConfig
) -> dict[str, ParentView]:
    config = BacktestConfig(
        run_id="router-real",
        dataset=str(dataset),
        journal=str(tmp / "j"),
        currency=currency,
        initial_cash=cash,
        strategy=StrategyConfig(name="scripted"),
        execution=execution,
    )
    run_backtest(config, Scripted(targets))
    journal = open_journal(tmp / "j")
    assert journal.verify().ok
    outcome = replay(
        journal, lambda r, ref: build_setup(config, Scripted(targets), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    panel, _ = load_panel(dataset)
    steps = {ts: step for step, ts in enumerate(panel.ts_ns.tolist())}
    views = parent_views((e for _, e in journal.events()), steps)
    check_parents(views)
    assert len(views) >= 4
    return views


def _spdb_targets() -> dict[int, float]:
    _, position = _session_rows(_spdb_rows())
    starts = [i for i, p in enumerate(position) if p == 0]
    targets: dict[int, float] = {}
    for s in range(6, len(starts) - 1, 6):  # from the 7th session: five sessions of history for VWAP
        targets[starts[s] + 20] = 0.5
        targets[starts[s + 1] + 20] = 0.0  # A-share T+1: sell in the next session
    return targets


def _xrp_targets() -> dict[int, float]:
    return {200: 0.5, 600: 0.0, 1500: 0.4, 1800: 0.0, 2000: 0.6, 2400: 0.0}


CASES = {
    "spdb": (_spdb_rows, _spdb_targets, "CNY", "1000000", 100),
    "xrp": (_xrp_rows, _xrp_targets, "ETH", "100", 1),
}


@pytest.mark.parametrize("name", ["spdb", "xrp"])
def test_twap_children_are_equal_lots_per_slice(name: str, spdb: Path, xrp: Path, tmp_path: Path) -> None:
    _, targets, currency, cash, lot = CASES[name]
    execution = ExecutionConfig(algo="twap", slices=5, window_steps=50)
    views = _run(tmp_path, spdb if name == "spdb" else xrp, targets(), currency, cash, execution)
    for view in views.values():
        lots = [q // lot for _, q in view.created.slices]
        assert (
            max(lots) - min(lots) <= 1
            and sum(lots) * lot == view.created.qty_raw - view.created.qty_raw % lot
        )
        start, end = view.created.step, view.created.end_step
        assert [s for s, _ in view.created.slices] == [start + (end - start) * k // 5 for k in range(5)][
            : len(lots)
        ]
        sent = list(zip(view.child_steps, [c.qty_raw for c in view.children], strict=True))
        assert sent == [tuple(s) for s in view.created.slices][: len(sent)]
        assert view.done is not None and view.done.reason in ("filled", "cancelled")


@pytest.mark.parametrize("name", ["spdb", "xrp"])
def test_vwap_slices_follow_the_previous_sessions_profile(
    name: str, spdb: Path, xrp: Path, tmp_path: Path
) -> None:
    read_rows, targets, currency, cash, lot = CASES[name]
    lookback, slices = 5, 4
    execution = ExecutionConfig(algo="vwap", slices=slices, window_steps=60, vwap_lookback_sessions=lookback)
    views = _run(tmp_path, spdb if name == "spdb" else xrp, targets(), currency, cash, execution)
    rows = read_rows()
    session, position = _session_rows(rows)
    by_session: dict[int, dict[int, int]] = defaultdict(dict)
    for index, (_, vol) in enumerate(rows):
        by_session[session[index]][position[index]] = vol
    shaped = 0
    for view in views.values():
        start, end = view.created.step, view.created.end_step
        previous = range(max(0, session[start] - lookback), session[start])
        bins = [start + (end - start) * k // slices for k in range(slices)]
        edges = [*bins[1:], end + 1]
        weights = [
            sum(by_session[s].get(position[step], 0) for s in previous for step in range(first, stop))
            for first, stop in zip(bins, edges, strict=True)
        ]
        total_lots = view.created.qty_raw // lot
        planned = dict(view.created.slices)
        for first, weight in zip(bins, weights, strict=True):
            expected = total_lots * weight / sum(weights) if sum(weights) else total_lots / slices
            assert abs(planned.get(first, 0) // lot - expected) < 1, (view.created, weights)
        shaped += len(set(weights)) > 1
        sent = list(zip(view.child_steps, [c.qty_raw for c in view.children], strict=True))
        assert sent == [tuple(s) for s in view.created.slices][: len(sent)]
    assert shaped >= 2  # the profile is not flat: the slices really differ


@pytest.mark.parametrize("name", ["spdb", "xrp"])
def test_pov_children_stay_within_participation(name: str, spdb: Path, xrp: Path, tmp_path: Path) -> None:
    dataset = spdb if name == "spdb" else xrp
    _, targets, currency, cash, lot = CASES[name]
    execution = ExecutionConfig(algo="pov", window_steps=100, participation_e8=PARTICIPATION_E8)
    views = _run(tmp_path, dataset, targets(), currency, cash, execution)
    panel, _ = load_panel(dataset)
    volume = np.where(panel.valid[:, 0], panel.volume[:, 0], 0)
    children = 0
    for view in views.values():
        assert view.created.slices == []
        sent = 0
        for step, child in zip(view.child_steps, view.children, strict=True):
            sent += child.qty_raw
            observed = int(volume[view.created.step + 1 : step + 1].sum())
            assert sent <= observed * PARTICIPATION_E8 // 100_000_000
            assert step > view.created.step and step <= view.created.end_step
            assert child.qty_raw % lot == 0
            children += 1
        if view.done is not None and view.done.reason == "exhausted":
            # the window ended: the last child took what the volume allowed, within one lot
            observed = int(volume[view.created.step + 1 : view.created.end_step + 1].sum())
            assert observed * PARTICIPATION_E8 // 100_000_000 - sent < lot
    assert children > 2 * len(views)
