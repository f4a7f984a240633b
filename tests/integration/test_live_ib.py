"""``tape live`` with ``[live] venue = "ib"`` against the loopback fake TWS (tests/venues/
_fake_tws.py) through the real ib_async client: bars from a ``keepUpToDate`` historical-data
subscription, orders out after their journal commit, executions and their commission reports
booked to the cent, reconciliation at the start, after IB's 1101 (data lost) and at the end
with no difference; IB's connectivity codes and pacing journaled as ``venue.connection.v1``; a
session killed with SIGKILL resumes (bars it missed fetched up to TWS's time), sends no order
twice and books every execution once; ``tape replay --day`` reproduces its days; a gateway
that cannot be reached exits 4 with one line. No API keys are read for IB.

``tape paper`` on IB bars (``paper.exchange = "ib"``, the connection from ``[live]``): the
same bars through the same adapter, traded against the simulator, equal a backtest over them
byte for byte, through pacing and 1101 (the subscriptions end; the bars missed are fetched) and
through a SIGKILL and ``--resume``; with the paper broker it fills on IB's bars, or with
``paper.quotes`` at IB's quoted bid / ask (``reqMktData``, journaled); all replay."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("ib_async", reason="ib_async is in the dev/live extras")

from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    INPUT_KINDS,
    BarsReceived,
    DayClosed,
    OrderCancelled,
    OrderFilled,
    OrderSubmitted,
    QuoteReceived,
    VenueConnection,
    VenueMessageReceived,
    VenueReconciled,
)
from domain.market import Panel
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import load_panel, write_dataset
from tests.factories import count_events, paper_config
from tests.venues._fake_tws import FakeTws, FakeTwsThread, market_from_dataset
from venues.ib_pacing import HistoryPacing

# IB's historical-data pacing at a small scale, so that a refused request is asked again at once
# (IB's own numbers make a 162 wait 15 s: venues/ib_pacing.py)
FAST_PACING = HistoryPacing(identical_s=0.05, contract_window_s=0.05, window_s=1.0, window_max=60)


def fast_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's adapter paced at ``FAST_PACING`` (it reads the module's default)."""
    monkeypatch.setattr("venues.ib_pacing.IB_HISTORY_PACING", FAST_PACING)


HISTORY = 60
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded two-stock daily market (24x7 calendar: no calendar start-up cost) and its first
    ``HISTORY`` days as the history a session warms up on."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lake.synth import synth_dataset

    root = tmp_path_factory.mktemp("ib")
    synth = root / "synth"
    synth_dataset(synth, seed=11, symbols=2, bars=100, frequency="1d", calendar="24x7", start="2021-01-01")
    panel, _ = load_panel(synth)
    stocks = [msgspec.structs.replace(inst, asset_class="equity") for inst in panel.instruments]
    table = pq.read_table(synth / "bars.parquet")
    first = table.filter(pc.less_equal(table["ts_ns"], int(panel.ts_ns[HISTORY - 1])))
    for path, bars in ((root / "market", table), (root / "history", first)):
        write_dataset(path, name=path.name, frequency="1d", calendar="24x7", instruments=stocks, bars=bars)
    return root / "market", root / "history"


def ib_config(path: Path, history: Path, journal: Path, start_ns: int, end_ns: int, port: int) -> Path:
    paper_config(path, history, journal, start_ns, end_ns, grace_s=5 * 86_400)
    text = path.read_text().replace('run_id = "paper-local"', 'run_id = "live-ib"')
    text = text.replace('exchange = "binance"', 'exchange = "ib"')
    text = text.replace('initial_cash = "1000000"', 'initial_cash = "1000000"\nus_regulatory_fees = false')
    path.write_text(
        text + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n'
        f'[live]\nvenue = "ib"\nport = {port}\nclient_id = 17\n'
    )
    return path


def paper_ib_config(
    path: Path, history: Path, journal: Path, start_ns: int, end_ns: int, port: int, venue: str = ""
) -> Path:
    """``tape paper`` on IB bars: the connection in ``[live]`` (no ``[venue] kind = "live"``);
    ``venue``: a ``[venue]`` table's lines (none: the simulator)."""
    paper_config(path, history, journal, start_ns, end_ns, grace_s=5 * 86_400)
    text = path.read_text().replace('run_id = "paper-local"', 'run_id = "paper-ib"')
    text = text.replace('exchange = "binance"', 'exchange = "ib"')
    text = text.replace('initial_cash = "1000000"', 'initial_cash = "1000000"\nus_regulatory_fees = false')
    path.write_text(
        text
        + (f"\n[venue]\n{venue}\n" if venue else "")
        + f'\n[live]\nvenue = "ib"\nport = {port}\nclient_id = 18\n'
    )
    return path


def derived(path: Path) -> list[bytes]:
    with open_journal(path) as journal:
        return [record.payload for record in journal.records() if record.kind not in INPUT_KINDS]


def assert_equals_backtest(config: Path, full: Path, panel_day: int) -> None:
    """The session's derived events are a backtest's over the whole market trading from the
    first live session day (the bars before it are history), byte for byte."""
    root, day = config.parent, str(panel_day)
    text = config.read_text().split("[paper]")[0]
    history = text.split('dataset = "')[1].split('"')[0]
    backtest = root / "backtest.toml"
    backtest.write_text(
        text.replace(history, str(full)).replace(str(root / "journal"), str(root / "bt"))
        + f'\n[window]\nstart = "{day[:4]}-{day[4:6]}-{day[6:]}"\n'
    )
    assert main(["backtest", str(backtest)]) == 0
    assert derived(root / "journal") == derived(root / "bt")


def new_tws(full: Path, start_ns: int) -> FakeTwsThread:
    contracts, bars = market_from_dataset(full, start_ns)
    return FakeTwsThread(FakeTws(contracts=contracts, market=bars, cash={"USD": "1000000"}))


def events_of(journal: Path) -> list[object]:
    with open_journal(journal) as store:
        return [event for _, event in store.events()]


def cents(text: str) -> int:
    return int((Decimal(text) * 100).quantize(Decimal(1), ROUND_HALF_EVEN))


def exec_id(reason: str) -> str:
    """The IB execution id in a fill message's reason (``trade:{instrument}:{execId} fee=...``)."""
    return reason.split(" ")[0].split(":", 2)[2]


def check_books(journal: Path, tws: FakeTws) -> list[object]:
    """Every execution booked once, with its commission to the cent; each order sent once; the
    last reconciliation equal to TWS; the journal replays, whole and by day."""
    events = events_of(journal)
    fills = [e.message for e in events if isinstance(e, VenueMessageReceived) and e.message.kind == "fill"]
    booked = Counter(exec_id(m.reason) for m in fills)
    executions = {ex.exec_id: ex for ex in tws.executions}
    assert executions and set(booked) == set(executions) and set(booked.values()) == {1}, booked
    for message in fills:
        ex = executions[exec_id(message.reason)]
        assert message.commission_minor == cents(ex.commission), (message, ex.commission)
        assert message.qty_raw == int(ex.shares)
    refs = Counter(order.order_ref for order in tws.orders.values())
    assert refs and set(refs.values()) == {1}, refs  # no client order id sent twice
    submitted = {e.order_id for e in events if isinstance(e, OrderSubmitted)}
    assert len(refs) <= len(submitted)
    filled = [e for e in events if isinstance(e, OrderFilled)]
    assert sum(e.commission_minor for e in filled) == sum(cents(ex.commission) for ex in tws.executions)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert reconciled[-1].when == "stop" and reconciled[-1].differences == [], reconciled[-1]
    assert_replays(journal)
    return events


def assert_replays(journal: Path) -> None:
    """A fresh kernel over the journal re-derives every derived event byte for byte."""
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def session_env() -> dict[str, str]:
    """The environment of a session run as its own process (``python -m cli.main``)."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def kill_when(argv: list[str], ready: Callable[[], bool], *, poll_s: float) -> tuple[str, bool]:
    """Start the session ``argv`` as its own process and SIGKILL it as soon as ``ready()``
    holds, or after 40 s: its output, and whether ``ready()`` held in time."""
    process = subprocess.Popen(
        argv, env=session_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not ready():
        time.sleep(poll_s)
    process.send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=20)
    return output, time.monotonic() < deadline


def resume(argv: list[str]) -> str:
    """Run the session ``argv`` with ``--resume`` to its end (60 s at most); it exits 0. Its
    standard output."""
    done = subprocess.run([*argv, "--resume"], env=session_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def test_an_ib_session_trades_reconciles_and_replays(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    for name in ("TAPE_BINANCE_API_KEY", "TAPE_BINANCE_SECRET"):  # IB asks for no keys
        monkeypatch.delenv(name, raising=False)
    fast_pacing(monkeypatch)
    fake = new_tws(full, start)
    tws = fake.tws
    tws.pace_history = 1  # the first bar subscription is refused for pacing, then asked again
    tws.after_bar = {
        8: [(1100, "Connectivity between IB and Trader Workstation has been lost.")],
        9: [(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.")],
        14: [(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")],
    }
    try:
        player = fake.spawn(tws.play(60))
        journal = tmp_path / "journal"
        config = ib_config(tmp_path / "live.toml", history, journal, start, end, fake.port)
        assert main(["live", str(config)]) == 0
        output = capsys.readouterr().out
        player.result(10)
        events = check_books(journal, tws)
    finally:
        fake.close()
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert [r.when for r in reconciled] == ["start", "reconnect", "stop"], output
    assert all(r.differences == [] for r in reconciled), [r.differences for r in reconciled]
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    states = Counter((e.stream, e.state) for e in events if isinstance(e, VenueConnection))
    assert states[("ib-server", "disconnected")] == 1 and states[("ib-server", "restored")] == 2, states
    assert states[("ib-server", "reconciled")] == 1 and states[("ib", "pacing")] == 1, states
    assert "IB 1100" in output and "pacing" in output
    assert "live (ib)" in output and "reconciled (stop) with ib" in output
    days = [e.day for e in events if isinstance(e, DayClosed)]
    for day in (days[3], days[-1]):
        assert main(["replay", str(journal), "--day", str(day)]) == 0
    report = tmp_path / "report.json"  # the report's fees: IB's commission reports, to the cent
    assert main(["report", str(journal), "--json", str(report)]) == 0
    fees = json.loads(report.read_text())["summary"]["fees"]
    assert round(fees * 100) == sum(cents(ex.commission) for ex in tws.executions) > 0


def test_a_killed_ib_session_resumes_without_sending_an_order_twice(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGKILL twice. The first kill comes as soon as an order (a limit at the close) reaches
    TWS, which holds its market meanwhile, then fills it on the bars it plays while the session
    is down: the resume finds the order by its orderRef instead of sending it again and books
    the execution it missed. The second comes after five fills. While the session is down TWS plays on (two
    bars), so each resume fetches the bars it missed up to TWS's time before it watches again."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    journal = tmp_path / "journal"
    config = ib_config(tmp_path / "live.toml", history, journal, start, end, fake.port)
    argv = [sys.executable, "-m", "cli.main", "live", str(config)]

    def ready() -> bool:  # an order reached TWS (which holds on to it), then five fills
        return bool(tws.orders) if tws.pause_on_order else count_events(journal, OrderFilled) >= 5

    try:
        player = fake.spawn(tws.play(25))
        tws.pause_on_order = True
        for killed_when in ("an order reached TWS", "five fills"):
            resuming = ["--resume"] if journal.exists() else []
            output, in_time = kill_when(argv + resuming, ready, poll_s=0.005)
            assert in_time, f"{killed_when}: not reached ({tws})\n{output[-3000:]}"
            first = tws.pause_on_order
            tws.pause_on_order = tws.paused = False
            played = tws.played
            for _ in range(2):  # the market goes on while the session is down
                fake.call(tws.play_step())
            assert tws.played == min(played + 2, len(next(iter(tws.market.values()))))
            if first:  # the order the session sent filled while it was down
                assert tws.executions and count_events(journal, OrderFilled) == 0
        resume(argv)
        player.result(10)
        events = check_books(journal, tws)
    finally:
        fake.close()
    resumed = [e for e in events if isinstance(e, VenueReconciled) and e.when == "resume"]
    assert len(resumed) == 2 and resumed[0].fills_recovered >= 1, resumed
    for line in (line for r in resumed for line in r.differences):  # sent by no one: rejected
        assert line.endswith("journaled, never reached the venue"), line
    bars = [e for e in events if isinstance(e, BarsReceived)]
    assert sorted({e.ts_ns for e in bars}) == [int(ts) for ts in panel.ts_ns[HISTORY:]]  # none lost
    days = [e.day for e in events if isinstance(e, DayClosed)]
    assert len(days) == panel.steps - HISTORY
    assert main(["replay", str(journal), "--day", str(days[len(days) // 2])]) == 0


def test_an_order_cancelled_while_the_session_was_down_is_booked_on_resume(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The session's first order (a limit the market never reaches) rests at TWS; the session
    asks to cancel it and is SIGKILLed the moment its cancel reaches TWS, which carries it out
    while the session is down: the order is then in neither the open orders nor the
    executions. The resumed session's reconciliation finds it in IB's completed orders and
    books the cancel — no difference, no halt — and the journal replays."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    journal = tmp_path / "journal"
    config = ib_config(tmp_path / "live.toml", history, journal, start, end, fake.port)
    argv = [sys.executable, "-m", "cli.main", "live", str(config)]
    try:
        player = fake.spawn(tws.play(25))
        tws.pause_on_order = True
        process = subprocess.Popen(
            argv, env=session_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not tws.orders:
            time.sleep(0.005)
        first = next(iter(tws.orders.values()), None)
        assert first is not None and first.order_type == "LMT", first
        tws.resting.add(first.order_ref)  # the market never reaches it
        tws.hold_cancels = True
        tws.pause_on_order = tws.paused = False
        while time.monotonic() < deadline and not tws.held_cancels:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=20)
        assert time.monotonic() < deadline, output[-3000:]
        assert tws.held_cancels[0] == first.order_id and first.status == "Submitted"
        was_acked = acked(journal)
        tws.hold_cancels = False
        tws.end_order(first.order_id, why="Cancelled by Trader")  # while nobody is connected
        fake.call(tws.play_step())
        resume(argv)
        player.result(10)
        events = check_books(journal, tws)
    finally:
        fake.close()
    order_id = next(e.order_id for e in events if isinstance(e, OrderSubmitted))
    assert order_id in was_acked  # its acknowledgement was journaled before the kill
    resumed = [e for e in events if isinstance(e, VenueReconciled) and e.when == "resume"]
    assert len(resumed) == 1 and resumed[0].action != "halted", resumed
    for line in resumed[0].differences:  # only what the kill caught in flight, sent by no one
        assert line.endswith("journaled, never reached the venue"), line
    kinds = [
        e.message.kind
        for e in events
        if isinstance(e, VenueMessageReceived) and e.message.order_id == order_id and e.message.kind != "sent"
    ]
    assert kinds == ["ack", "cancelled"], kinds
    assert any(isinstance(e, OrderCancelled) and e.order_id == order_id for e in events)
    asked = [f for f in tws.received if f[0] == "99"]  # completed orders: asked when missing only
    assert asked and all(f == ["99", "1"] for f in asked), asked
    assert main(["replay", str(journal)]) == 0


def acked(journal: Path) -> list[str]:
    """The order ids whose acknowledgement a journal another process writes holds now."""
    from kernel.journal import JournalError

    try:
        with open_journal(journal) as store:
            return [
                e.message.order_id
                for _, e in store.events()
                if isinstance(e, VenueMessageReceived) and e.message.kind == "ack"
            ]
    except (JournalError, OSError):
        return []


def test_ib_refusals_are_clear(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ib_config(tmp_path / "live.toml", history, tmp_path / "journal", start, end, port)
    assert main(["live", str(config)]) == 4
    out = capsys.readouterr().out
    assert f"no TWS / IB Gateway API at 127.0.0.1:{port}" in out and "internal error" not in out
    assert "Traceback" not in out
    wrong = tmp_path / "binance-bars.toml"
    wrong.write_text(config.read_text().replace('exchange = "ib"', 'exchange = "binance"'))
    assert main(["live", str(wrong)]) == 2
    assert 'set paper.exchange = "ib"' in capsys.readouterr().out
    assert main(["paper", str(config)]) == 2
    assert "tape live" in capsys.readouterr().out
    assert main(["live", str(config), "--local-exchange", str(full)]) == 2
    assert "live.host:live.port" in capsys.readouterr().out
    keyed = tmp_path / "keyed.toml"
    keyed.write_text(config.read_text().replace('venue = "ib"', 'venue = "ib"\nsecrets_file = "/tmp/k.toml"'))
    assert main(["live", str(keyed)]) == 2
    assert "IB has no API keys" in capsys.readouterr().out


def test_ib_settings_journal_the_old_bytes_and_the_shipped_config_loads() -> None:
    """The [live] rows IB added leave a Binance configuration's journaled bytes as they were
    (``LATER_DEFAULTS``); ``cli/defaults/live_ib.toml`` reads as an IB session."""
    from cli.wiring import load_config
    from sim.backtest import BacktestConfig, LiveConfig

    shipped = load_config(ROOT / "cli" / "defaults" / "live_ib.toml")
    assert shipped.live is not None and shipped.live.venue == "ib" and shipped.paper is not None
    assert (shipped.live.port, shipped.live.client_id, shipped.paper.exchange) == (7497, 1, "ib")
    assert not shipped.us_regulatory_fees
    binance = msgspec.structs.replace(
        shipped, live=LiveConfig(), paper=msgspec.structs.replace(shipped.paper, exchange="binance")
    )
    text = binance.canonical_json()
    live = json.loads(text)["live"]
    assert not {"venue", "host", "port", "client_id", "account"} & set(live), live
    assert BacktestConfig.from_json(text).live == LiveConfig()
    assert '"venue":"ib"' in shipped.canonical_json()


def test_a_paper_session_on_ib_bars_is_the_backtest_and_replays(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bars from the fake TWS through the real ib_async client, trades on the simulator: the
    first subscription refused for pacing, IB's 1100 / 1102 noted, its 1101 ending every
    subscription (the watchers subscribe again and fetch what closed meanwhile); no bar lost,
    so the derived events are the backtest's; the journal replays whole and by day."""
    fast_pacing(monkeypatch)
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    tws.pace_history = 1
    tws.after_bar = {
        8: [(1100, "Connectivity between IB and Trader Workstation has been lost.")],
        9: [(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.")],
        14: [(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")],
    }
    journal = tmp_path / "journal"
    try:
        player = fake.spawn(tws.play(60))
        config = paper_ib_config(tmp_path / "paper.toml", history, journal, start, end, fake.port)
        assert main(["paper", str(config)]) == 0
        output = capsys.readouterr().out
        player.result(10)
        assert not tws.orders and not tws.executions  # a paper session sends IB nothing
    finally:
        fake.close()
    events = events_of(journal)
    bars = [e for e in events if isinstance(e, BarsReceived)]
    assert [e.ts_ns for e in bars] == [int(ts) for ts in panel.ts_ns[HISTORY:]], output
    assert sum(isinstance(e, OrderSubmitted) for e in events) >= 5
    states = Counter((e.venue, e.stream, e.state) for e in events if isinstance(e, VenueConnection))
    assert states[("ib", "ib-server", "disconnected")] == 1, states
    assert states[("ib", "ib-server", "restored")] == 2 and states[("ib", "ib", "pacing")] == 1, states
    assert states[("ib", "market", "reconciled")] >= 1, states  # bars fetched after the 1101
    assert "paper paper-ib" in output and "venue ib (ib-server): disconnected" in output
    assert_replays(journal)
    days = [e.day for e in events if isinstance(e, DayClosed)]
    assert len(days) == panel.steps - HISTORY
    for day in (days[0], days[len(days) // 2], days[-1]):
        assert main(["replay", str(journal), "--day", str(day)]) == 0
    assert_equals_backtest(tmp_path / "paper.toml", full, int(panel.day[HISTORY]))


def test_bars_the_ib_stream_skips_reach_their_steps_as_in_the_backtest(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TWS's ``keepUpToDate`` stream skips three bars of one name (two apart, one of them right
    after the other's step): the adapter sees each gap on the grid and fetches the bar over
    ``reqHistoricalData`` before the name's next bar, so every step journals both names' bars
    and the derived events are the backtest's. Before, each skipped bar never came: its step
    went after the grace with one name (the journal short of three bars, the kernel's counts
    three lower, nothing said) and the derived events differed from the backtest's."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    skipped_con = min(tws.market)
    tws.skip_updates = {skipped_con: {5, 12, 13}}
    journal = tmp_path / "journal"
    try:
        player = fake.spawn(tws.play(60))
        config = paper_ib_config(tmp_path / "paper.toml", history, journal, start, end, fake.port)
        assert main(["paper", str(config)]) == 0
        output = capsys.readouterr().out
        player.result(10)
    finally:
        fake.close()
    events = events_of(journal)
    bars = [e for e in events if isinstance(e, BarsReceived)]
    assert [e.ts_ns for e in bars] == [int(ts) for ts in panel.ts_ns[HISTORY:]], output
    short = [e.ts_ns for e in bars if len(e.instrument_ids) != len(panel.instruments)]
    assert short == [], (short, output)
    refused = [f for f in tws.received if f[0] == "20" and f[21] == "0"]
    assert len(refused) >= 2  # the gaps' one-off requests (5 and 12-13 are two gaps)
    assert "quarantined (none)" in output
    assert_replays(journal)
    assert_equals_backtest(tmp_path / "paper.toml", full, int(panel.day[HISTORY]))


def test_a_killed_paper_session_on_ib_bars_resumes_to_the_backtest(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGKILL after ten steps; TWS plays two bars while the session is down; ``--resume``
    re-derives the journal, fetches the bars it missed up to TWS's time and carries on: every
    step once, and the session is still the backtest's."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    journal = tmp_path / "journal"
    config = paper_ib_config(tmp_path / "paper.toml", history, journal, start, end, fake.port)
    argv = [sys.executable, "-m", "cli.main", "paper", str(config)]
    try:
        player = fake.spawn(tws.play(25))
        output, in_time = kill_when(argv, lambda: count_events(journal, BarsReceived) >= 10, poll_s=0.01)
        assert in_time, output[-3000:]
        killed_at = count_events(journal, BarsReceived)
        played = tws.played
        for _ in range(2):  # the market goes on while the session is down
            fake.call(tws.play_step())
        assert tws.played == played + 2
        assert "resumed:" in resume(argv)
        player.result(10)
    finally:
        fake.close()
    events = events_of(journal)
    steps = [e.ts_ns for e in events if isinstance(e, BarsReceived)]
    assert steps == [int(ts) for ts in panel.ts_ns[HISTORY:]] and killed_at < len(steps)
    assert_replays(journal)
    days = [e.day for e in events if isinstance(e, DayClosed)]
    assert main(["replay", str(journal), "--day", str(days[len(days) // 2])]) == 0
    assert_equals_backtest(config, full, int(panel.day[HISTORY]))


def paper_broker_session(
    market: tuple[Path, Path], tmp_path: Path
) -> tuple[Panel, FakeTwsThread, Path, Path]:
    """A ``[venue] kind = "paper"`` session on a fake TWS's bars: (panel, fake TWS, journal, config)."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    journal = tmp_path / "journal"
    config = paper_ib_config(
        tmp_path / "paper.toml", history, journal, start, end, fake.port, venue='kind = "paper"'
    )
    return panel, fake, journal, config


def test_the_paper_broker_fills_on_ib_bars(market: tuple[Path, Path], tmp_path: Path) -> None:
    """``[venue] kind = "paper"`` on IB bars (no ``paper.quotes``): the paper broker
    acknowledges and fills the kernel's orders on the bars, and the journal replays."""
    panel, fake, journal, config = paper_broker_session(market, tmp_path)
    try:
        player = fake.spawn(fake.tws.play(60))
        assert main(["paper", str(config)]) == 0
        player.result(10)
        assert not fake.tws.orders
    finally:
        fake.close()
    events = events_of(journal)
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    submitted = {e.order_id for e in events if isinstance(e, OrderSubmitted)}
    fills = [m for m in messages if m.kind == "fill"]
    assert len(submitted) >= 5 and {m.order_id for m in fills} and {m.order_id for m in fills} <= submitted
    assert sum(isinstance(e, OrderFilled) for e in events) == len(fills)
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    assert_replays(journal)


def test_the_paper_broker_fills_at_ib_quotes_and_replays(market: tuple[Path, Path], tmp_path: Path) -> None:
    """``paper.quotes`` on IB: each contract's ``reqMktData`` stream (the fake quotes a bid one
    tick under each close, the ask two ticks above it) is journaled as
    ``market.quote_received.v1``; the paper broker fills every order at the bid / ask that stood
    when it arrived (no latency: when it was sent), not on the bars; the journal replays, whole
    and by day; the streams are cancelled at the end."""
    panel, fake, journal, config = paper_broker_session(market, tmp_path)
    config.write_text(config.read_text().replace('clock = "venue"', 'clock = "venue"\nquotes = true'))
    try:
        player = fake.spawn(lockstep(fake.tws, journal))
        # its own process: the player reads the journal as it grows (not a second LMDB handle
        # in the writer's process), and a session that stalls fails the test, not the run
        session = subprocess.run(
            [sys.executable, "-m", "cli.main", "paper", str(config)],
            env=session_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert session.returncode == 0, session.stdout + session.stderr
        player.result(10)
        assert not fake.tws.orders  # the orders went to the paper broker, not to IB
        requests = [f for f in fake.tws.received if f[0] == "1"]
        cancels = {f[2] for f in fake.tws.received if f[0] == "2"}
        assert len(requests) == 2 and {f[2] for f in requests} <= cancels, (requests, cancels)
    finally:
        fake.close()
    with open_journal(journal) as store:
        kinds = Counter(record.kind for record in store.records())
    events = events_of(journal)
    quotes = [e for e in events if isinstance(e, QuoteReceived)]
    assert kinds["market.quote_received.v1"] == len(quotes) >= panel.steps - HISTORY
    for column, inst in enumerate(panel.instruments):  # exact: a tick under a close, two wide
        mine = [q for q in quotes if q.instrument_id == inst.instrument_id]
        prices = {int(px) for px in panel.close[HISTORY:, column]} | {int(panel.open[HISTORY, column])}
        assert mine and all(
            q.bid_px_raw + inst.tick_raw in prices
            and q.ask_px_raw - q.bid_px_raw == 2 * inst.tick_raw
            and q.bid_qty_raw == q.ask_qty_raw == 100 * 10**inst.qty_digits
            for q in mine
        ), mine[:3]
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    sent = {m.order_id: m.ts_ns for m in messages if m.kind == "sent"}
    fills = [m for m in messages if m.kind == "fill"]
    takers = [m for m in fills if m.reason == "paper quote taker"]
    assert len(submitted) >= 5 and len(takers) >= 5, Counter(m.reason for m in fills)
    assert all(m.reason.startswith("paper quote") for m in fills)  # none on the bars
    for fill in takers:
        order = submitted[fill.order_id]
        standing = [
            q for q in quotes if q.instrument_id == order.instrument_id and q.ts_ns <= sent[fill.order_id]
        ]
        touch = standing[-1].ask_px_raw if order.side > 0 else standing[-1].bid_px_raw
        assert fill.px_raw == touch, (fill, standing[-1])
    assert sum(isinstance(e, OrderFilled) for e in events) == len(fills)
    assert_replays(journal)
    days = [e.day for e in events if isinstance(e, DayClosed)]
    assert len(days) == panel.steps - HISTORY
    for day in (days[0], days[len(days) // 2], days[-1]):
        assert main(["replay", str(journal), "--day", str(day)]) == 0


async def lockstep(tws: FakeTws, journal: Path) -> None:
    """Play each bar once the session has journaled the one before, once every contract's bars
    and quotes stream: quotes come only with bars, so a session whose loop is busy (strategies
    compiling on a cold cache) while TWS plays the whole market would take the last quote only
    (a quote superseded before it was taken is not handed out) and its later orders would meet
    none."""
    deadline = time.monotonic() + 60
    while tws.subscribed() != set(tws.market) or set(tws.quote_streams.values()) != set(tws.market):
        assert time.monotonic() < deadline, "the session did not subscribe"
        await asyncio.sleep(0.01)
    while await tws.play_step():
        while count_events(journal, BarsReceived) < tws.played:
            assert time.monotonic() < deadline + 120, f"the session did not take bar {tws.played}"
            await asyncio.sleep(0.02)


def test_paper_on_ib_bars_refusals_are_clear(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``[live] venue = "ib"`` there is no gateway to read; ``[live]``'s trading keys are
    not read on IB bars, nor ``paper.quotes`` without the paper broker; the gateway unreachable
    exits 4."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = paper_ib_config(tmp_path / "paper.toml", history, tmp_path / "journal", start, end, port)
    assert main(["paper", str(config)]) == 4
    assert f"no TWS / IB Gateway API at 127.0.0.1:{port}" in capsys.readouterr().out
    text = config.read_text()
    cases = {
        "no-live": (text.split("[live]")[0], 'name it in a [live] table (venue = "ib"'),
        "binance": (text.replace('venue = "ib"', 'venue = "binance"'), 'live.venue = "ib"'),
        "policy": (text + 'on_difference = "warn"\n', "live.on_difference: read by tape live only"),
        "quotes": (
            text.replace('clock = "venue"', 'clock = "venue"\nquotes = true'),
            'quotes are read with [venue] kind = "paper" only',
        ),
    }
    for name, (body, said) in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(body)
        assert main(["paper", str(path)]) == 2, name
        out = capsys.readouterr().out
        assert said in out and "Traceback" not in out, (name, out)
    assert main(["paper", str(config), "--local-exchange", str(full)]) == 2
    assert "live.host:live.port" in capsys.readouterr().out


def test_a_resumed_paper_broker_says_its_counts_are_since_the_resume(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The paper broker's counts (orders sent, quotes, latency) are the process's, not
    journaled: a fresh session's summary gives them plainly, a resumed one says they are since
    the resume (it gave '6 orders sent' as if for the whole session)."""
    _, fake, journal, config = paper_broker_session(market, tmp_path)
    argv = [sys.executable, "-m", "cli.main", "paper", str(config)]
    try:
        player = fake.spawn(fake.tws.play(25))
        output, in_time = kill_when(argv, lambda: count_events(journal, BarsReceived) >= 10, poll_s=0.01)
        assert in_time, output[-3000:]
        resumed = " ".join(resume(argv).split())
        player.result(10)
    finally:
        fake.close()
    assert "resumed:" in resumed and "paper broker since this resume (the venue's traffic" in resumed
