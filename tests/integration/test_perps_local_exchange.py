"""``tape paper`` and ``tape live`` on a USDT perpetual (XRP/USDT:USDT 5-minute bars and its
8-hour funding rates, freqtrade's Binance test data) against the local exchange speaking
Binance USD-M (``/fapi``) to the real ``ccxt.pro.binanceusdm``: the strategy goes short and long;
the venue's settled fundings are journaled (``market.funding_received.v1``) and booked like a
backtest's; a live session reconciles signed positions and the USDT wallet to the last 1e-8;
killed with SIGKILL, it resumes without sending an order twice; every session replays bit for
bit, whole and by day."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from cli.cockpit_cmd import cockpit_sources
from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    INPUT_KINDS,
    BarsReceived,
    DayClosed,
    FundingReceived,
    InstrumentsDefined,
    LedgerPosted,
    MarkPriceReceived,
    OrderFilled,
    OrderSubmitted,
    VenueReconciled,
)
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import write_dataset
from tests.factories import XRP_PERP, count_events
from tui.daytape import read_day_tape

ROOT = Path(__file__).resolve().parents[2]
FUTURES = ROOT.parents[0] / "shared" / "data" / "crypto" / "freqtrade" / "futures"
if not FUTURES.exists():
    FUTURES = Path("/work/shared/data/crypto/freqtrade/futures")
PERP = XRP_PERP
FIVE_MINUTES_NS = 300_000_000_000
START = "2021-11-18T00:05:00Z"  # the first live step (its bar closes then); history before it
END = "2021-11-19T00:30:00Z"  # fundings at 00:00, 08:00, 16:00 and the next 00:00: two session days
KEY, SECRET = "perp-key-3c1d", "perp-secret-99ab"

pytestmark = pytest.mark.skipif(
    not FUTURES.exists(), reason="needs /work/shared/data/crypto/freqtrade/futures"
)


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * 10**9


def _dataset(path: Path, name: str, until_ns: int, *, marks: bool = False) -> Path:
    """The perpetual's bars closing before or at ``until_ns`` and its funding rows up to then;
    with ``marks``, each row's mark (``_marks``), as ``tape export`` writes it from the lake's
    mark-price candles."""
    bars = feather.read_table(FUTURES / "XRP_USDT_USDT-5m-futures.feather")
    start_ns = bars.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    ts = start_ns + FIVE_MINUTES_NS  # a bar is stamped at its close
    keep = ts <= until_ns
    days = np.char.replace((ts - 1).astype("datetime64[ns]").astype("datetime64[D]").astype(str), "-", "")
    raw = {
        k: np.rint(bars.column(k).to_numpy() * 10_000).astype(np.int64)[keep]
        for k in ("open", "high", "low", "close")
    }
    table = pa.table(
        {
            "ts_ns": ts[keep],
            "day": days.astype(np.int32)[keep],
            "instrument_id": np.ones(int(keep.sum()), np.int32),
            **raw,
            "volume": np.rint(bars.column("volume").to_numpy()).astype(np.int64)[keep],
        }
    )
    rates = feather.read_table(FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather")
    funding_ts = rates.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    kept = funding_ts <= until_ns
    funding = pa.table(
        {
            "ts_ns": pa.array(funding_ts[kept]),
            "instrument_id": pa.array(np.ones(int(kept.sum()), np.int32)),
            "rate_e8": pa.array(np.rint(rates.column("open").to_numpy() * 1e8).astype(np.int64)[kept]),
        }
    )
    if marks:
        funding = funding.append_column("mark", pa.array(_marks(funding_ts[kept])))
    write_dataset(
        path, name=name, frequency="5m", calendar="24x7", instruments=[PERP], bars=table, funding=funding
    )
    return path


def _marks(funding_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The mark at each funding time: the close of the 1-hour mark candle that closed at or
    just before it (``lake.partitioned``'s stamp rule), at the perpetual's 4 digits."""
    candles = feather.read_table(FUTURES / "XRP_USDT_USDT-1h-mark.feather")
    opens = candles.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    closes = opens + 12 * FIVE_MINUTES_NS
    at = np.searchsorted(closes, funding_ns, side="right") - 1
    assert (at >= 0).all() and (funding_ns - closes[at] < 12 * FIVE_MINUTES_NS).all()
    return np.rint(candles.column("close").to_numpy()[at] * 10_000).astype(np.int64)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The market the local exchange plays (to END) and the history the session warms up on."""
    root = tmp_path_factory.mktemp("perps")
    full = _dataset(root / "market", "xrp-perp", _ns(END))
    history = _dataset(root / "history", "xrp-perp-history", _ns(START) - 1)
    return full, history


@pytest.fixture(scope="module")
def marked_market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``market`` with the funding rows' marks (``funding.parquet``'s ``mark`` column)."""
    root = tmp_path_factory.mktemp("perps-marked")
    full = _dataset(root / "market", "xrp-perp-marked", _ns(END), marks=True)
    history = _dataset(root / "history", "xrp-perp-marked-history", _ns(START) - 1, marks=True)
    return full, history


def _config(path: Path, history: Path, journal: Path, *, live: bool) -> Path:
    text = f"""run_id = "{"live" if live else "paper"}-perp"
dataset = "{history}"
journal = "{journal}"
currency = "USDT"
initial_cash = "10000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 8, weight = 0.8, short_weight = 0.8 }}

[paper]
exchange = "binanceusdm"
start = "{START}"
end = "{END}"
grace_s = 1500
clock = "venue"
"""
    if live:
        text += '\n[venue]\nkind = "live"\n\n[live]\nkeys_env = "TAPE_PERP"\nmarket = "usdm"\n'
    path.write_text(text)
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPE_PERP_API_KEY", KEY)
    monkeypatch.setenv("TAPE_PERP_SECRET", SECRET)


def _funding_times(full: Path) -> list[int]:
    """The data set's funding times after the history's last bar (Binance stamps them a few ms
    past the hour: 00:00:00.017, ...), up to the session's end."""
    import pyarrow.parquet as pq

    times = pq.read_table(full / "funding.parquet").column("ts_ns").to_pylist()
    return [t for t in times if _ns(START) - FIVE_MINUTES_NS < t <= _ns(END)]


def _events(journal: Path) -> list[object]:
    with open_journal(journal) as store:
        return [event for _, event in store.events()]


def _fundings(events: list[object]) -> list[LedgerPosted]:
    return [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("funding ")]


def _positions(events: list[object]) -> list[int]:
    """The position after each fill (raw quantity, signed)."""
    held, out = 0, []
    for e in events:
        if isinstance(e, OrderFilled):
            held += e.side * e.fill_qty_raw
            out.append(held)
    return out


def _marks_track_the_venue(events: list[object]) -> None:
    """The venue's marks are journaled (``market.mark_price_received.v1``), at most one per
    step, in time order; the local exchange's mark is its last close, so each mark stamped at a
    bar's close equals that close."""
    marks = [e for e in events if isinstance(e, MarkPriceReceived)]
    closes = {e.ts_ns: e.close_raw[0] for e in events if isinstance(e, BarsReceived)}
    assert len(marks) >= len(closes) // 2, (len(marks), len(closes))
    assert all(a.ts_ns < b.ts_ns for a, b in itertools.pairwise(marks))
    at_close = [m for m in marks if m.ts_ns in closes]
    assert at_close and all(m.mark_px_raw == closes[m.ts_ns] for m in at_close)


def _day_tape_closes_at_the_journaled_nav(journal: Path) -> None:
    """The cockpit's day tape, marked with the cockpit's marks (the data set holds only the
    history: the live rows and the marks come from the journal), closes each day at the
    journaled NAV."""
    with open_journal(journal) as store:
        marks = cockpit_sources(journal).marks(store)  # type: ignore[misc]
        events = dict(store.events())
        instruments = {i.instrument_id: i for e in events.values() if isinstance(e, InstrumentsDefined)
                       for i in e.instruments}  # fmt: skip
        closes = [(seq, e) for seq, e in events.items() if isinstance(e, DayClosed)]
        assert [close.day for _, close in closes] == [20211118, 20211119]
        for seq, close in closes:
            tape = read_day_tape(store, close.day, instruments, "USDT")
            index = tape.index_of(seq)
            assert index is not None
            prices = tape.prices_at(index, marks)
            assert prices is not None
            assert tape.nav_minor(tape.book_at(index), prices) == close.nav_minor, close.day


def _replays(journal: Path) -> None:
    _day_tape_closes_at_the_journaled_nav(journal)
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
        for day in (20211118, 20211119):  # the second day's replay skips the first day's fundings
            outcome = replay(store, replay_builder, day=day)
            assert outcome.ok, (day, outcome.divergence)
    assert main(["replay", str(journal), "--day", "2021-11-19"]) == 0


def test_a_paper_session_on_a_perpetual_books_the_venues_funding_like_a_backtest(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """Simulated fills on the venue's bars; the fundings come from the venue (rate and mark as
    it settled them) and are booked exactly as a backtest over the same bars and funding table
    books them: the session's derived events are the backtest's, byte for byte."""
    full, history = market
    config = _config(tmp_path / "paper.toml", history, tmp_path / "journal", live=False)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200"]) == 0
    events = _events(tmp_path / "journal")
    received = [e for e in events if isinstance(e, FundingReceived)]
    assert [e.ts_ns for e in received] == _funding_times(full)
    assert all(e.received_ns >= e.ts_ns and e.mark_px_raw > 0 for e in received)
    positions = _positions(events)
    assert min(positions) < 0 < max(positions)  # short and long
    assert len(_fundings(events)) >= 2  # the first funding falls before any position
    _marks_track_the_venue(events)
    _replays(tmp_path / "journal")
    _assert_equals_backtest(config, full, history)


def _assert_equals_backtest(config: Path, full: Path, history: Path) -> None:
    """The session's derived events are those of a backtest over the whole market that trades
    from the first live session day (the bars before it are history), byte for byte."""
    root = config.parent
    backtest = root / "backtest.toml"
    backtest.write_text(
        config.read_text()
        .split("[paper]")[0]
        .replace(str(history), str(full))
        .replace(str(root / "journal"), str(root / "bt"))
        + '\n[window]\nstart = "2021-11-18"\n'
    )
    assert main(["backtest", str(backtest)]) == 0

    def derived(path: Path) -> list[bytes]:
        with open_journal(path) as journal:
            return [r.payload for r in journal.records() if r.kind not in INPUT_KINDS]

    assert derived(root / "journal") == derived(root / "bt")


def test_a_paper_session_books_funding_at_the_data_sets_mark_like_a_backtest(
    marked_market: tuple[Path, Path], tmp_path: Path
) -> None:
    """QA: on a data set with marks (``funding.parquet``'s ``mark``) a backtest books funding at
    the mark, while the local exchange settled it at the bar's close and stated that as the
    mark, so a paper session against it booked other amounts than the backtest on the same
    data. Now the local exchange settles at the data set's mark: the venue's fundings carry it,
    and the session is the backtest, byte for byte."""
    import pyarrow.parquet as pq

    full, history = marked_market
    config = _config(tmp_path / "paper.toml", history, tmp_path / "journal", live=False)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200"]) == 0
    events = _events(tmp_path / "journal")
    table = pq.read_table(full / "funding.parquet").to_pydict()
    stated = dict(zip(table["ts_ns"], table["mark"], strict=True))
    received = [e for e in events if isinstance(e, FundingReceived)]
    assert [e.ts_ns for e in received] == _funding_times(full)
    assert [e.mark_px_raw for e in received] == [stated[e.ts_ns] for e in received]
    closes = {e.ts_ns: e.close_raw[0] for e in events if isinstance(e, BarsReceived)}
    assert any(e.mark_px_raw != closes.get(e.ts_ns - e.ts_ns % FIVE_MINUTES_NS + FIVE_MINUTES_NS)
               for e in received)  # fmt: skip
    booked = _fundings(events)
    assert len(booked) >= 2 and all(f"mark_px_raw={stated[int(e.memo.split(' at ')[1])]} " in e.memo
                                    for e in booked)  # fmt: skip
    _assert_equals_backtest(config, full, history)


def test_a_live_session_on_a_perpetual_reconciles_positions_funding_and_usdt(
    market: tuple[Path, Path], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The venue's fills (fees in USDT) and fundings are booked; the order streams drop every 45
    bars; reconciliation at the start, after each reconnect and at the end finds the signed
    position and the USDT wallet (plus unrealized profit at the venue's mark) equal to the
    book's, funding rounding and fundings settled ahead of the session accounted; it replays."""
    full, history = market
    config = _config(tmp_path / "live.toml", history, tmp_path / "journal", live=True)
    argv = ["live", str(config), "--local-exchange", str(full), "--speed", "150", "--local-fee", "0.0004",
            "--disconnect-every", "45"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    events = _events(tmp_path / "journal")
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    whens = [e.when for e in reconciled]
    assert whens[0] == "start" and whens[-1] == "stop" and "reconnect" in whens, out[-3000:]
    assert all(not e.differences for e in reconciled), [e.differences for e in reconciled]
    positions = _positions(events)
    assert min(positions) < 0 < max(positions)  # short and long, at the venue
    assert positions[-1] != 0  # the last reconciliation checked an open position
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and all(e.commission_minor > 0 for e in fills)  # 0.04% in USDT
    assert [e.ts_ns for e in events if isinstance(e, FundingReceived)] == _funding_times(full)
    assert len(_fundings(events)) >= 2
    assert "binanceusdm" in out
    assert "mark prices: " in out and " journaled + " in out
    _marks_track_the_venue(events)
    _replays(tmp_path / "journal")


def test_killed_perpetual_sessions_resume_without_sending_an_order_twice(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The exchange runs in its own process (``python -m venues.local_exchange --market-type
    usdm``) and plays a bar only while the session watches; ``tape live`` is SIGKILLed twice and
    resumed: no client order id reaches the exchange twice, the journal's fills are the
    exchange's executions, the last reconciliation finds no difference and the journal replays."""
    full, history = market
    config = _config(tmp_path / "live.toml", history, tmp_path / "journal", live=True)
    env = {**os.environ, "TAPE_PERP_API_KEY": KEY, "TAPE_PERP_SECRET": SECRET}
    env.update(LOCAL_EXCHANGE_API_KEY=KEY, LOCAL_EXCHANGE_SECRET=SECRET, PYTHONPATH=str(ROOT))
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    port_file, state_file = tmp_path / "port", tmp_path / "state.json"
    start_open = datetime.fromtimestamp(_ns(START) // 10**9 - 300, UTC).isoformat().replace("+00:00", "Z")
    exchange = subprocess.Popen(
        [sys.executable, "-m", "venues.local_exchange", str(full), "--port-file", str(port_file),
         "--state-file", str(state_file), "--start", start_open, "--speed", "40", "--when-watched", "1",
         "--fee", "0.0004", "--market-type", "usdm", "--linger", "60", "--cash", "10000"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline, "the local exchange did not start"
            time.sleep(0.05)
        port = port_file.read_text()
        command = [sys.executable, "-m", "cli.main", "live", str(config), "--venue-port", port]
        killed_at = []
        for target in (50, 100):  # live bars received: the second kill just after the 08:00 funding
            session = subprocess.Popen(
                command + (["--resume"] if (tmp_path / "journal").exists() else []),
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 45
            while count_events(tmp_path / "journal", BarsReceived) < target:
                assert time.monotonic() < deadline and session.poll() is None, "the session stalled"
                time.sleep(0.05)
            session.send_signal(signal.SIGKILL)
            session.wait()
            killed_at.append(
                (
                    count_events(tmp_path / "journal", BarsReceived),
                    count_events(tmp_path / "journal", OrderSubmitted),
                )
            )
        assert killed_at[0][1] > 0 and killed_at[1][1] > killed_at[0][1], killed_at  # orders went out
        done = subprocess.run(
            [*command, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        exchange.send_signal(signal.SIGTERM)
        exchange.wait(timeout=30)
    finally:
        if exchange.poll() is None:
            exchange.kill()
    state = json.loads(state_file.read_text())
    sent = Counter(order["client_order_id"] for order in state["orders"])
    assert sent and max(sent.values()) == 1, sent
    events = _events(tmp_path / "journal")
    submitted = {e.order_id for e in events if isinstance(e, OrderSubmitted)}
    (tag,) = {order["client_order_id"].rsplit("-", 1)[0] for order in state["orders"]}
    booked: Counter[str] = Counter()
    for e in events:
        if isinstance(e, OrderFilled):
            booked[f"{tag}-{e.order_id.rsplit('-', 1)[-1]}"] += e.fill_qty_raw
    for order in state["orders"]:  # every execution booked once, each order the journal's
        assert booked[order["client_order_id"]] == Decimal(order["executed"]) * 10, order
    assert {f"{tag}-{order_id.rsplit('-', 1)[-1]}" for order_id in submitted} >= set(sent)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert reconciled[-1].when == "stop" and not reconciled[-1].differences, reconciled[-1]
    assert sum(1 for e in reconciled if e.when == "resume") == 2
    assert Decimal(state["positions"]["XRPUSDT"]) * 10 == _positions(events)[-1]
    _replays(tmp_path / "journal")
