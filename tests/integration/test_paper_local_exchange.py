"""``tape paper`` against the local exchange (a loopback Binance, through the real ccxt.pro
client): the strategies trade bars as they arrive over the websocket; the session replays bit
for bit from its journal (whole and by day), and its derived events are the backtest's over the
same bars, byte for byte. A second session loses bars on the way (the venue's websocket drops)
and still closes every day, quarantines nothing it should not, and replays."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    INPUT_KINDS,
    BarsReceived,
    CommandReceived,
    DayClosed,
    InputQuarantined,
    KillSwitchTripped,
    OperatorCommanded,
    OrderSubmitted,
    StrategyCommanded,
    TargetsDecided,
)
from kernel.operator_inbox import inbox_path
from kernel.replay import replay
from kernel.store import open_journal
from kernel.stream import refused_bars
from lake.store import load_panel
from tests.factories import count_events, market_and_history, paper_config

DAY_NS = 86_400 * 10**9
HISTORY = 60  # daily bars the strategies warm up on; the other bars arrive live


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The whole market (the local exchange plays it) and its first ``HISTORY`` days."""
    return market_and_history(tmp_path_factory.mktemp("paper"), seed=5, bars=150, history=HISTORY)


def _assert_equals_backtest(config: Path, full: Path, history: Path, panel_day: int, extra: str = "") -> None:
    """The session's derived events are those of a backtest over the whole market that trades
    from the same session day (the bars before it are history), byte for byte."""
    root = config.parent
    day = str(panel_day)
    backtest = root / "backtest.toml"
    backtest.write_text(
        config.read_text()
        .split("[paper]")[0]
        .replace(str(history), str(full))
        .replace(str(root / "journal"), str(root / "bt"))
        + f'\n[window]\nstart = "{day[:4]}-{day[4:6]}-{day[6:]}"\n'
        + extra
    )
    assert main(["backtest", str(backtest)]) == 0
    assert _derived(root / "journal") == _derived(root / "bt")


def _events_of(path: Path, kind: type) -> list[Any]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events() if isinstance(event, kind)]


def _derived(path: Path) -> list[bytes]:
    with open_journal(path) as journal:
        return [record.payload for record in journal.records() if record.kind not in INPUT_KINDS]


def test_a_paper_session_replays_and_equals_the_backtest(market: tuple[Path, Path], tmp_path: Path) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    day = str(int(panel.day[HISTORY]))
    first_day = f"{day[:4]}-{day[4:6]}-{day[6:]}"  # the first live step's session day
    config = paper_config(tmp_path / "paper.toml", history, tmp_path / "journal", start, end)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "400"]) == 0
    with open_journal(tmp_path / "journal") as journal:
        events = [event for _, event in journal.events()]
        assert replay(journal, replay_builder).ok
        days = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (days[HISTORY], days[len(days) // 2 + 30], days[-1]):
            outcome = replay(journal, replay_builder, day=day)
            assert outcome.ok, (day, outcome.divergence)
    received = [e for e in events if isinstance(e, BarsReceived)]
    assert len(received) == panel.steps - HISTORY
    assert sum(len(e.instrument_ids) for e in received) == int(panel.valid[HISTORY:].sum())
    assert all(e.received_ns >= e.ts_ns for e in received)  # stamped on arrival (venue clock)
    assert len(days) == panel.steps - HISTORY and sum(isinstance(e, TargetsDecided) for e in events) > 5
    # The same bars as a backtest that trades from the same day, with the history before it.
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]))
    assert main(["replay", str(tmp_path / "journal"), "--day", first_day]) == 0


def test_a_session_whose_websocket_drops_recovers_and_replays(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every 15 bars the local exchange drops the market websockets: the watchers say so, fetch
    what they missed over REST and watch again. With a grace of five bars (on the venue's
    clock) nothing is lost: the session is still the backtest's, byte for byte, and replays."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    config = paper_config(
        tmp_path / "paper.toml", history, tmp_path / "journal", start, end, grace_s=5 * 86_400
    )
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "40", "--disconnect-every", "15"]
    assert main(argv) == 0
    with open_journal(tmp_path / "journal") as journal:
        events = [event for _, event in journal.events()]
        outcome = replay(journal, replay_builder)
        assert outcome.ok, outcome.divergence
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    received = sum(len(e.instrument_ids) for e in events if isinstance(e, BarsReceived))
    assert received == int(panel.valid[HISTORY:].sum())
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]))


def test_an_operator_halts_a_running_session(market: tuple[Path, Path], tmp_path: Path) -> None:
    """``tape command JOURNAL halt`` while the session runs: the session journals the command as
    it reads it (with a line that is not a command, refused with its reason), the kill switch
    trips at the next step, no buy follows; the session replays, and equals a backtest that
    schedules the same halt at the step the session applied it."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    journal = tmp_path / "journal"
    config = paper_config(tmp_path / "paper.toml", history, journal, start, end, grace_s=5 * 86_400)

    sent: list[int] = []

    def operator() -> None:
        deadline = time.monotonic() + 60
        while count_events(journal, BarsReceived) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)  # the session is under way
        with inbox_path(journal).open("a") as inbox:
            inbox.write("not a command\n")
        sent.append(main(["command", str(journal), "halt", "--operator", "ana", "--note", "drill"]))

    thread = threading.Thread(target=operator)
    thread.start()
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "40"]) == 0
    thread.join()
    assert sent == [0]
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
    (received,) = [e for e in events if isinstance(e, CommandReceived)]
    (applied,) = [e for e in events if isinstance(e, OperatorCommanded)]
    (refused,) = [e for e in events if isinstance(e, InputQuarantined)]
    assert (received.command, received.operator, received.note) == ("halt", "ana", "drill")
    assert refused.reason == "BAD_COMMAND" and "not a command" in refused.detail
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert tripped and tripped[0].trigger == "operator" and tripped[0].ts_ns == applied.ts_ns
    assert not [e for e in events if isinstance(e, OrderSubmitted) and e.ts_ns > applied.ts_ns and e.side > 0]
    at = datetime.fromtimestamp(applied.ts_ns / 1e9, UTC).isoformat()
    halt = f'\n[[operator_commands]]\nat = "{at}"\ncommand = "halt"\noperator = "ana"\nnote = "drill"\n'
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]), halt)


def test_an_operator_pauses_and_resumes_the_strategy(market: tuple[Path, Path], tmp_path: Path) -> None:
    """``tape command JOURNAL pause --strategy sma`` then ``resume``: no decision between the two
    steps they apply at; the session replays and equals a backtest scheduling both there."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    journal = tmp_path / "journal"
    config = paper_config(tmp_path / "paper.toml", history, journal, start, end, grace_s=5 * 86_400)
    sent: list[int] = []

    def operator() -> None:
        for bars, command in ((10, "pause"), (45, "resume")):
            deadline = time.monotonic() + 60
            while count_events(journal, BarsReceived) < bars and time.monotonic() < deadline:
                time.sleep(0.02)
            sent.append(main(["command", str(journal), command, "--strategy", "sma", "--operator", "ana"]))

    thread = threading.Thread(target=operator)
    thread.start()
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "30"]) == 0
    thread.join()
    assert sent == [0, 0]
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
        assert replay(store, replay_builder).ok
    pause, resume = [e for e in events if isinstance(e, StrategyCommanded)]
    assert (pause.command, resume.command) == ("pause", "resume") and pause.ts_ns < resume.ts_ns
    decided = [e.ts_ns for e in events if isinstance(e, TargetsDecided)]
    assert not [ts for ts in decided if pause.ts_ns <= ts < resume.ts_ns]
    scheduled = "".join(
        f'\n[[operator_commands]]\nat = "{datetime.fromtimestamp(e.ts_ns / 1e9, UTC).isoformat()}"\n'
        f'command = "{e.command}"\nstrategy = "sma"\noperator = "ana"\n'
        for e in (pause, resume)
    )
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]), scheduled)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_session_and_what_arrived_replays(
    market: tuple[Path, Path], tmp_path: Path, stop: signal.Signals, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C or SIGTERM mid-session: exit 130 with one line saying where it stopped, no
    traceback; the journal holds what arrived and replays (an unfinished run: exit 3)."""
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = paper_config(
        tmp_path / "paper.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    )
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "10"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while count_events(journal, BarsReceived) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # start-up, then ten bars a second
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output and f"stopped ({stop.name})" in output
    with open_journal(journal) as store:
        bars = sum(1 for _, event in store.events() if isinstance(event, BarsReceived))
        outcome = replay(store, replay_builder)
    assert 0 < bars < panel.steps - HISTORY, output
    assert outcome.ok and outcome.unfinished
    assert main(["replay", str(journal)]) == 3
    # Carried on: the venue's updates are this process's, the kernel's count the whole session,
    # and the summary says which is which (it said "bars from the venue: 174 updates; to the
    # kernel: 180 received", as if 6 bars came from nowhere).
    before = sum(len(e.instrument_ids) for e in _events_of(journal, BarsReceived))
    capsys.readouterr()
    summary = tmp_path / "summary.json"
    resumed = ["paper", str(config), "--local-exchange", str(full), "--speed", "100", "--resume"]
    assert main([*resumed, "--json", str(summary)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "bars from the venue since this resume: " in said, said
    assert "to the kernel over the whole session: " in said, said
    document = json.loads(summary.read_text())
    updates = document["bars"]["updates"] - document["bars"]["superseded"] - document["bars"]["waiting"]
    assert before + updates == document["kernel"]["received"] == int(panel.valid[HISTORY:].sum())


def test_refusals_are_clear(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    config = paper_config(
        tmp_path / "paper.toml", history, tmp_path / "journal", int(panel.ts_ns[HISTORY]), 0
    )
    assert main(["paper", str(config)]) == 2
    assert "paper.end" in capsys.readouterr().out
    plain = tmp_path / "plain.toml"
    plain.write_text(config.read_text().split("[paper]")[0])
    assert main(["paper", str(plain)]) == 2
    assert "no [paper] table" in capsys.readouterr().out


def test_a_session_killed_and_resumed_is_the_backtest(market: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL at three points of a session, each time carried on with ``tape paper --resume``:
    the fresh kernel re-derives the journal byte for byte and appends what the crash cut off;
    no bar is applied twice (bars the venue sends again are quarantined); the finished session
    replays and equals the backtest over the same bars."""
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = paper_config(
        tmp_path / "paper.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]),
        grace_s=5 * 86_400,
    )  # fmt: skip
    base = [
        sys.executable,
        "-m",
        "cli.main",
        "paper",
        str(config),
        "--local-exchange",
        str(full),
        "--speed",
        "15",
    ]
    seen = 0
    for attempt, kill_after in enumerate((8, 30, 55)):
        argv = base + (["--resume"] if attempt else [])
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
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
        outcome = replay(store, replay_builder)
    assert outcome.ok, outcome.divergence
    steps = [e.ts_ns for e in events if isinstance(e, BarsReceived)]
    assert steps == sorted(set(steps)) and len(steps) == panel.steps - HISTORY  # each step once
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]))


def test_bars_the_venue_sends_out_of_order_are_counted_not_dropped(
    market: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local exchange holds two steps' klines and sends them reversed (each name's newer bar
    before its older one). The older bars reach the session after the newer: each is taken (its
    step still open) or quarantined with a reason (its step went), never dropped unseen: the
    venue's updates all count, ``received = accepted + quarantined`` covers them, and the
    session replays. (The session dropped a bar older than the newest it had seen: the summary
    counted two updates fewer than the venue sent and quarantined nothing.)"""
    import venues.local_exchange as local

    class Reordering(local.LocalExchange):  # the loopback server with its reorder fault armed mid-run
        played = 0

        async def step(self, count: int = 1) -> list[Any]:
            Reordering.played += 1
            if Reordering.played == 10:
                self.faults.reorder_next("market", 4)  # this step's two klines and the next's
            return await super().step(count)

    monkeypatch.setattr(local, "LocalExchange", Reordering)
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    config = paper_config(
        tmp_path / "paper.toml", history, tmp_path / "journal", start, end, grace_s=5 * 86_400
    )
    summary = tmp_path / "summary.json"
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "40", "--json", str(summary)]
    assert main(argv) == 0
    sent = int(panel.valid[HISTORY:].sum())
    document = json.loads(summary.read_text())
    bars, kernel = document["bars"], document["kernel"]
    assert bars["updates"] == sent  # every kline the venue sent is counted
    assert kernel["received"] + bars["superseded"] + bars["waiting"] == sent
    assert kernel["received"] == kernel["accepted"] + sum(kernel["quarantined"].values())
    assert set(kernel["quarantined"]) <= {"OUT_OF_ORDER", "DUPLICATE"}
    with open_journal(tmp_path / "journal") as journal:
        events = [event for _, event in journal.events()]
        outcome = replay(journal, replay_builder)
        assert outcome.ok, outcome.divergence
    accepted = sum(len(e.instrument_ids) for e in events if isinstance(e, BarsReceived))
    quarantined = [e for e in events if isinstance(e, InputQuarantined)]
    assert accepted + sum(refused_bars(e) for e in quarantined) == kernel["received"] == sent
    assert all(e.reason in {"OUT_OF_ORDER", "DUPLICATE"} and e.detail for e in quarantined)


def test_a_step_whose_bars_come_after_the_next_steps_inside_the_grace_fills_its_step(
    market: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: the local exchange holds one step's klines and sends them after the next step's (half
    a second later: on the venue's clock a bar late, inside the grace of five bars). The next
    step was complete, so it went first, and the held bars, in time, were quarantined
    (``OUT_OF_ORDER``): the session had a bar fewer than the backtest and traded otherwise. Now
    the next step waits for the earlier one: nothing is quarantined and the session is the
    backtest, byte for byte."""
    import venues.local_exchange as local

    class Holding(local.LocalExchange):  # the loopback server holding one step's klines a while
        played = 0

        async def step(self, count: int = 1) -> list[Any]:
            Holding.played += 1
            if Holding.played == 10:
                self.faults.reorder_next("market", 4)  # held: this step's two klines (of four)
            if Holding.played != 11:
                return await super().step(count)
            held = list(self.faults.held["market"])
            self.faults.held["market"].clear()
            self.faults.reorder["market"] = 0
            results = await super().step(count)  # the next step's klines go first
            await asyncio.sleep(0.5)  # and the session has them
            self.faults.held["market"].extend(held)
            await self.flush_held()
            return results

    monkeypatch.setattr(local, "LocalExchange", Holding)
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    config = paper_config(
        tmp_path / "paper.toml", history, tmp_path / "journal", start, end, grace_s=5 * 86_400
    )
    summary = tmp_path / "summary.json"
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "40", "--json", str(summary)]
    assert main(argv) == 0
    assert Holding.played > 11
    kernel = json.loads(summary.read_text())["kernel"]
    assert kernel["quarantined"] == {} and kernel["received"] == int(panel.valid[HISTORY:].sum()), kernel
    with open_journal(tmp_path / "journal") as journal:
        steps = [e.ts_ns for _, e in journal.events() if isinstance(e, BarsReceived)]
        assert replay(journal, replay_builder).ok
    assert steps == sorted(steps) and len(steps) == panel.steps - HISTORY
    _assert_equals_backtest(config, full, history, int(panel.day[HISTORY]))
