"""``tape paper`` with ``[venue] kind = "paper"`` against the local exchange (a loopback Binance
through the real ccxt.pro client): the paper broker at the edge, with a latency and quotes.

* The orders reach the broker at their send plus the drawn latency; they fill at the journaled
  quote that stood then (buys at the ask, sells at the bid); the session replays bit for bit
  from its journal, whole and by day (``tape replay --day``).
* A session whose venue answers slower than ``kill_switch.latency_ns_max`` (measured from the
  edge's send, not from the step) trips the kill switch; the trip is journaled and replays.
* A session where one name stops printing trips the kill switch through the edge's health
  watch (a journaled halt from ``health``); it replays.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    BarsReceived,
    CommandReceived,
    DayClosed,
    KillSwitchTripped,
    OrderFilled,
    OrderSubmitted,
    QuoteReceived,
    VenueConnection,
    VenueHeartbeat,
    VenueMessageReceived,
)
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import load_panel
from projections.metrics_influx import MetricsState, fold_record
from tests.factories import count_events, market_and_history, paper_config
from venues.paper_broker import LatencyModel

HISTORY = 60
DAY_NS = 86_400 * 10**9
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return market_and_history(tmp_path_factory.mktemp("broker"), seed=5, bars=150, history=HISTORY)


def _config(tmp_path: Path, history: Path, panel_ts: list[int], extra: str, top: str = "") -> Path:
    """``tests.factories.paper_config``'s session with ``extra`` appended to its ``[paper]``
    table (and tables after it) and ``top`` (top-level keys) before everything."""
    config = paper_config(tmp_path / "paper.toml", history, tmp_path / "journal", panel_ts[0], panel_ts[1])
    config.write_text(top + config.read_text() + extra)
    return config


def _events(journal: Path) -> list[object]:
    with open_journal(journal) as store:
        return [event for _, event in store.events()]


def test_latency_and_quotes_fill_at_the_journaled_touch_and_replay(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    latency = f"latency_ms = {5 * HOUR_MS}\nlatency_jitter_ms = {HOUR_MS}\nquotes = true\n"
    config = _config(
        tmp_path,
        history,
        [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])],
        latency + '\n[venue]\nkind = "paper"\n',
        top="seed = 11\n",
    )
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "300"]) == 0
    events = _events(tmp_path / "journal")
    quotes = [e for e in events if isinstance(e, QuoteReceived)]
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    assert len(submitted) >= 5 and len(quotes) >= 2 * (panel.steps - HISTORY) - 2
    assert [m.venue_seq for m in messages] == list(range(1, len(messages) + 1))
    sent = {m.order_id: m.ts_ns for m in messages if m.kind == "sent"}
    acks = {m.order_id: m.ts_ns for m in messages if m.kind == "ack"}
    fills = [m for m in messages if m.kind == "fill"]
    model = LatencyModel(5 * HOUR_MS, HOUR_MS, 11)
    assert set(sent) == set(submitted) and set(acks) <= set(sent) and len(fills) >= len(acks) - 1
    for order_id, acked in acks.items():
        # learnt of at the first input after send + the drawn delay: the next day's on the
        # venue's clock (daily bars, a delay of five to six hours)
        assert sent[order_id] + model.delay_ns(order_id) < acked <= sent[order_id] + DAY_NS
    for fill in fills:
        order = submitted[fill.order_id]
        due = sent[fill.order_id] + model.delay_ns(fill.order_id)
        # the book as it stood when the order reached the venue: that name's latest quote then
        standing = [q for q in quotes if q.instrument_id == order.instrument_id and q.ts_ns <= due][-1]
        assert fill.px_raw == (standing.ask_px_raw if order.side > 0 else standing.bid_px_raw)
        assert fill.reason == "paper quote taker"
    assert all(q.ask_px_raw > q.bid_px_raw for q in quotes)
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
    days = [e.day for e in events if isinstance(e, DayClosed)]
    for day in (days[HISTORY + 5], days[-1]):
        text = str(day)
        assert main(["replay", str(tmp_path / "journal"), "--day", f"{text[:4]}-{text[4:6]}-{text[6:]}"]) == 0


def test_a_slow_venue_trips_the_latency_kill_switch_measured_from_the_send(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The broker's answers take a day of the venue's clock (the next bar); the kill switch
    allows twelve hours from the send: the first acknowledgement trips it, and the trip — with
    the round trip it observed — is in the journal and replays."""
    full, history = market
    panel, _ = load_panel(full)
    extra = (
        f'latency_ms = {HOUR_MS}\nquotes = true\n\n[venue]\nkind = "paper"\n\n'
        f"[kill_switch]\nlatency_ns_max = {12 * 3600 * 10**9}\n"
    )
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "300"]) == 0
    events = _events(tmp_path / "journal")
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    (trip,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    first_ack = next(m for m in messages if m.kind == "ack")
    sent = next(m for m in messages if m.kind == "sent" and m.order_id == first_ack.order_id)
    assert trip.trigger == "latency" and trip.observed == first_ack.ts_ns - sent.ts_ns > trip.limit
    buys_after = [e for e in events if isinstance(e, OrderSubmitted) and e.ts_ns > trip.ts_ns and e.side > 0]
    assert buys_after == []  # halted: no new risk
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def test_a_name_that_stops_printing_trips_the_kill_switch_through_the_health_watch(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """One name's bars stop for ten days of the live session. On the venue's clock that name
    holds the clock back, so no step runs and no decision looks at its data; the health watch
    at the edge sees it fall behind the other name by more than ``stale_data_ns_max`` and
    journals a halt from ``health``, which trips the kill switch at the next step. The trip is
    in the journal and the session replays."""
    full, history = market
    panel, _ = load_panel(full)
    gappy = tmp_path / "market"
    gappy.mkdir()
    for item in full.iterdir():
        if item.name != "bars.parquet":
            (gappy / item.name).write_bytes(item.read_bytes())
    table = pq.read_table(full / "bars.parquet")
    second = panel.instruments[1].instrument_id
    lo, hi = int(panel.ts_ns[HISTORY + 20]), int(panel.ts_ns[HISTORY + 30])
    gap = pc.and_(
        pc.equal(table["instrument_id"], second),
        pc.and_(pc.greater_equal(table["ts_ns"], lo), pc.less(table["ts_ns"], hi)),
    )
    pq.write_table(table.filter(pc.invert(gap)), gappy / "bars.parquet")
    extra = f"\n[kill_switch]\nstale_data_ns_max = {3 * DAY_NS}\n"
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    assert main(["paper", str(config), "--local-exchange", str(gappy), "--speed", "300"]) == 0
    events = _events(tmp_path / "journal")
    (command,) = [e for e in events if isinstance(e, CommandReceived)]
    assert (command.operator, command.command) == ("health", "halt")
    assert "stale data" in command.note and panel.instruments[1].symbol in command.note
    (trip,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert trip.trigger == "operator" and "stale data" in trip.reason
    # on the held venue clock: after the name's last bar, before its bars came back
    assert lo - DAY_NS <= command.ts_ns < hi and trip.ts_ns >= command.ts_ns
    buys_after = [e for e in events if isinstance(e, OrderSubmitted) and e.ts_ns > trip.ts_ns and e.side > 0]
    assert buys_after == []
    received = [e for e in events if isinstance(e, BarsReceived)]
    assert sum(len(e.instrument_ids) for e in received) == 2 * (panel.steps - HISTORY) - 10
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def test_market_data_drops_are_journaled_as_connection_state_and_replay(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The local exchange drops its websockets every 15 bars: each name's watcher journals the
    drop and its catching up (``VenueConnection``, stream ``market``); the quotes come back
    too, and the session with the paper broker replays."""
    full, history = market
    panel, _ = load_panel(full)
    extra = f'latency_ms = {HOUR_MS}\nquotes = true\n\n[venue]\nkind = "paper"\n'
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    config.write_text(config.read_text().replace("grace_s = 60", f"grace_s = {5 * 86_400}"))
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "40", "--disconnect-every", "15"]
    assert main(argv) == 0
    events = _events(tmp_path / "journal")
    states = [(e.stream, e.state) for e in events if isinstance(e, VenueConnection)]
    assert states.count(("market", "disconnected")) >= 2 and states.count(("market", "reconciled")) >= 2
    assert sum(isinstance(e, QuoteReceived) for e in events) > panel.steps - HISTORY
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def test_with_no_quotes_and_no_latency_the_broker_fills_as_the_bar_simulator(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The broker's bar model at the edge and the kernel's bar simulator, on the same session:
    the same fills (name, side, quantity, price, commission) at the same steps."""
    full, history = market
    panel, _ = load_panel(full)
    span = [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])]
    fills = {}
    for kind in ("sim", "paper"):
        folder = tmp_path / kind
        folder.mkdir()
        config = _config(folder, history, span, f'\n[venue]\nkind = "{kind}"\n')
        assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "300"]) == 0
        fills[kind] = [
            (e.ts_ns, e.instrument_id, e.side, e.fill_qty_raw, e.fill_px_raw, e.commission_minor)
            for e in _events(folder / "journal")
            if isinstance(e, OrderFilled)
        ]
    assert len(fills["sim"]) >= 5 and fills["paper"] == fills["sim"]


def test_the_shipped_paper_broker_config_runs_as_its_comment_says(tmp_path: Path) -> None:
    """``cli/defaults/paper_broker_local.toml``: its header's steps, as a newcomer would type them."""
    shipped = Path(__file__).resolve().parents[2] / "cli" / "defaults" / "paper_broker_local.toml"
    home = tmp_path / "var" / "paper"
    data = home / "data" / "crypto-daily"
    synth = ["synth", str(data), "--symbols", "2", "--bars", "150", "--frequency", "1d"]
    assert main([*synth, "--calendar", "24x7", "--start", "2020-01-01", "--seed", "5"]) == 0
    config = home / "paper_broker_local.toml"
    config.write_text(shipped.read_text())
    assert main(["paper", str(config), "--local-exchange", str(data), "--speed", "100"]) == 0
    events = _events(home / "journals" / "paper_broker_local")
    assert sum(isinstance(e, QuoteReceived) for e in events) > 0
    assert sum(isinstance(e, OrderFilled) for e in events) > 0
    assert not [e for e in events if isinstance(e, KillSwitchTripped)]  # a fast venue, every name printing
    assert main(["replay", str(home / "journals" / "paper_broker_local")]) == 0


def test_refusals_are_one_clear_line(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    span = [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])]
    plain = tmp_path / "plain"
    plain.mkdir()
    without = _config(plain, history, span, "latency_ms = 5\n")  # the broker's key on the bar simulator
    assert main(["paper", str(without), "--local-exchange", str(full)]) == 2
    assert 'read with [venue] kind = "paper" only' in capsys.readouterr().out
    assert not (tmp_path / "journal").exists() and not (plain / "journal").exists()


def test_a_venue_that_does_not_answer_halts_through_the_health_watch(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """The broker takes three days (of the venue's clock) to reach the venue; the kill switch
    allows one from the send. The latency trigger judges an answer when it comes; before it
    does, the health watch sees the order waiting past the limit and journals a halt from
    ``health``, which trips the switch; the session replays."""
    full, history = market
    panel, _ = load_panel(full)
    extra = (
        f'latency_ms = {72 * HOUR_MS}\nquotes = true\n\n[venue]\nkind = "paper"\n\n'
        f"[kill_switch]\nlatency_ns_max = {DAY_NS}\n"
    )
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "300"]) == 0
    events = _events(tmp_path / "journal")
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    first = next(m for m in messages if m.kind == "sent")
    first_ack = next(m for m in messages if m.kind == "ack" and m.order_id == first.order_id)
    (command,) = [e for e in events if isinstance(e, CommandReceived)]
    assert command.operator == "health" and "no answer from the venue" in command.note
    assert first.order_id in command.note and first.ts_ns + DAY_NS < command.ts_ns < first_ack.ts_ns
    (trip,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert trip.trigger == "operator" and trip.ts_ns < first_ack.ts_ns
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def test_heartbeats_are_journaled_round_trips_and_reach_the_metrics(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """``paper.heartbeat_s``: a timed REST round trip to the venue every so often, journaled as
    ``venue.heartbeat.v1``; the metrics fold writes them as ``venue_latency`` source
    ``heartbeat``; the session replays."""
    full, history = market
    panel, _ = load_panel(full)
    extra = "heartbeat_s = 0.05\n"
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "40"]) == 0
    events = _events(tmp_path / "journal")
    beats = [e for e in events if isinstance(e, VenueHeartbeat)]
    assert len(beats) >= 10 and all(b.ok and 0 < b.rtt_ns < 5 * 10**9 for b in beats)
    assert all(b.venue == "binance" for b in beats)
    state = MetricsState()
    with open_journal(tmp_path / "journal") as store:
        points = [p for record in store.records() for p in fold_record(state, record)]
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
    assert state.latency["heartbeat"][0] == len(beats)
    assert any(p.startswith("venue_latency,source=heartbeat ") for p in points)
    # the cockpit's command centre reads them too: the last round trip and how many went unanswered
    asyncio.run(_cockpit_shows_the_last_heartbeat(tmp_path / "journal", beats[-1], len(beats)))


def test_a_heartbeat_over_the_latency_limit_halts_through_the_health_watch(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """``paper.heartbeat_s`` with ``kill_switch.latency_ns_max`` of 1 µs (no round trip is that
    fast): the first heartbeat over it goes in as a journaled halt from ``health`` right after
    the heartbeat, which trips the switch, once; the session replays."""
    full, history = market
    panel, _ = load_panel(full)
    extra = "heartbeat_s = 0.05\n\n[kill_switch]\nlatency_ns_max = 1000\n"
    config = _config(tmp_path, history, [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])], extra)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "40"]) == 0
    events = _events(tmp_path / "journal")
    beats = [e for e in events if isinstance(e, VenueHeartbeat)]
    (command,) = [e for e in events if isinstance(e, CommandReceived)]
    assert command.operator == "health" and command.command == "halt"
    assert command.note == f"heartbeat round trip {beats[0].rtt_ns / 1e6:,.3f} ms over the limit of 0.001 ms"
    assert events.index(command) == events.index(beats[0]) + 1
    (trip,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert trip.trigger == "operator" and "heartbeat round trip" in trip.reason
    with open_journal(tmp_path / "journal") as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


async def _cockpit_shows_the_last_heartbeat(journal: Path, last: VenueHeartbeat, count: int) -> None:
    from textual.widgets import Static

    from cli.cockpit_cmd import cockpit_sources
    from tui import CockpitApp

    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(600):  # 30 s at most
            if app.detail_ready:
                break
            await pilot.pause(0.05)
        stale = str(app.query_one("#cc-stale", Static).render()).replace("\n", " ")
    assert (app.data.overview.heartbeats, app.data.overview.last_heartbeat) == (count, last)
    assert f"round trip {last.rtt_ns / 1e6:,.1f} ms; 0 of {count:,} unanswered" in stale, stale


def test_a_killed_broker_session_resumes_and_replays(market: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL twice, each time carried on with ``tape paper --resume``: the journal re-derives,
    the new broker numbers its messages on from the ones the kernel took, and the orders the
    kernel still held open (in flight or resting at the broker that died) are rejected or
    cancelled; each step arrives once and the finished session replays."""
    full, history = market
    panel, _ = load_panel(full)
    span = [int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])]
    extra = f'latency_ms = {30 * HOUR_MS}\nquotes = true\n\n[venue]\nkind = "paper"\n'
    config = _config(tmp_path, history, span, extra)
    config.write_text(config.read_text().replace("grace_s = 60", f"grace_s = {5 * 86_400}"))
    journal = tmp_path / "journal"
    base = [sys.executable, "-m", "cli.main", "paper", str(config), "--local-exchange", str(full)]
    seen = 0
    for attempt, kill_after in enumerate((15, 45)):
        argv = [*base, "--speed", "15", *(["--resume"] if attempt else [])]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while count_events(journal, BarsReceived) < kill_after and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()
        output, _ = process.communicate(timeout=30)
        bars = count_events(journal, BarsReceived)
        assert bars >= kill_after > seen, output
        seen = bars
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "40", "--resume"]) == 0
    events = _events(journal)
    messages = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    assert [m.venue_seq for m in messages] == list(range(1, len(messages) + 1))
    steps = [e.ts_ns for e in events if isinstance(e, BarsReceived)]
    assert steps == sorted(set(steps)) and len(steps) == panel.steps - HISTORY  # each step once
    restarted = [m for m in messages if "restarted" in m.reason]
    assert all(m.kind in ("reject", "cancelled") and m.ts_ns >= span[0] for m in restarted)
    assert sum(m.kind == "fill" for m in messages) > 0
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
