"""Plain factory functions shared by tests (no fixture towers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cli.wiring import make_strategies
from domain.events import Event
from domain.fx import FxRate
from domain.instruments import Instrument
from domain.market import Panel
from domain.riskrules import RiskPolicy, policy_from_mapping
from kernel.journal import build_segment, segment_hash
from kernel.store import open_journal
from kernel.strategy import MarketView, Strategy
from lake.store import fx_table, write_dataset
from lake.synth import synth_dataset
from sim.backtest import BacktestConfig, BacktestResult, FxConfig, StrategyConfig, run_backtest

if TYPE_CHECKING:
    import pytest


def make_dataset(
    path: Path, *, seed: int = 3, symbols: int = 4, bars: int = 300, frequency: str = "1d"
) -> Path:
    """A small seeded data set on the 24x7 calendar (no exchange_calendars start-up cost)."""
    synth_dataset(
        path,
        seed=seed,
        symbols=symbols,
        bars=bars,
        frequency=frequency,
        calendar="24x7",
        start="2020-01-01",
        listing_stagger=symbols > 2,
    )
    return path


def make_config(
    dataset: Path,
    journal: Path,
    *,
    strategy: str = "sma_crossover",
    params: dict[str, object] | None = None,
    backend: str | None = None,
    **fields: object,
) -> BacktestConfig:
    defaults: dict[str, dict[str, object]] = {
        "sma_crossover": {"fast": 5, "slow": 20, "weight": 0.95},
        "momentum": {"lookback": 60, "skip": 5, "top": 2, "weight": 0.95},
    }
    return BacktestConfig(
        run_id=f"test-{strategy}",
        dataset=str(dataset),
        journal=str(journal),
        journal_backend=backend,
        strategy=StrategyConfig(name=strategy, params=params if params is not None else defaults[strategy]),
        **fields,  # type: ignore[arg-type]
    )


def run(config: BacktestConfig) -> BacktestResult:
    return run_backtest(config, make_strategies(config))


def two_sleeve_run(root: Path, run_id: str) -> Path:
    """A finished backtest of a book of two SMA sleeves (``fast`` 70%, ``slow`` 30%) on a small
    seeded data set under ``root``; returns its journal."""
    data = make_dataset(root / "data", seed=4, symbols=3, bars=200)
    config = BacktestConfig(
        run_id=run_id,
        dataset=str(data),
        journal=str(root / "j"),
        initial_cash="100000",
        strategies=[
            StrategyConfig(
                name="sma_crossover", params={"fast": 3, "slow": 9, "weight": 0.9, "strategy_id": "fast"},
                budget="0.7",
            ),
            StrategyConfig(
                name="sma_crossover", params={"fast": 5, "slow": 20, "weight": 0.9, "strategy_id": "slow"},
                budget="0.3",
            ),
        ],
    )  # fmt: skip
    run(config)
    return root / "j"


def one_name_policy() -> RiskPolicy:
    """The default policy but 100% NAV per name (single-name test strategies)."""
    return policy_from_mapping({"name": {"limit_e8": 100_000_000, "action": "clip"}})


class Scripted:
    """One-name target weights on given steps (a test strategy)."""

    strategy_id = "scripted"

    def __init__(self, targets: dict[int, float]) -> None:
        self._targets = targets

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array(sorted(s for s in self._targets if s < panel.steps), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self._targets[view.step]])


class ListSink:
    """An in-memory event sink (the kernel's ``EventSink``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1


SPDB = Instrument(
    instrument_id=1,
    symbol="600000",
    venue="XSHG",
    asset_class="equity",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=100,
    board="main",
    listing_day=19991110,
)
"""Shanghai Pudong Development Bank (600000.SH), main board, as the A-share tests use it."""


def forge_journal(journal_path: Path, out_path: Path, seq_to_change: int, change: dict[str, object]) -> None:
    """Copy a journal, changing one event, re-chaining every segment (a forged, valid chain:
    only a replay can tell)."""
    source = open_journal(journal_path)
    target = open_journal(out_path, writable=True)
    previous = bytes(32)
    for segment in source.segments():
        events = []
        for record in segment.records:
            event = record.event()
            if record.seq == seq_to_change:
                event = msgspec.structs.replace(event, **change)
            events.append(event)
        body = build_segment(segment.first_seq, events)
        digest = segment_hash(previous, body)
        last = segment.first_seq + len(events) - 1
        target._backend.write_segment(segment.first_seq, digest + body, (last, digest))
        previous = digest
    source.close()
    target.close()


def killed_copy(source: Path, target: Path, records: int) -> int:
    """What a SIGKILL leaves: the run's first ``records`` records, committed (in commits of
    100 records, so that the copy ends at a commit as a killed run does)."""
    with (
        open_journal(source) as journal,
        open_journal(target, writable=True, records_per_commit_max=100) as copy,
    ):
        for record in journal.records():
            if record.seq >= records:
                break
            copy.append(record.event())
        copy.commit()
        return len(copy)


def count_events(path: Path, kind: type[Event]) -> int:
    """How many events of ``kind`` a journal another process is writing holds now (0 while it
    is not there yet or not readable yet)."""
    from kernel.journal import JournalError
    from kernel.store import open_journal

    try:
        with open_journal(path) as journal:
            return sum(1 for _, event in journal.events() if isinstance(event, kind))
    except (JournalError, OSError):
        return 0


def market_and_history(root: Path, *, seed: int, bars: int, history: int) -> tuple[Path, Path]:
    """A seeded two-name daily market on the 24x7 calendar (``root/market``: what a local
    exchange plays) and its first ``history`` days as their own data set (``root/history``: what
    a paper or live session warms up on)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lake.store import load_panel, write_dataset

    full = root / "market"
    synth_dataset(full, seed=seed, symbols=2, bars=bars, frequency="1d", calendar="24x7", start="2021-01-01")
    panel, _ = load_panel(full)
    table = pq.read_table(full / "bars.parquet")
    first = table.filter(pc.less_equal(table["ts_ns"], int(panel.ts_ns[history - 1])))
    write_dataset(
        root / "history", name="history", frequency="1d", calendar="24x7",
        instruments=list(panel.instruments), bars=first,
    )  # fmt: skip
    return full, root / "history"


def paper_config(
    path: Path, dataset: Path, journal: Path, start_ns: int, end_ns: int, grace_s: int = 60
) -> Path:
    """A ``tape paper`` TOML for the local exchange (SMA(3/8) at half the book, the venue's
    clock), its live steps from ``start_ns`` to ``end_ns`` (bar closes, UTC ns)."""
    from datetime import UTC, datetime

    def iso(ts_ns: int) -> str:
        return datetime.fromtimestamp(ts_ns // 10**9, UTC).isoformat().replace("+00:00", "Z")

    path.write_text(
        f"""run_id = "paper-local"
dataset = "{dataset}"
journal = "{journal}"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 8, weight = 0.5 }}

[paper]
exchange = "binance"
start = "{iso(start_ns)}"
end = "{iso(end_ns)}"
grace_s = {grace_s}
clock = "venue"
"""
    )
    return path


US_DAILY_NAMES = ("orcl-1995-2014.txt", "nvda-1999-2014.txt", "yhoo-1996-2014.txt")
"""Three US daily files of ../shared/data/us (Yahoo format) the real-data tests use."""


def utc_ns(day: str) -> int:
    """An ISO date (or date and time) read as UTC, in nanoseconds."""
    from datetime import UTC, datetime

    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def synth_lake(
    root: Path,
    *,
    seed: int = 7,
    symbols: int = 8,
    bars: int = 900,
    start: str = "2015-01-02",
    calendar: str = "XNYS",
    frequency: str = "1d",
) -> Path:
    """A lake at ``root`` holding a seeded data set of ``frequency`` (1d or 1m) bars
    (``calendar``'s sessions, every name every bar): ``synth_dataset``'s bars committed through
    ``Lake.commit``, as an ingest would."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lake.partitioned import Lake
    from lake.schema import Kind
    from lake.synth import synth_instruments

    staging = root.parent / f".{root.name}-synth"
    synth_dataset(
        staging, seed=seed, symbols=symbols, bars=bars, frequency=frequency, calendar=calendar, start=start
    )
    table = pq.read_table(staging / "bars.parquet")
    table = table.append_column("turnover", pa.nulls(table.num_rows, pa.int64()))
    Lake(root).commit([(Kind.BARS, frequency, table)], instruments=synth_instruments(symbols))
    return root


def market_lake(
    root: Path,
    markets: list[tuple[str, str, str]],
    *,
    seed: int = 7,
    bars: int | list[int] = 30,
    start: str = "2015-01-02",
    frequency: str = "1d",
) -> Path:
    """A lake at ``root`` with one seeded instrument per ``(venue, asset_class, calendar)`` of
    ``markets`` (ids 1, 2, ..., symbols SYN0001, ...), each with ``bars`` bars (or its own
    count of the list: a series that stops early) from ``start`` on that
    calendar's sessions, committed through ``Lake.commit`` without an ingest report: so its
    calendar, as a mixed export or ``tape health`` sees it, is its venue's. A calendar other
    than the venue's makes a lake whose bars do not fit their instrument's calendar."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lake.partitioned import Lake
    from lake.schema import Kind
    from lake.synth import synth_instruments

    tables, instruments = [], []
    for index, (venue, asset_class, calendar) in enumerate(markets):
        staging = root.parent / f".{root.name}-market-{index}"
        options = {"frequency": frequency, "calendar": calendar, "start": start}
        count = bars if isinstance(bars, int) else bars[index]
        synth_dataset(staging, seed=seed + index, symbols=1, bars=count, **options)
        table = pq.read_table(staging / "bars.parquet")
        ids = pa.array([index + 1] * table.num_rows, pa.int32())
        table = table.set_column(table.schema.get_field_index("instrument_id"), "instrument_id", ids)
        tables.append(table.append_column("turnover", pa.nulls(table.num_rows, pa.int64())))
        template = synth_instruments(1, asset_class=asset_class, venue=venue)[0]
        symbol = f"SYN{index + 1:04d}"
        instruments.append(msgspec.structs.replace(template, instrument_id=index + 1, symbol=symbol))
    merged = pa.concat_tables(tables)
    merged = merged.take(pc.sort_indices(merged, [("ts_ns", "ascending"), ("instrument_id", "ascending")]))
    Lake(root).commit([(Kind.BARS, frequency, merged)], instruments=instruments)
    return root


# Seven hikyuu A-shares (../shared/data/cn/hikyuu) the model tests train and trade on.
HIKYUU_SEVEN = (
    "h5_600000.SH_day_raw.csv",
    "h5_600004.SH_day_raw.csv",
    "h5_600005.SH_day_raw.csv",
    "h5_000001.SZ_day_raw.csv",
    "h5_000002.SZ_day_raw.csv",
    "h5_000004.SZ_day_raw.csv",
    "h5_000005.SZ_day_raw.csv",
)


def cn_model_config(root: Path, name: str, entry: str, params: str, *, fees_from: int) -> Path:
    """A CNY run of the data set ``root/cn7`` by the strategy ``entry`` (a plug-in), journal
    ``root/name``: the run's own A-share fee rows from ``fees_from`` (the built-in table starts in
    2015; MARKET_RULES.md: stamp duty 0.1% on sells, handling illustrative; on or before the data
    set's first session, which a run is checked from), and one name may hold up to 60% (the
    default policy clips at 10%)."""
    config = root / f"{name}.toml"
    config.write_text(
        f'run_id = "{name}"\nseed = 7\ndataset = "{root / "cn7"}"\njournal = "{root / name}"\n'
        'currency = "CNY"\ninitial_cash = "1000000"\n\n'
        f'[strategy]\nentry = "{entry}"\nparams = {{ {params} }}\n\n'
        f"""[cn_fees]
source = "test rates: stamp duty 0.1% on sells; handling illustrative"

[[cn_fees.rows]]
effective_from = {fees_from}
stamp_duty_buy_e8 = 0
stamp_duty_sell_e8 = 100_000
transfer_e8 = 0
handling_e8 = 8_700
regulatory_e8 = 0

[risk.name]
limit_e8 = 60_000_000
action = "clip"
"""
    )
    return config


# The XRP/USDT perpetual of ../shared/data/crypto/freqtrade/futures (the perpetual tests).
XRP_PERP = Instrument(
    instrument_id=1,
    symbol="XRP/USDT:USDT",
    venue="BINANCE",
    asset_class="crypto_perp",
    currency="USDT",
    price_digits=4,
    tick_raw=1,
    qty_digits=1,
    lot_raw=1,
)


def make_perp_dataset(path: Path, *, seed: int = 7, bars: int = 240) -> Path:
    """A seeded hourly random walk of ``XRP_PERP`` (around 1 USDT) on the 24x7 calendar, for
    kernel tests of perpetuals (constructed data)."""
    import numpy as np
    import pyarrow as pa

    from lake.store import write_dataset

    rng = np.random.default_rng(seed)
    hour = 3_600 * 10**9
    ts = utc_ns("2021-01-01") + hour * np.arange(1, bars + 1, dtype=np.int64)  # bar closes
    close = np.maximum(10_000 + np.cumsum(rng.integers(-120, 121, bars)), 1_000).astype(np.int64)
    open_ = np.concatenate([[close[0]], close[:-1]]).astype(np.int64)
    spread = rng.integers(0, 60, bars)
    days = ((ts - 1) // (86_400 * 10**9)).astype("datetime64[D]").astype(str)
    table = pa.table(
        {
            "ts_ns": ts,
            "day": np.char.replace(days, "-", "").astype(np.int32),
            "instrument_id": np.ones(bars, np.int32),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(1_000, 100_000, bars).astype(np.int64),
        }
    )
    write_dataset(path, name="perp", frequency="1h", calendar="24x7", instruments=[XRP_PERP], bars=table)
    return path


def stop_research_runs_after(monkeypatch: pytest.MonkeyPatch, runs: int) -> None:
    """Make the next research job (sweep, walk-forward, Monte Carlo ``--perturb``, one worker)
    stop as a Ctrl-C would once ``runs`` runs have ended: the run after them raises
    ``KeyboardInterrupt`` in the job's process."""
    from cli import sweep_cmd  # the research jobs' runner (imported here: most factories need none of it)

    run_point = sweep_cmd.run_point
    started = []

    def stopping(task: tuple[str, bool]) -> dict[str, object]:
        started.append(task)
        if len(started) > runs:
            raise KeyboardInterrupt
        return run_point(task)

    monkeypatch.setattr(sweep_cmd, "run_point", stopping)


def record_experiments(
    db: Path, sweep_id: str, rows: list[tuple[dict[str, object], dict[str, object]]]
) -> Path:
    """An experiments table holding one row per (parameters, metrics) of ``rows``, as a job
    records them (run ids ``SWEEP_ID-NNNN``); the configuration and hashes are placeholders:
    enough to list, rank and draw the runs, not to re-run them."""
    from sim.experiments import Experiment, ExperimentStore

    with ExperimentStore(db, create=True) as store:
        for point, (params, metrics) in enumerate(rows):
            run_id = f"{sweep_id}-{point:04d}"
            store.add(Experiment(run_id, sweep_id, point, params, "{}", 0, "0" * 64, "engine", "code",
                                 "0" * 64, 1, metrics, ""))  # fmt: skip
    return db


class _BothNames:
    """40% of the book in each of two names, decided once."""

    strategy_id = "both"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.4, 0.4])


USD_NAME = Instrument(instrument_id=1, symbol="AAA", venue="XNAS", asset_class="equity", currency="USD",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
CNY_NAME = Instrument(instrument_id=2, symbol="BBB", venue="TEST", asset_class="equity", currency="CNY",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip


def two_currency_run(
    root: Path,
    strategy: Strategy | None = None,
    *,
    closes: dict[int, list[int]] | None = None,
    rate_days: Sequence[int] | None = None,
    stale_days_max: int = 5,
) -> Path:
    """A CONSTRUCTED book in USD with 5,000,000 CNY of cash beside its 1,000,000 USD, a USD name
    (AAA) and a CNY name (BBB): prices and the CNY rate move every day (so converting, or not,
    shows in every figure); it buys 40% of the book in each on the first day and ends holding
    both (the default commission: fees in both currencies), or trades as ``strategy`` decides
    (its ``strategy_id`` named "both"). ``closes``: the five daily prices (cents) of AAA (1)
    and BBB (2) in place of the moving ones. ``rate_days``: the days the data set has a CNY rate
    (default every day), looked up within ``stale_days_max``. The journal."""
    days = [20240102, 20240103, 20240104, 20240105, 20240106]
    closes_of = closes or {1: [1000, 1010, 1030, 1020, 1050], 2: [1000, 990, 1015, 1040, 1005]}
    bars = [
        {"ts_ns": (index + 1) * 86_400 * 10**9 + 1_704_153_600 * 10**9, "day": day, "instrument_id": iid,
         "open": closes_of[iid][index], "high": closes_of[iid][index], "low": closes_of[iid][index],
         "close": closes_of[iid][index], "volume": 10**7}
        for index, day in enumerate(days) for iid in (1, 2)
    ]  # fmt: skip
    rates = [
        FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000 + 300_000 * k)
        for k, day in enumerate(days)
        if rate_days is None or day in rate_days
    ]
    write_dataset(root / "data", name="constructed-fx", frequency="1d", calendar="24x7",
                  instruments=[USD_NAME, CNY_NAME], bars=pa.Table.from_pylist(bars),
                  fx=fx_table(rates))  # fmt: skip
    config = BacktestConfig(
        run_id="fx", dataset=str(root / "data"), journal=str(root / "journal"),
        strategy=StrategyConfig(name="both"), us_regulatory_fees=False,
        fx=FxConfig(initial_cash={"CNY": "5000000"}, stale_days_max=stale_days_max),
        risk=policy_from_mapping({}),
    )  # fmt: skip
    return run_backtest(config, strategy or _BothNames()).journal


class HoldLong:
    """A strategy that buys ``weight`` of the book in the data set's one name at the first step
    and holds it (funding, liquidation and margin tests)."""

    strategy_id = "hold"

    def __init__(self, weight: float = 0.5) -> None:
        self.weight = weight

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self.weight])


def weekday_bars(
    start: str, end: str, *, closed: tuple[str, ...] = (), names: int = 2, listing_day: int = 20100104
) -> tuple[pa.Table, list[Instrument]]:
    """Seeded daily bars of ``names`` main-board SSE A-shares on every weekday from ``start`` to
    ``end`` (ISO dates) except ``closed``, stamped at 15:00 Shanghai (07:00 UTC): an XSHG-like
    set for years ``exchange_calendars`` does not record (``synth_dataset`` asks it for the
    sessions). The last name lists on ``listing_day`` (its first sessions count on the calendar)."""
    from datetime import UTC, date, datetime, timedelta

    rng = np.random.default_rng(11)
    day, last, skipped = date.fromisoformat(start), date.fromisoformat(end), set(closed)
    columns: dict[str, list[int]] = {name: [] for name in ("ts_ns", "day", "instrument_id")}
    while day <= last:
        if day.weekday() < 5 and day.isoformat() not in skipped:
            ts = int(datetime(day.year, day.month, day.day, 7, tzinfo=UTC).timestamp()) * 1_000_000_000
            for iid in range(1, names + 1):
                columns["ts_ns"].append(ts)
                columns["day"].append(day.year * 10000 + day.month * 100 + day.day)
                columns["instrument_id"].append(iid)
        day += timedelta(days=1)
    rows = len(columns["ts_ns"])
    close = np.rint(1000 * np.exp(np.cumsum(rng.normal(0, 0.02, rows)))).astype(np.int64)
    table = pa.table(
        {
            "ts_ns": pa.array(columns["ts_ns"], pa.int64()),
            "day": pa.array(columns["day"], pa.int32()),
            "instrument_id": pa.array(columns["instrument_id"], pa.int32()),
            "open": close,
            "high": close + 5,
            "low": close - 5,
            "close": close,
            "volume": np.full(rows, 100_000, dtype=np.int64),
        }
    )
    listed = {iid: listing_day if iid == names else 20100104 for iid in range(1, names + 1)}
    instruments = [
        Instrument(
            instrument_id=iid,
            symbol=f"60000{iid}",
            venue="SSE",
            asset_class="equity",
            currency="CNY",
            price_digits=2,
            tick_raw=1,
            qty_digits=0,
            lot_raw=100,
            board="main",
            listing_day=day,
        )
        for iid, day in listed.items()
    ]
    return table, instruments


def weekday_lake(root: Path, start: str, end: str, *, closed: tuple[str, ...] = ()) -> Path:
    """A lake at ``root`` holding ``weekday_bars`` (committed as an ingest would)."""
    from lake.partitioned import Lake
    from lake.schema import Kind

    table, instruments = weekday_bars(start, end, closed=closed)
    table = table.append_column("turnover", pa.nulls(table.num_rows, pa.int64()))
    Lake(root).commit([(Kind.BARS, "1d", table)], instruments=instruments)
    return root
