"""Daily settlement of futures through the kernel on a hand-made CFFEX-style minute data set:
IC settles at the data set's published prices, IF at the VWAP of its last hour (computed here
independently with fractions). Variation margin moves cash at each close, fills move only
commissions and realised P&L, NAV is cash + unsettled P&L, the journal replays (whole run and
each session) and rebuilds in the SQLite (and PostgreSQL) ledger projection."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import DayClosed, FutureSettled, LedgerPosted, OrderFilled, RunFinished
from domain.fixed import Rounding
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from kernel.futures import FuturesConfig
from kernel.liquidation import MarginTier, PerpMargin
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import DatasetError, write_dataset
from projections import rebuild_ledger
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.contracts.projection_servers import postgres_skip_reason, scratch_database
from tests.factories import one_name_policy

IC = Instrument(
    instrument_id=7,
    symbol="IC2403",
    venue="CCFX",
    asset_class="future",
    currency="CNY",
    price_digits=1,
    tick_raw=2,
    qty_digits=0,
    lot_raw=1,
    multiplier=200,
)
IF = Instrument(
    instrument_id=8,
    symbol="IF2403",
    venue="CCFX",
    asset_class="future",
    currency="CNY",
    price_digits=1,
    tick_raw=2,
    qty_digits=0,
    lot_raw=1,
    multiplier=300,
)
DAYS = [20240304, 20240305, 20240306, 20240307]
START = {IC.instrument_id: 53_000, IF.instrument_id: 35_000}


def _session_minutes() -> list[str]:
    """CFFEX index futures: 09:31-11:30 and 13:01-15:00 (bar close times, Asia/Shanghai)."""
    morning = [f"{9 + (30 + m) // 60:02d}:{(30 + m) % 60:02d}" for m in range(1, 121)]
    afternoon = [f"{13 + m // 60:02d}:{m % 60:02d}" for m in range(1, 121)]
    return morning + afternoon


def _ts(day: int, hhmm: str) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T{hhmm}"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))


def _bars() -> dict[str, list[int]]:
    rng = np.random.default_rng(20240304)
    cols: dict[str, list[int]] = {
        k: [] for k in ("ts_ns", "day", "instrument_id", "open", "high", "low", "close", "volume")
    }
    last = dict(START)
    for day in DAYS:
        for hhmm in _session_minutes():
            for iid in (IC.instrument_id, IF.instrument_id):
                px_open = last[iid]
                px_close = px_open + 2 * int(rng.integers(-6, 7))
                cols["ts_ns"].append(_ts(day, hhmm))
                cols["day"].append(day)
                cols["instrument_id"].append(iid)
                cols["open"].append(px_open)
                cols["high"].append(max(px_open, px_close) + 2)
                cols["low"].append(min(px_open, px_close) - 2)
                cols["close"].append(px_close)
                cols["volume"].append(int(rng.integers(1, 400)))
                last[iid] = px_close
    return cols


def _dataset(path: Path, *, settlements: bool = True) -> Path:
    bars = _bars()
    published = None
    if settlements:  # "exchange" prices for IC: a made-up value near the day's close, on the tick
        closes = {
            day: bars["close"][
                max(
                    i
                    for i, (d, iid) in enumerate(zip(bars["day"], bars["instrument_id"], strict=True))
                    if d == day and iid == IC.instrument_id
                )
            ]
            for day in DAYS
        }
        published = pa.table(
            {"day": DAYS, "instrument_id": [IC.instrument_id] * 4, "settle": [closes[d] + 6 for d in DAYS]}
        )
    write_dataset(
        path,
        name="futures",
        frequency="1m",
        calendar="XSHG",
        instruments=[IC, IF],
        bars=pa.table(bars),
        settlements=published,
    )
    return path


class Plan:
    """Target weights (IC, IF) at given (day index, HH:MM) decision times."""

    strategy_id = "plan"
    PLAN: ClassVar[dict[tuple[int, str], tuple[float, float]]] = {
        (0, "10:00"): (0.5, -0.3),
        (1, "14:30"): (0.2, -0.3),  # reduce IC: a closing fill against the last settlement
        (2, "10:00"): (-0.2, -0.3),  # IC long -> short through zero
        (3, "14:00"): (0.0, 0.0),  # flat before the last close
    }

    def __init__(self) -> None:
        self._by_ts = {_ts(DAYS[d], hhmm): w for (d, hhmm), w in self.PLAN.items()}

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(np.isin(panel.ts_ns, list(self._by_ts))).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array(self._by_ts[view.ts_ns])


def _config(
    tmp_path: Path, futures: FuturesConfig | None, *, settlements: bool = True, name: str = "j"
) -> BacktestConfig:
    return BacktestConfig(
        run_id="futures",
        dataset=str(_dataset(tmp_path / f"data-{name}", settlements=settlements)),
        journal=str(tmp_path / name),
        currency="CNY",
        initial_cash="10000000",
        strategy=StrategyConfig(name="plan"),
        fill=FillModel(commission_e8=2_300),
        risk=one_name_policy(),
        futures=futures,
    )


def _vwap_last_hour(bars: dict[str, list[int]], day: int, iid: int) -> int:
    rows = [
        i
        for i, (d, instrument) in enumerate(zip(bars["day"], bars["instrument_id"], strict=True))
        if d == day and instrument == iid and bars["ts_ns"][i] > _ts(day, "14:00")
    ]
    assert len(rows) == 60
    vwap = Fraction(
        sum(bars["close"][i] * bars["volume"][i] for i in rows), sum(bars["volume"][i] for i in rows)
    )
    return round(vwap / 2) * 2  # Python's round is half-even


CONFIG = FuturesConfig(by_symbol={"IF2403": "vwap_last_minutes"})


def test_futures_settle_daily_and_replay(tmp_path: Path) -> None:
    config = _config(tmp_path, CONFIG)
    result = run_backtest(config, Plan())
    journal = open_journal(config.journal)
    events = [e for _, e in journal.events()]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    settled = [e for e in events if isinstance(e, FutureSettled)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert len(closes) == 4 and len(fills) >= 6
    bars = _bars()
    published = {
        day: e.settle_px_raw for e in settled if e.instrument_id == IC.instrument_id for day in [e.day]
    }
    for event in settled:
        if event.instrument_id == IF.instrument_id:
            assert event.method == "vwap_last_minutes=60"
            assert event.settle_px_raw == _vwap_last_hour(bars, event.day, IF.instrument_id)
        else:
            assert event.method == "dataset"
        inst = IC if event.instrument_id == IC.instrument_id else IF
        assert event.settled_value_minor == notional_minor(
            inst, event.qty_raw, event.settle_px_raw, Rounding.HALF_EVEN
        )
        assert event.variation_minor == event.settled_value_minor - event.reference_value_minor
    # IC is held over days 0-2, IF over days 0-2; on day 3 both are closed before the close.
    assert sorted({(e.day, e.instrument_id) for e in settled}) == [
        (d, iid) for d in DAYS[:3] for iid in (IC.instrument_id, IF.instrument_id)
    ]
    assert set(published) == set(DAYS[:3])
    balances = _checked_balances(events)
    assert not any(a.startswith("assets:inventory") for a in balances)  # no notional booked
    assert balances["income:variation_margin:CNY"] == -sum(e.variation_minor for e in settled)
    # A round trip: the book is flat, cash moved by exactly the fills' notionals and commissions.
    flows = sum(-f.side * f.notional_minor for f in fills)
    commissions = sum(f.commission_minor for f in fills)
    assert commissions > 0
    assert balances["assets:cash:CNY"] == 10_000_000_00 + flows - commissions
    pnl = -balances["income:variation_margin:CNY"] - balances.get("income:realized:CNY", 0)
    assert pnl == flows
    finished = events[-1]
    assert (
        isinstance(finished, RunFinished)
        and finished.nav_minor == result.nav_minor == balances["assets:cash:CNY"]
    )
    # Each close's NAV = cash + unsettled P&L (close - settlement) of the positions held.
    for close in closes:
        assert close.nav_minor - close.cash_minor == _unsettled(events, close)

    # Replay reproduces every derived event, the whole run and each session alone.
    def build(r, ref):  # type: ignore[no-untyped-def]
        return build_setup(config, Plan(), expected_hash=ref.content_hash)

    assert replay(journal, build).ok
    for day in DAYS:
        outcome = replay(journal, build, day=day)
        assert outcome.ok, (day, outcome.divergence)
    # The projection folds the same balances and NAVs.
    rebuilt = rebuild_ledger(Path(config.journal), tmp_path / "ledger.sqlite")
    assert rebuilt.records_applied == len(journal)
    import sqlite3

    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        rows = dict(db.execute("SELECT account, SUM(amount_minor) FROM postings GROUP BY account").fetchall())
        navs = db.execute("SELECT day, nav_minor, cash_minor FROM nav ORDER BY day").fetchall()
        positions = db.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
    assert rows == balances
    assert navs == [(c.day, c.nav_minor, c.cash_minor) for c in closes]
    assert positions == 0
    if postgres_skip_reason() is None:
        with scratch_database() as url:
            postgres = rebuild_ledger(Path(config.journal), url)
        assert postgres.checksums == rebuilt.checksums


def _checked_balances(events: list) -> dict[str, int]:  # type: ignore[type-arg]
    """Account balances; every transaction balances and each settlement's variation is posted
    right after it, cash against ``income:variation_margin``."""
    balances: dict[str, int] = {}
    for index, event in enumerate(events):
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0
            for p in event.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
        if isinstance(event, FutureSettled) and event.variation_minor:
            posted = events[index + 1]
            assert isinstance(posted, LedgerPosted)
            assert {(p.account, p.amount_minor) for p in posted.postings} == {
                ("assets:cash:CNY", event.variation_minor),
                ("income:variation_margin:CNY", -event.variation_minor),
            }
    return balances


def _unsettled(events: list, close: DayClosed) -> int:  # type: ignore[type-arg]
    """Sum over positions held at ``close`` of value at the last close - last settlement value,
    rebuilt from the journal's fills and settlement events with the bars' closes."""
    bars = _bars()
    refs: dict[int, tuple[int, int]] = {}  # iid -> (qty, reference value)
    instruments = {IC.instrument_id: IC, IF.instrument_id: IF}
    for event in events:
        if event.ts_ns > close.ts_ns:
            break
        if isinstance(event, OrderFilled):
            qty, ref = refs.get(event.instrument_id, (0, 0))
            signed = event.side * event.fill_qty_raw
            if qty and (qty > 0) != (signed > 0):
                closing = min(abs(qty), event.fill_qty_raw)
                released = ref if closing == abs(qty) else round(Fraction(ref * closing, abs(qty)))
                ref -= released
                qty += event.side * closing
                opening = event.fill_qty_raw - closing
                notional = event.notional_minor - round(
                    Fraction(event.notional_minor * closing, event.fill_qty_raw)
                )
            else:
                opening, notional = event.fill_qty_raw, event.notional_minor
            if opening:
                ref += event.side * notional
                qty += event.side * opening
            refs[event.instrument_id] = (qty, ref if qty else 0)
        elif isinstance(event, FutureSettled):
            refs[event.instrument_id] = (event.qty_raw, event.settled_value_minor)
    total = 0
    for iid, (qty, ref) in refs.items():
        if qty:
            last = max(
                i
                for i, (ts, inst) in enumerate(zip(bars["ts_ns"], bars["instrument_id"], strict=True))
                if ts <= close.ts_ns and inst == iid
            )
            total += notional_minor(instruments[iid], qty, bars["close"][last], Rounding.HALF_EVEN) - ref
    return total


def test_missing_settlement_prices_are_refused_before_the_journal(tmp_path: Path) -> None:
    config = _config(tmp_path, None, settlements=False)
    with pytest.raises(KernelError, match=r"IC2403: no settlement price in the data set .* first 20240304"):
        run_backtest(config, Plan())
    assert not Path(config.journal).exists()  # refused before the journal is opened


def test_close_and_vwap_day_methods(tmp_path: Path) -> None:
    config = _config(
        tmp_path, FuturesConfig(settlement="close", by_symbol={"IF2403": "vwap_day"}), settlements=False
    )
    run_backtest(config, Plan())
    bars = _bars()
    settled = [e for _, e in open_journal(config.journal).events() if isinstance(e, FutureSettled)]
    for event in settled:
        rows = [
            i
            for i, (d, iid) in enumerate(zip(bars["day"], bars["instrument_id"], strict=True))
            if d == event.day and iid == event.instrument_id
        ]
        if event.instrument_id == IC.instrument_id:
            assert (event.method, event.settle_px_raw) == ("close", bars["close"][rows[-1]])
        else:
            vwap = Fraction(
                sum(bars["close"][i] * bars["volume"][i] for i in rows), sum(bars["volume"][i] for i in rows)
            )
            assert (event.method, event.settle_px_raw) == ("vwap_day", round(vwap / 2) * 2)
    assert len(settled) == 6


def test_bad_futures_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"futures\.by_symbol\.IF2403: method must be one of"):
        FuturesConfig(by_symbol={"IF2403": "vwap"})
    with pytest.raises(ValueError, match=r"futures\.last_minutes"):
        FuturesConfig(last_minutes=0)
    config = _config(
        tmp_path, FuturesConfig(settlement="close", by_symbol={"ES": "close"}), settlements=False
    )
    with pytest.raises(KernelError, match=r"futures\.by_symbol: \['ES'\]"):
        build_setup(config, Plan())
    margined = msgspec.structs.replace(
        _config(tmp_path, CONFIG, name="m"), perp_margin=PerpMargin(tiers=[MarginTier(mmr_e8=500_000)])
    )
    with pytest.raises(KernelError, match=r"perp_margin .* not modelled with daily-settled futures"):
        run_backtest(margined, Plan())
    assert not Path(margined.journal).exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"day": [20240304], "instrument_id": [7], "settle": [53_001]},
            "not a positive multiple of tick_raw 2",
        ),
        (
            {"day": [20240304], "instrument_id": [9], "settle": [53_000]},
            "instrument_id 9 is not in the instrument master",
        ),
        (
            {"day": [20240304] * 2, "instrument_id": [7] * 2, "settle": [53_000] * 2},
            "two rows for IC2403 on 20240304",
        ),
        ({"day": [20240304], "instrument_id": [7]}, r"missing columns \['settle'\]"),
    ],
)
def test_bad_settlement_rows_are_refused(tmp_path: Path, rows: dict[str, list[int]], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        write_dataset(
            tmp_path / "bad",
            name="bad",
            frequency="1m",
            calendar="XSHG",
            instruments=[IC, IF],
            bars=pa.table(_bars()),
            settlements=pa.table(rows),
        )
