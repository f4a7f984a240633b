"""The cockpit's operator commands reach a running paper session: with ``tape paper`` writing
the journal (against the local exchange, in another process), the commands screen turns halt /
flatten / rearm on; pressing halt sends it through the session's inbox, the session journals it
as it arrives and the kill switch trips at its next step; the session then replays. Once the
session has ended the buttons are off again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from cli.cockpit_cmd import cockpit_sources
from cli.wiring import replay_builder
from domain.events import BarsReceived, CommandReceived, KillSwitchTripped, OperatorCommanded
from kernel.operator_inbox import SessionClaim, inbox_path, running_session, session_path
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import load_panel
from lake.synth import synth_dataset
from tests.factories import count_events, make_config, make_dataset, paper_config, run
from tui import CockpitApp, CockpitSources
from tui.confirm import ConfirmScreen


@pytest.mark.asyncio
async def test_halt_from_the_cockpit_reaches_the_running_session(tmp_path: Path) -> None:
    data = tmp_path / "market"
    synth_dataset(data, seed=5, symbols=2, bars=150, frequency="1d", calendar="24x7", start="2021-01-01")
    journal = tmp_path / "journal"
    panel, _ = load_panel(data)
    config = paper_config(
        tmp_path / "paper.toml", data, journal, int(panel.ts_ns[60]), int(panel.ts_ns[-1]), 432000
    )
    argv = ["paper", str(config), "--local-exchange", str(data), "--speed", "8"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (
            running_session(journal) is None or count_events(journal, BarsReceived) < 5
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert running_session(journal) == process.pid
        app = CockpitApp(cockpit_sources(journal, follow=True, poll_interval_s=0.2))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("8")
            await pilot.pause(0.5)
            halt = app.query_one("#cmd-halt", Button)
            for _ in range(50):  # the pane is drawn again on a refresh: later than 0.5 s on a loaded CI
                if not halt.disabled:
                    break
                await pilot.pause(0.2)
            assert not halt.disabled and str(halt.label) == "halt"
            assert not app.query_one("#cmd-pause", Button).disabled
            assert app.query_one("#cmd-acknowledge", Button).disabled
            await pilot.click("#cmd-halt")
            await pilot.pause(0.2)
            assert isinstance(app.screen, ConfirmScreen)  # asked first
            await pilot.press("y")
            await pilot.pause(0.2)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "operator" in output and "halt" in output
    assert not session_path(journal).exists() and running_session(journal) is None
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
        outcome = replay(store, replay_builder)
    assert outcome.ok, outcome.divergence
    (received,) = [e for e in events if isinstance(e, CommandReceived)]
    (applied,) = [e for e in events if isinstance(e, OperatorCommanded)]
    assert received.command == applied.command == "halt" and received.note == "from the cockpit"
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert tripped and tripped[0].trigger == "operator"


class RecordingSender:
    """A session that is running and records what reaches its inbox."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def running(self) -> bool:
        return True

    def send(self, command: str, note: str, strategy: str = "") -> str:
        self.sent.append((command, note, strategy))
        return f"{command} sent"

    def refusal(self, command: str, strategy: str = "") -> str | None:
        return None


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_an_operator_command_is_sent_only_once_confirmed(tmp_path: Path, size: tuple[int, int]) -> None:
    """Each command button asks first, saying what the command does to the session (flatten
    closes the book): y sends it, n or escape sends nothing. A click used to send at once."""
    journal = run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=60), tmp_path / "j")).journal
    sender = RecordingSender()
    app = CockpitApp(CockpitSources(journal=journal, commands=sender, follow=False))

    async def press_button(pilot: Pilot[None], command: str) -> str:
        app.query_one(f"#cmd-{command}", Button).press()
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen), f"{command} was not asked for"
        return str(app.screen.query_one("#confirm-text", Static).render())

    async with app.run_test(size=size) as pilot:
        await pilot.press("8")
        await pilot.pause(0.2)
        question = await press_button(pilot, "flatten")
        assert "flatten" in question and str(journal) in question and "close every position" in question
        await pilot.press("n")
        await pilot.pause(0.1)
        assert sender.sent == [] and app.status_line == "flatten not sent"
        await press_button(pilot, "halt")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert sender.sent == []
        await press_button(pilot, "halt")
        await pilot.press("y")
        await pilot.pause(0.1)
        assert sender.sent == [("halt", "from the cockpit", "")] and app.status_line == "halt sent"
        app.query_one("#cmd-strategy", Input).value = "sma"
        question = await press_button(pilot, "pause")
        assert "pause sma" in question and "'sma' takes no decisions" in question
        await pilot.press("y")
        await pilot.pause(0.1)
        assert sender.sent[-1] == ("pause", "from the cockpit", "sma")
        assert app.screen is app.screen_stack[0]


@pytest.mark.asyncio
async def test_a_commands_answer_stays_on_the_status_line_while_the_journal_grows(tmp_path: Path) -> None:
    """Following a session, each poll that brought records wrote "following: N records" over the
    status line: "halt sent" (or "halt not sent: ...") was gone within one poll interval, so the
    operator of a running session never saw the answer. It now stays in front of the count."""
    source = run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=60), tmp_path / "j")).journal
    with open_journal(source) as store:
        events = [event for _, event in store.events()]
    growing = tmp_path / "growing.sqlite"
    writer = open_journal(growing, writable=True)
    half = len(events) // 2
    for event in events[:half]:
        writer.append(event)
    writer.commit()
    sender = RecordingSender()
    app = CockpitApp(CockpitSources(journal=growing, commands=sender, follow=True, poll_interval_s=0.05))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(200):
                if app.detail_ready:
                    break
                await pilot.pause(0.05)
            await pilot.press("8")
            app.query_one("#cmd-halt", Button).press()
            await pilot.pause(0.1)
            await pilot.press("y")
            await pilot.pause(0.1)
            assert sender.sent == [("halt", "from the cockpit", "")]
            for event in events[half:]:
                writer.append(event)
            writer.commit()
            for _ in range(200):
                if app.data.overview.records == len(events):
                    break
                await pilot.pause(0.05)
            await pilot.pause(0.2)
            assert app.status_line == f"halt sent  |  following: {len(events):,} records"
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_a_pause_of_no_strategy_of_the_book_is_refused_before_it_is_asked(tmp_path: Path) -> None:
    """A pause / resume naming no strategy of the running session's book was asked first
    ("Send pause nosuch to the session ...?") and refused only once the operator pressed y; it
    is refused at once now, in the words ``tape command`` uses, and nothing reaches the inbox. A
    strategy of the book is still asked first."""
    journal = run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=60), tmp_path / "j")).journal
    claim = SessionClaim(journal)  # a running session's mark, as the session leaves it
    claim.mark(os.getpid(), ["sma", "momentum"])
    try:
        app = CockpitApp(cockpit_sources(journal, follow=False))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("8")
            await pilot.pause(0.2)
            for command in ("pause", "resume"):
                app.query_one("#cmd-strategy", Input).value = "nosuch"
                app.query_one(f"#cmd-{command}", Button).press()
                await pilot.pause(0.1)
                assert app.screen is app.screen_stack[0], f"{command} nosuch was asked for"
                assert app.status_line == (
                    f"{command} not sent: 'nosuch' is no strategy of the running session's book: "
                    "it trades sma, momentum"
                )
            app.query_one("#cmd-strategy", Input).value = "momentum"
            app.query_one("#cmd-pause", Button).press()
            await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmScreen)  # a strategy of the book: asked first
            await pilot.press("n")
            await pilot.pause(0.1)
        assert not inbox_path(journal).exists()
    finally:
        claim.release()
