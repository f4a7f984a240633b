"""The cockpit driven by Textual's Pilot at 100x30 on seeded backtest journals: what each
screen shows, checked against the journal and the report's folds."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Footer, Input, Sparkline, Static, TabbedContent

from cli.cockpit_cmd import cockpit_sources
from domain.events import (
    CurrenciesMarked,
    DayClosed,
    Event,
    InstrumentsDefined,
    KernelSnapshot,
    OrderFilled,
    StateSnapshotted,
)
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.fx import to_base_minor
from domain.riskrules import KillSwitchConfig
from kernel.store import open_journal
from sim.execution_report import execution_report
from sim.metrics import report_from_journal
from tests.factories import (
    CNY_NAME,
    USD_NAME,
    forge_journal,
    make_config,
    make_dataset,
    run,
    two_currency_run,
)
from tui import COMMANDS_DISABLED_REASON, CockpitApp, CockpitSources
from tui.daytape import read_day_tape
from tui.format import day_text, money, pct_e8
from tui.tail import parse_jump

SIZE = (100, 30)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cockpit")
    dataset = make_dataset(root / "data", symbols=4, bars=300)
    return run(make_config(dataset, root / "journal")).journal


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Minute bars (1,440 steps a day on the 24x7 calendar): days with steps to step through."""
    root = tmp_path_factory.mktemp("minutes")
    dataset = make_dataset(root / "data", symbols=3, bars=1440 * 4, frequency="1m")
    return run(make_config(dataset, root / "journal", params={"fast": 3, "slow": 8, "weight": 0.9})).journal


@pytest.fixture(scope="module")
def tripped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose kill switch trips on a 1% drawdown and flattens the book."""
    root = tmp_path_factory.mktemp("tripped")
    dataset = make_dataset(root / "data", symbols=4, bars=300)
    kill = KillSwitchConfig(drawdown_max_e8=1_000_000, flatten_on_trip=True)
    return run(make_config(dataset, root / "journal.sqlite", kill_switch=kill)).journal


def text(app: CockpitApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def rows(app: CockpitApp, selector: str) -> list[dict[str, str]]:
    """The table's rows as {column label: cell text} (the columns shown depend on the width)."""
    table = app.query_one(selector, DataTable)
    labels = [str(column.label) for column in table.columns.values()]
    return [
        dict(zip(labels, map(str, table.get_row_at(index)), strict=True)) for index in range(table.row_count)
    ]


async def until(pilot: Pilot[None], condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "the cockpit did not get there in time"
        await pilot.pause(0.05)


Scenario = Callable[[CockpitApp, Pilot[None]], Awaitable[None]]


async def drive(sources: CockpitSources, scenario: Scenario) -> None:
    app = CockpitApp(sources)
    async with app.run_test(size=SIZE) as pilot:
        data = app.data
        await until(pilot, lambda: app.detail_ready and None not in (data.summary, data.execution))
        await scenario(app, pilot)


def events_of(path: Path) -> list[tuple[int, Event]]:
    with open_journal(path) as handle:
        return list(handle.events())


def closes(path: Path) -> list[DayClosed]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events() if isinstance(event, DayClosed)]


@pytest.mark.asyncio
async def test_command_centre_shows_nav_drawdown_exposure_kill_switch_and_verdicts(journal: Path) -> None:
    last = closes(journal)[-1]
    with open_journal(journal) as handle:
        report = report_from_journal(handle)

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        head = text(app, "#cc-head")
        assert f"NAV {money(last.nav_minor, 'USD')}" in head
        assert "finished" in head
        assert f"{report.days:,} session days" in head
        assert f"max {-report.max_drawdown:.2%}" in head  # the report's drawdown, negative as it prints it
        assert report.max_drawdown > 0
        risk = text(app, "#cc-risk")
        assert f"gross exposure {money(last.gross_exposure_minor, 'USD')}" in risk
        assert "limit 150.00%" in risk  # gross_leverage of the journaled policy
        assert "kill switch ARMED" in text(app, "#cc-kill")
        assert "never tripped" in text(app, "#cc-kill")
        assert "data: 1d bars" in text(app, "#cc-stale")
        verdicts = rows(app, "#verdicts")
        assert verdicts
        assert all("clip" in row["verdict"] for row in verdicts)  # acting verdicts first
        summary = text(app, "#cc-summary")
        assert "Sharpe (rf = 0)" in summary
        assert f"{report.final_nav:,.2f} USD" in summary

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_orders_funnel_blotter_filter_and_execution_quality(journal: Path) -> None:
    with open_journal(journal) as handle:
        report = report_from_journal(handle)
        quality = execution_report(handle)

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("2")
        funnel = text(app, "#funnel")
        assert f"submitted {report.orders:,}" in funnel
        assert f"filled {report.fills:,}" in funnel
        assert "rejections by reason: none" in funnel
        blotter = rows(app, "#blotter")
        assert len(blotter) == report.orders
        assert blotter[0]["order"] > blotter[-1]["order"]  # newest first
        await pilot.press("slash")
        await pilot.press(*"side:sell", "enter")
        sells = rows(app, "#blotter")
        assert sells
        assert all(row["side"] == "sell" for row in sells)
        assert len(sells) < len(blotter)
        shown = text(app, "#quality").splitlines()
        total = next(line for line in shown if line.startswith("total "))
        assert total.split()[1] == f"{quality.total.parents:,}"
        assert money(quality.total.shortfall_decision_minor, "USD") in total

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_why_walks_a_fill_back_to_its_order_verdicts_and_decision(journal: Path) -> None:
    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("2")
        app.query_one("#blotter", DataTable).focus()
        await pilot.press("w")
        await until(pilot, lambda: app.query_one("#why-table", DataTable).row_count > 0)
        chain = rows(app, "#why-table")
        roles = [row["role"] for row in chain]
        assert roles[0] == "decision"
        assert "verdict" in roles
        assert roles.index("order") > roles.index("verdict")
        kinds = [row["kind"] for row in chain]
        assert kinds[0] == "strategy.targets_decided.v1"
        assert "order.filled.v1" in kinds
        seqs = [int(row["seq"]) for row in chain]
        assert seqs == sorted(seqs)
        with open_journal(journal) as handle:  # every link is the journal's event at that seq
            for row in chain:
                assert handle.record(int(row["seq"])).kind == row["kind"]
        order_id = rows(app, "#blotter")[0]["order"]
        assert order_id in text(app, "#why-head")
        assert "seq" in text(app, "#why-event")
        assert "strategy_id: 'sma'" in text(app, "#why-event")

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_positions_match_the_kernel_snapshot_and_the_day_close(journal: Path) -> None:
    with open_journal(journal) as handle:
        snapshot = [e for _, e in handle.events() if isinstance(e, StateSnapshotted)][-1].snapshot
    last = closes(journal)[-1]

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("3")
        await until(pilot, lambda: app.data.marks is not None)
        table = rows(app, "#positions-table")
        held = [p for p in snapshot.positions if p.qty_raw]
        assert [row["qty"] for row in table] == [f"{p.qty_raw:,}" for p in held]
        values = [int(row["value"].replace(" USD", "").replace(",", "").replace(".", "")) for row in table]
        assert sum(values) == last.gross_exposure_minor  # marked as the kernel marked its close
        assert all(row["weight/limit"].endswith("/10.00%") for row in table)  # weight against the name limit
        assert "marked at the day's last closes" in text(app, "#positions-head")
        app.query_one("#positions-table", DataTable).focus()
        await pilot.press("w")
        await until(pilot, lambda: app.query_one("#why-table", DataTable).row_count > 0)
        assert "fill" in [row["role"] for row in rows(app, "#why-table")]
        assert "position SYN" in text(app, "#why-head")

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_journal_tail_filters_jumps_and_explains_a_fill(journal: Path) -> None:
    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#tail", DataTable).row_count > 0)
        assert rows(app, "#tail")[-1]["kind"] == "run.finished.v1"
        app.query_one("#tail-filter").value = "kind:filled instrument:SYN0002"  # type: ignore[attr-defined]
        await pilot.press("slash", "enter")
        await until(pilot, lambda: "instrument:SYN0002" in text(app, "#tail-head"))
        fills = rows(app, "#tail")
        assert fills
        assert all(row["kind"] == "order.filled.v1" and "SYN0002" in row["event"] for row in fills)
        await pilot.press("w")
        await until(pilot, lambda: app.query_one("#why-table", DataTable).row_count > 0)
        assert [row["seq"] for row in rows(app, "#why-table") if row["role"] == "fill"] == [fills[0]["seq"]]
        await pilot.press("5", "g")
        app.query_one("#tail-filter").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"100", "enter")
        await until(pilot, lambda: "from seq 100" in text(app, "#tail-head"))
        assert rows(app, "#tail")[0]["seq"] == "100"
        # a time: the first record at or after it (the 50th day close's time, to the second)
        close = closes(journal)[50]
        when = datetime.fromtimestamp(close.ts_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        seq_input = app.query_one("#tail-seq")
        seq_input.value = when  # type: ignore[attr-defined]
        seq_input.focus()
        await pilot.press("enter")
        with open_journal(journal) as handle:
            first = next(r.seq for r in handle.records(0) if r.ts_ns >= close.ts_ns // 10**9 * 10**9)
        await until(pilot, lambda: f"from seq {first:,}" in text(app, "#tail-head"))
        seq_input.value = "next tuesday"  # type: ignore[attr-defined]
        seq_input.focus()
        await pilot.press("enter")
        await until(pilot, lambda: "neither a sequence number nor a time" in app.status_line)

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_replay_a_day_beside_the_journal(journal: Path) -> None:
    day = closes(journal)[150].day

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("6", "slash")
        await pilot.press(*f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}", "enter")
        await until(pilot, lambda: "replay matched" in text(app, "#replay-verdict"), 60)
        assert f"journal {day_text(day)}: seq " in text(app, "#replay-journal")
        assert "re-derived byte for byte" in text(app, "#replay-verdict")

    await drive(cockpit_sources(journal, follow=False), scenario)


def snapshots(path: Path) -> dict[int, tuple[int, StateSnapshotted]]:
    with open_journal(path) as handle:
        return {e.day: (seq, e) for seq, e in handle.events() if isinstance(e, StateSnapshotted)}


def test_a_day_tape_is_the_journals_book_not_a_recomputed_one(minutes: Path) -> None:
    """Every day: the book folded from the kernel's opening snapshot and the journal's postings
    and fills is the kernel's next snapshot, and marked at the day close it is the journaled NAV."""
    days = snapshots(minutes)
    with open_journal(minutes) as handle:
        marks = cockpit_sources(minutes).marks(handle)  # type: ignore[misc]
        events = dict(handle.events())
        instruments = {i.instrument_id: i for e in events.values() if isinstance(e, InstrumentsDefined)
                       for i in e.instruments}  # fmt: skip
        day_closes = [(seq, e) for seq, e in events.items() if isinstance(e, DayClosed)]
        assert len(day_closes) >= 3
        for seq, close in day_closes:
            tape = read_day_tape(handle, close.day, instruments, "USD")
            assert tape.start_seq <= seq < tape.start_seq + len(tape)
            index = tape.index_of(seq)
            assert index is not None
            assert tape.nav_minor(tape.book_at(index), tape.prices_at(index, marks)) == close.nav_minor
            snapshot = days[close.day][1].snapshot
            assert tape.closing.quantities == {
                p.instrument_id: p.qty_raw for p in snapshot.positions if p.qty_raw
            }
            held = {p.instrument_id: p.cost_minor for p in snapshot.positions if p.qty_raw}
            assert {line.instrument_id: line.cost_minor for line in tape.lines(tape.closing, None)} == held
            assert tape.cash_minor(tape.closing) == next(
                b.amount_minor for b in snapshot.balances if b.account == "assets:cash:USD"
            )
            assert tape.book_at(len(tape) - 1) == tape.closing  # the checkpoints refold the same book
        assert sum(
            len(read_day_tape(handle, c.day, instruments, "USD").step_starts) > 1 for _, c in day_closes
        )


@pytest.mark.asyncio
async def test_replay_steps_through_a_day_with_the_book_after_each_record(minutes: Path) -> None:
    """``tape cockpit JOURNAL --day D``: the replay screen opens on D; n / p move a record,
    ] / [ a kernel step, { / } to the day's opening / last record; the book shown is the
    kernel's snapshot before D at the opening, its snapshot of D at the end, and the journaled
    NAV at the day close; a fresh replay matches."""
    days = snapshots(minutes)
    close_seq, close = [(seq, e) for seq, e in events_of(minutes) if isinstance(e, DayClosed)][2]
    opening = days[max(d for d in days if d < close.day)][1].snapshot
    closing = days[close.day][1].snapshot

    def held(snapshot: KernelSnapshot) -> list[str]:
        return [f"{p.qty_raw:,}" for p in snapshot.positions if p.qty_raw]

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.data.tape is not None and app.data.marks is not None)
        await until(pilot, lambda: "replay matched" in text(app, "#replay-verdict"), 60)
        assert app.query_one("#tabs", TabbedContent).active == "replay"
        tape = app.data.tape
        assert tape is not None
        assert "at the opening" in text(app, "#replay-cursor")
        assert [row["qty"] for row in rows(app, "#replay-positions")] == held(opening)
        assert "PnL today 0.00 USD" in text(app, "#replay-book")  # marked as the last close was
        assert f"seq {close_seq:,}, step " in text(app, "#replay-journal")
        await pilot.press("n")
        assert f"record 1/{len(tape):,}" in text(app, "#replay-cursor")
        assert f"seq {tape.start_seq:,}" in text(app, "#replay-cursor")
        await pilot.press("right_square_bracket")
        assert f"step 2/{len(tape.step_starts)}" in text(app, "#replay-cursor")
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert "at the opening" in text(app, "#replay-cursor")
        await pilot.press(*["right_square_bracket"] * 5)
        assert f"step 5/{len(tape.step_starts)}" in text(app, "#replay-cursor")
        await pilot.press("left_curly_bracket")
        assert "at the opening" in text(app, "#replay-cursor")
        await pilot.press("right_curly_bracket")
        assert f"record {len(tape):,}/{len(tape):,}" in text(app, "#replay-cursor")
        assert [row["qty"] for row in rows(app, "#replay-positions")] == held(closing)
        for _ in range(tape.start_seq + len(tape) - 1 - close_seq):
            await pilot.press("p")
        assert "day.closed.v1" in text(app, "#replay-cursor")
        assert f"NAV {money(close.nav_minor, 'USD')}" in text(app, "#replay-book")

    sources = cockpit_sources(minutes, follow=False, replay_day=close.day)
    app = CockpitApp(sources)
    async with app.run_test(size=SIZE) as pilot:
        await scenario(app, pilot)


@pytest.mark.asyncio
async def test_a_divergent_day_names_the_seq_with_both_events_decoded(journal: Path, tmp_path: Path) -> None:
    """A forged fill (re-chained, so only a replay can tell): the verdict names its seq with
    the journal's and the replay's events decoded, and the cursor stops on that record."""
    fill_seq, fill = next((seq, e) for seq, e in events_of(journal)
                          if isinstance(e, OrderFilled) and seq > 1000)  # fmt: skip
    day = next(d for d, (seq, _) in sorted(snapshots(journal).items()) if seq > fill_seq)
    forge_journal(journal, tmp_path / "forged", fill_seq, {"fill_px_raw": fill.fill_px_raw + 1})

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "replay diverged" in text(app, "#replay-verdict"), 60)
        await until(pilot, lambda: f"seq {fill_seq:,}" in text(app, "#replay-cursor"))
        verdict = text(app, "#replay-verdict").replace("\n", " ")
        assert f"at seq {fill_seq:,}" in verdict
        assert f"fill_px_raw: {fill.fill_px_raw + 1}" in verdict  # the journal's (forged) event
        assert f"fill_px_raw: {fill.fill_px_raw}" in verdict  # the fresh kernel's
        assert verdict.count("order.filled.v1") == 2

    app = CockpitApp(cockpit_sources(tmp_path / "forged", follow=False, replay_day=day))
    async with app.run_test(size=SIZE) as pilot:
        await scenario(app, pilot)


@pytest.mark.asyncio
async def test_commands_are_disabled_with_the_reason_and_help_lists_the_keys(journal: Path) -> None:
    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("8")
        assert text(app, "#commands-reason") == COMMANDS_DISABLED_REASON
        assert "No session is writing this journal" in COMMANDS_DISABLED_REASON
        buttons = list(app.query(Button))
        assert {b.id for b in buttons} >= {"cmd-halt", "cmd-flatten", "cmd-rearm", "cmd-acknowledge"}
        assert all(button.disabled for button in buttons)
        await pilot.press("7")
        assert "content hash" in text(app, "#data-health")
        assert "tape health" in text(app, "#data-health")
        await pilot.press("question_mark")
        assert "why this row" in str(app.screen.query_one("#help-text", Static).render())
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_a_tripped_kill_switch_and_a_flattening_order_explained(tripped: Path) -> None:
    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        kill = text(app, "#cc-kill")
        assert "kill switch HALTED" in kill
        assert "last trip seq" in kill
        assert "drawdown observed" in kill
        await pilot.press("2", "slash")
        await pilot.press(*"strategy:kill", "enter")
        assert rows(app, "#blotter")
        await pilot.press("w")
        await until(pilot, lambda: app.query_one("#why-table", DataTable).row_count > 0)
        chain = rows(app, "#why-table")
        assert (chain[0]["role"], chain[0]["kind"]) == ("trip", "killswitch.tripped.v1")

    await drive(cockpit_sources(tripped, follow=False), scenario)


@pytest.mark.asyncio
async def test_following_a_journal_that_grows(journal: Path, tmp_path: Path) -> None:
    """Another writer appends while the cockpit polls: the screens catch up without a reload."""
    with open_journal(journal) as source:
        events = [event for _, event in source.events()]
    growing = tmp_path / "growing.sqlite"
    writer = open_journal(growing, writable=True)
    half = len(events) // 2
    for event in events[:half]:
        writer.append(event)
    writer.commit()
    app = CockpitApp(CockpitSources(journal=growing, follow=True, poll_interval_s=0.05))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready)
        assert f"{half:,} records" in text(app, "#cc-head")
        orders_before = len(app.data.detail.orders)  # type: ignore[union-attr]
        for event in events[half:]:
            writer.append(event)
        writer.commit()
        await until(pilot, lambda: app.data.overview.records == len(events))
        await pilot.press("5")  # the journal screen, refilled when shown, ends with the appended records
        await until(pilot, lambda: rows(app, "#tail")[-1]["kind"] == "run.finished.v1")
        await pilot.pause(0.1)
        assert "finished" in text(app, "#cc-head")
        assert f"{len(events):,} records" in text(app, "#cc-head")
        assert len(app.data.detail.orders) > orders_before  # type: ignore[union-attr]
        assert "following" in app.status_line
    writer.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: no real terminal to drive")
def test_the_real_program_in_a_real_terminal(journal: Path) -> None:
    session = f"tape-cockpit-{time.perf_counter_ns()}"
    tape = str(Path(sys.executable).with_name("tape"))
    command = f"{tape} cockpit {journal} --no-follow"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command], check=True)
    try:
        pane = ""
        deadline = time.perf_counter() + 60
        while "session days" not in pane and time.perf_counter() < deadline:
            time.sleep(0.3)
            pane = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
        assert "session days" in pane
        assert "NAV" in pane
        assert "test-sma_crossover" in pane
        subprocess.run(["tmux", "send-keys", "-t", session, "2"], check=True)
        deadline = time.perf_counter() + 20
        while "funnel" not in pane and time.perf_counter() < deadline:
            time.sleep(0.3)
            pane = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
        assert "funnel submitted" in pane
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.asyncio
async def test_the_data_tab_shows_the_lakes_health(tmp_path: Path) -> None:
    """With ``--lake``, tape health's numbers for the lake the data set came from: coverage,
    suspensions, missing bars and quarantined rows by reason (an inconsistent bar here)."""
    from lake.ingest import ingest
    from lake.partitioned import Lake
    from lake.sources import parse_yahoo

    days = [f"2014-01-{d:02d}" for d in (2, 3, 6, 7, 8, 9, 10, 13, 14, 15)]
    rows_text = "".join(f"{day},10.00,10.50,9.80,10.10,10.10,1000\n" for day in days)
    rows_text += "2014-01-16,10.00,9.00,9.80,10.10,10.10,1000\n"  # high below open: quarantined
    source = tmp_path / "aaa.txt"
    source.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + rows_text)
    ingest(tmp_path / "lake", [source], lambda p: parse_yahoo(p, symbol="AAA"))
    Lake(tmp_path / "lake").export(tmp_path / "set", "1d", calendar="XNYS")
    journal = run(make_config(tmp_path / "set", tmp_path / "j", params={"fast": 2, "slow": 4, "weight": 0.5},
                              us_regulatory_fees=False)).journal  # fmt: skip

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.data.health is not None)
        await pilot.press("7")
        shown = text(app, "#data-health")
        assert "bars/1d: 1 instrument, 10 rows" in shown
        assert "quarantined: ohlc_inconsistent 1" in shown

    await drive(cockpit_sources(journal, follow=False, lake=tmp_path / "lake"), scenario)


@pytest.mark.asyncio
async def test_the_data_tab_shows_the_lakes_trades_and_quotes(journal: Path, tmp_path: Path) -> None:
    """With ``--lake``, the data tab shows tape health's trades and quotes lines: rows, gaps,
    sessions without data and the quarantine adding up (a constructed lake: a planted gap, an
    empty day, quarantined trades, a crossed and a locked quote)."""
    from tests.integration.test_tick_health import constructed_lake

    lake = constructed_lake(tmp_path)

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.data.health is not None)
        await pilot.press("7")
        shown = " ".join(text(app, "#data-health").split())
        assert "trades: 1 instrument, 21 rows, 2024-01-01 00:00:00 to 2024-01-03 00:30:00 UTC" in shown
        assert "2 gaps over 1h (largest 1d 18h 30m), 1 sessions without data" in shown
        assert "ingested 23 = 21 stored + 2 quarantined: duplicate 1, non_positive_price 1" in shown
        assert "quotes: 1 instrument, 4 rows" in shown
        assert "quarantined: crossed_quote 1, locked_quote 1" in shown

    await drive(cockpit_sources(journal, follow=False, lake=lake), scenario)


def test_a_tab_message_that_comes_after_the_app_closed_is_ignored(journal: Path) -> None:
    """CI: a ``TabActivated`` handled while ``run_test`` tore the app down (no screen left)
    raised ``ScreenStackError`` from ``refresh_bindings``; with no screen it does nothing."""
    app = CockpitApp(cockpit_sources(journal, follow=False))
    assert app.screen_stack == []
    app.on_tabbed_content_tab_activated(None)  # type: ignore[arg-type]  # returns before reading it


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), SIZE], ids=["80x24", "100x30"])
async def test_the_status_line_shows_above_the_footer_and_names_a_corrupt_journal(
    journal: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    """The status line (what a key did, why the journal cannot be read) is on the screen, not
    under the footer; a journal with a damaged record says so on the first screen."""
    damaged = tmp_path / "damaged.sqlite"
    with open_journal(journal) as source, open_journal(damaged, writable=True) as target:
        for _, event in source.events():
            target.append(event)
    with sqlite3.connect(damaged) as db:
        first_seq, blob = db.execute(
            "SELECT first_seq, value FROM journal_segments ORDER BY first_seq"
        ).fetchone()
        blob = bytearray(blob)
        blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside a record
        db.execute("UPDATE journal_segments SET value = ? WHERE first_seq = ?", (bytes(blob), first_seq))
    db.close()
    app = CockpitApp(cockpit_sources(damaged, follow=False))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: "cannot read the journal" in app.status_line)
        await pilot.pause(0.1)
        status, footer = app.query_one("#status", Static), app.query_one(Footer)
        assert status.region.height >= 1
        assert not status.region.overlaps(footer.region)
        assert "cannot read the journal" in text(app, "#cc-head")
        shown = "".join(re.findall(r">([^<]*)</text>", app.export_screenshot())).replace("&#160;", " ")
        assert shown.count("cannot read the journal") == 2  # the first screen and the status line
        # the panes waiting for the journal stop saying "loading..." (the summary did for ever)
        assert "loading" not in shown
        assert text(app, "#cc-summary").startswith("report summary: not available")


@pytest.mark.asyncio
async def test_execution_quality_shows_a_long_strategy_id_whole_at_80_columns(tmp_path: Path) -> None:
    """The execution-quality lines of the orders screen give every strategy id in full (they
    were cut to 16 characters with the "strategy " prefix: "strategy sma_cro")."""
    dataset = make_dataset(tmp_path / "data", symbols=2, bars=120)
    params = {"fast": 5, "slow": 20, "weight": 0.9, "strategy_id": "trend_following_long"}
    journal = run(make_config(dataset, tmp_path / "journal.sqlite", params=params)).journal
    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.detail_ready and app.data.execution is not None)
        await pilot.press("2")
        lines = text(app, "#quality").splitlines()
        assert "strategy trend_following_long" in lines
        assert all(len(line) <= 80 - 2 for line in lines[1:])  # within the screen: none wraps
        quality = app.data.execution
        assert quality is not None
        # the figures follow on the next line, in the columns of the total's
        total = next(line for line in lines if line.startswith("total "))
        figures = lines[lines.index("strategy trend_following_long") + 1]
        assert figures.split() == total.split()[1:]  # one strategy: the same figures as the total
        assert len(figures) == len(total)


@pytest.fixture(scope="module")
def two_currencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CONSTRUCTED book in USD with CNY cash and a CNY name (``tests.factories``)."""
    return two_currency_run(tmp_path_factory.mktemp("fx"))


@pytest.mark.asyncio
async def test_a_book_of_several_currencies_is_shown_in_the_base(two_currencies: Path) -> None:
    """The return since inception counts the [fx] initial cash at the first close's rates (as
    tape report does); execution quality shows one block per currency (it stopped with 'cannot
    total execution quality across currencies'); a CNY position's weight is its value in the
    base over the NAV."""
    events = events_of(two_currencies)
    marked = [e for _, e in events if isinstance(e, CurrenciesMarked)]
    last = closes(two_currencies)[-1]
    with open_journal(two_currencies) as handle:
        report = report_from_journal(handle)
    initial = 1_000_000_00 + to_base_minor(5_000_000_00, "CNY", "USD", marked[0].currencies[0].rate_e8)
    assert initial == round(report.initial_nav * 100)

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        head = text(app, "#cc-head")
        assert f"since inception {money(last.nav_minor - initial, 'USD')}" in head
        assert f"({report.total_return:.2%})" in head
        await pilot.press("2")
        quality = text(app, "#quality")
        assert "execution quality in CNY" in quality and "execution quality in USD" in quality
        assert "cannot total" not in app.status_line
        await pilot.press("3")
        await until(pilot, lambda: app.data.marks is not None and rows(app, "#positions-table") != [])
        table = {row["symbol"]: row for row in rows(app, "#positions-table")}
        assert set(table) == {"AAA", "BBB"}
        cny = next(c for c in marked[-1].currencies if c.currency == "CNY")
        value_cny = cny.nav_minor - cny.cash_minor  # the CNY position's value at the last close
        weight = div_round(to_base_minor(value_cny, "CNY", "USD", cny.rate_e8) * RATE_SCALE, last.nav_minor,
                           Rounding.HALF_EVEN)  # fmt: skip
        assert table["BBB"]["weight/limit"].startswith(pct_e8(weight) + "/")
        assert table["BBB"]["value"] == money(value_cny, "CNY")

    await drive(cockpit_sources(two_currencies, follow=False), scenario)


def test_a_day_tape_of_several_currencies_is_the_journals_nav_and_cash(two_currencies: Path) -> None:
    """At every day close the replay screen's book, converted at the day's rates, is the
    journaled NAV and cash (it added CNY values to USD cash, unconverted, and left CNY cash out)."""
    with open_journal(two_currencies) as handle:
        marks = cockpit_sources(two_currencies).marks(handle)  # type: ignore[misc]
        events = dict(handle.events())
        day_closes = [(seq, e) for seq, e in events.items() if isinstance(e, DayClosed)]
        for seq, close in day_closes:
            tape = read_day_tape(handle, close.day, {1: USD_NAME, 2: CNY_NAME}, "USD")
            index = tape.index_of(seq)
            assert index is not None
            book = tape.book_at(index)
            assert tape.nav_minor(book, tape.prices_at(index, marks)) == close.nav_minor
            assert tape.cash_minor(book) == close.cash_minor


@pytest.mark.asyncio
async def test_the_positions_screen_follows_the_day_closes_of_a_growing_journal(
    journal: Path, tmp_path: Path
) -> None:
    """On display while another writer appends days, the positions screen shows the book of the
    newest day snapshot (it stayed on the day it was opened at until shown again)."""
    events = [event for _, event in events_of(journal)]
    growing = tmp_path / "growing.sqlite"
    writer = open_journal(growing, writable=True)
    half = len(events) // 2
    for event in events[:half]:
        writer.append(event)
    writer.commit()
    snapshots = [event for event in events if isinstance(event, StateSnapshotted)]
    first = [event for event in events[:half] if isinstance(event, StateSnapshotted)][-1]
    app = CockpitApp(cockpit_sources(growing, follow=True, poll_interval_s=0.05))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready)
        await pilot.press("3")
        await until(pilot, lambda: app.data.marks is not None)
        assert f"book at the close of {first.day // 10000}-" in text(app, "#positions-head")
        assert first.day != snapshots[-1].day
        for event in events[half:]:
            writer.append(event)
        writer.commit()
        await until(pilot, lambda: app.data.overview.records == len(events))
        last = snapshots[-1].day
        day = f"{last // 10000}-{last // 100 % 100:02d}-{last % 100:02d}"
        await until(pilot, lambda: f"book at the close of {day}" in text(app, "#positions-head"), 10)
        shown = {row["symbol"]: row["qty"] for row in rows(app, "#positions-table")}
        held = {app.data.symbol(p.instrument_id) for p in snapshots[-1].snapshot.positions if p.qty_raw}
        assert set(shown) == held
    writer.close()


@pytest.mark.asyncio
async def test_the_drawdown_counts_from_the_initial_nav_as_tape_report_does(minutes: Path) -> None:
    """A run that closes its first day below its initial NAV: the command centre's drawdown is
    the report's (whose NAV series starts at the initial NAV); it counted from the first close
    and said max -15.83% beside the report summary's -20.92%."""
    navs = [close.nav_minor for close in closes(minutes)]
    with open_journal(minutes) as handle:
        report = report_from_journal(handle)
    assert navs[0] < round(report.initial_nav * 100)  # the case: a loss on the first day
    figures = dict(report.rows())

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        head = text(app, "#cc-head")
        assert f"max {figures['max drawdown']}" in head
        assert dict(app.data.summary.rows())["max drawdown"] == figures["max drawdown"]  # type: ignore[union-attr]
        deepest = min(app.query_one("#dd-spark", Sparkline).data or [0.0])  # -drawdown, 1e-8
        assert abs(deepest - report.returns.max_drawdown * RATE_SCALE) <= 1

    await drive(cockpit_sources(minutes, follow=False), scenario)


@pytest.mark.asyncio
async def test_the_screen_keys_switch_after_a_filter_or_a_day_was_entered(journal: Path) -> None:
    """After a blotter filter or a replay day is entered (the cursor then goes to the table
    below the field), 1-8 still switch screens. They did nothing: the table, hidden by the
    switch, handed the focus to the field above it, the tabs followed it back, and the next
    keys were typed into the field ("2019-01-041")."""
    day = closes(journal)[150].day
    tabs = lambda app: app.query_one("#tabs", TabbedContent).active  # noqa: E731

    async def scenario(app: CockpitApp, pilot: Pilot[None]) -> None:
        await pilot.press("2", "slash", *"side:buy", "enter")
        assert app.focused is app.query_one("#blotter", DataTable)
        await pilot.press("3")
        assert tabs(app) == "positions"
        await pilot.press("6", "slash", *f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}", "enter")
        await until(pilot, lambda: app.data.tape is not None)
        await pilot.press("7")
        assert tabs(app) == "data"
        await pilot.press("6", "slash", *"1999-01-04", "enter")  # a day the journal has no close of
        await until(pilot, lambda: "cannot open" in text(app, "#replay-cursor"), 30)
        assert "no close of 1999-01-04" in text(app, "#replay-journal")
        await pilot.press("1")
        assert tabs(app) == "centre"
        assert app.query_one("#replay-day", Input).value == "1999-01-04"
        assert app.query_one("#blotter-filter", Input).value == "side:buy"

    await drive(cockpit_sources(journal, follow=False), scenario)


@pytest.mark.asyncio
async def test_the_command_centre_keeps_each_figure_with_its_label_at_80_columns(journal: Path) -> None:
    """At 80 columns the header and exposure lines break between figures, never inside one:
    the terminal wrapped 'since inception' onto one line and its figure onto the next, and
    'per name' away from 'limit 10.00%'. Back at 140 columns they are one line again."""

    def lines(app: CockpitApp) -> list[str]:
        return text(app, "#cc-head").splitlines() + text(app, "#cc-risk").splitlines()

    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        shown = lines(app)
        assert all(len(line) <= 78 for line in shown), shown
        assert any(line.startswith("since inception ") for line in shown)
        assert any(line.startswith("per name limit ") for line in shown)
        await pilot.resize_terminal(140, 40)
        await pilot.pause(0.2)
        wide = lines(app)
        assert any("PnL today" in line and "since inception" in line for line in wide), wide


@pytest.mark.asyncio
async def test_the_tables_refit_when_the_terminal_is_resized(journal: Path) -> None:
    """Widened from 80 to 140 columns, the blotter shows the columns 80 had no room for (and
    narrowed back, drops them again). They stayed as they were: the resize was handled while
    the app's size was still the old one, so the tables were refitted to the old width."""
    app = CockpitApp(cockpit_sources(journal, follow=False))
    columns = lambda: [str(c.label) for c in app.query_one("#blotter", DataTable).columns.values()]  # noqa: E731
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        narrow = columns()
        assert "reason" not in narrow and "not shown at this width" in str(
            app.query_one("#blotter").border_title
        )
        await pilot.resize_terminal(140, 40)
        await pilot.pause(0.3)
        assert set(columns()) > set(narrow) and "avg px" in columns()
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert columns() == narrow


@pytest.mark.asyncio
@pytest.mark.parametrize("width", [80, 96, 140])
async def test_the_report_summary_of_several_currencies_fits_the_screen(
    two_currencies: Path, width: int
) -> None:
    """The summary's per-currency figures ("3,796,660.66 / 5,017,012.06 CNY") are wider than
    its 22-cell value column: at 96 columns the two-column layout ran past the screen and the
    currency wrapped onto a line of its own, and the right column's figures lost their
    alignment. Every figure is now whole on its line, right-aligned with the others, the fees
    paid in each currency among them (they showed the total in the base alone)."""
    app = CockpitApp(cockpit_sources(two_currencies, follow=False))
    async with app.run_test(size=(width, 60)) as pilot:
        await until(pilot, lambda: app.data.summary is not None and "report" in text(app, "#cc-summary"))
        lines = text(app, "#cc-summary").splitlines()[1:]
        assert all(len(line) <= width - 2 for line in lines), lines
        rows = app.data.summary.rows()  # type: ignore[union-attr]
        assert any("CNY cash / NAV" in label for label, _ in rows)  # the case: per-currency rows
        # the fees paid in each currency, with the CNY fees' base equivalent, as tape report's
        fees = {label.strip(): value for label, value in rows if label.endswith(" fees")}
        assert set(fees) == {"CNY fees", "USD fees"} and " CNY = " in fees["CNY fees"], fees

        def shown(label: str, value: str, pair: int) -> bool:  # label, spaces, figure in `pair` cells
            return any(f"{label}{' ' * (pair - len(label) - len(value))}{value}" in line for line in lines)

        # one label-to-figure width for every row: each figure whole and right-aligned alike
        pairs = [pair for pair in range(2, width) if all(shown(label, value, pair) for label, value in rows)]
        assert pairs, lines


@pytest.mark.asyncio
async def test_a_read_that_ends_after_the_app_closed_changes_nothing(journal: Path) -> None:
    """A worker's read (a poll of a followed journal) that ends while or after the cockpit
    closes does not touch its screen: it ran its view on the closing app, whose widgets were
    gone (NoMatches '#status' / '#cc-head', a traceback on quitting while following)."""
    gate, entered = threading.Event(), threading.Event()
    shown: list[str] = []

    def slow() -> str:
        entered.set()
        gate.wait(10)
        return "late"

    def show(value: str) -> None:
        shown.append(value)
        app.set_status(value)

    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready)
        app.read(slow, show, "late")
        await until(pilot, entered.is_set)
    gate.set()
    await asyncio.sleep(0.5)
    assert shown == []


@pytest.mark.asyncio
async def test_the_journal_screens_fields_show_their_whole_placeholders_at_80_columns(journal: Path) -> None:
    """At 80 columns the seq / time field showed "seq or time (2" (it had a quarter of the row,
    14 columns), hiding the example of the time it takes; the filter's example stays whole too."""
    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        await pilot.press("5")
        await pilot.pause(0.2)
        for selector in ("#tail-filter", "#tail-seq"):
            field = app.query_one(selector, Input)
            shown = "".join(segment.text for segment in field.render_line(0))
            assert shown.startswith(str(field.placeholder)), (selector, shown)
        example = str(app.query_one("#tail-seq", Input).placeholder).split()[-1]
        assert parse_jump(example)[1] is not None, example  # the example is a time the field takes


@pytest.mark.asyncio
async def test_the_replay_screen_keeps_each_figure_with_its_label_at_80_columns(journal: Path) -> None:
    """QA of the replay screen at 80 columns: a day of one step read "1 steps"; the terminal
    wrapped "(day PnL" onto one line and its figure onto the next; the cursor's seq range had
    thousands separators and the journal's close and the replay's verdict none ("seq 1,210..
    1,225" over "(seq 1210..1225)"). Each line now breaks between a label and its figure (no
    line is wider than its half of the screen, so the terminal wraps none), counts read in
    words, and every seq is written one way. Back at 140 columns the close takes fewer lines."""
    seq, close = [(seq, e) for seq, e in events_of(journal) if isinstance(e, DayClosed)][-3]
    assert seq >= 1_000  # a seq that takes a separator

    def lines(selector: str) -> list[str]:
        return text(app, selector).splitlines()

    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        await pilot.press("6", "slash", *day_text(close.day), "enter")
        await until(pilot, lambda: app.data.tape is not None and app.data.replay_result is not None, 60)
        await pilot.pause(0.1)
        tape, result = app.data.tape, app.data.replay_result
        assert tape is not None and result is not None and result.ok
        half = (80 - 2) // 2 - 1  # a side of the screen: the screen's scrollbar and a cell of padding
        assert all(len(line) <= half for line in lines("#replay-journal") + lines("#replay-verdict")), lines(
            "#replay-journal"
        ) + lines("#replay-verdict")
        assert any(line.strip().startswith("day PnL ") for line in lines("#replay-journal"))
        assert f"seq {seq:,}," in text(app, "#replay-journal")
        assert f"step {close.step:,}" in text(app, "#replay-journal")
        assert f"(seq {result.first_seq:,}..{result.last_seq:,})" in text(app, "#replay-verdict")
        head = lines("#replay-cursor")[:2]
        assert all(len(line) <= 78 for line in head), head
        assert f"(seq {tape.start_seq:,}..{tape.start_seq + len(tape) - 1:,}), 1 step" in head[0]
        assert "steps" not in head[0] and len(tape.step_starts) == 1
        assert "{ / } opening / end" in " | ".join(head)  # a key's group whole on one line
        narrow = len(lines("#replay-journal"))
        await pilot.resize_terminal(140, 40)
        await pilot.pause(0.3)
        assert len(lines("#replay-journal")) < narrow


XSHG_2027 = "year,date,name\n2027,2027-01-01,synthetic one\n2027,2027-01-13,synthetic two\n"
"""Two synthetic 2027 XSHG closures (a Friday and a Wednesday), not 2027's real ones."""


@pytest.mark.asyncio
async def test_the_data_tab_checks_an_xshg_lake_past_2026_on_the_holidays(
    journal: Path, tmp_path: Path
) -> None:
    """The data tab asked ``dataset_health(lake)`` without holidays: for a lake of XSHG bars past
    exchange_calendars' last year (2026) it showed 'data health: ... with tape export --holidays
    FILE, and export the data set again', an option that cannot help the cockpit, and no way to
    give the file. ``tape cockpit --lake LAKE --holidays FILE`` checks the lake on the extended
    calendar (``tape health --holidays``' numbers); without it the tab shows tape health's
    refusal naming the cockpit's option."""
    from lake.holidays import read_holidays
    from tests.factories import weekday_lake

    lake = weekday_lake(tmp_path / "lake", "2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    path = tmp_path / "holidays.csv"
    path.write_text(XSHG_2027)

    async def refused(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.data.health is not None)
        await pilot.press("7")
        shown = " ".join(text(app, "#data-health").split())
        assert "data health not shown: XSHG: exchange_calendars" in shown
        assert "records holidays only through 2026-12-31" in shown
        assert "with tape cockpit JOURNAL --lake LAKE --holidays FILE" in shown and "tape export" not in shown

    await drive(cockpit_sources(journal, follow=False, lake=lake), refused)

    async def checked(app: CockpitApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.data.health is not None)
        await pilot.press("7")
        shown = " ".join(text(app, "#data-health").split())
        # 42 sessions of each name: the supplied closures are no gap
        assert (
            "bars/1d: 2 instruments, 84 rows, coverage 100.00%, 0 suspension sessions, 0 missing bars"
            in shown
        )

    holidays = read_holidays(path, "XSHG")
    await drive(cockpit_sources(journal, follow=False, lake=lake, holidays=holidays), checked)


def test_the_cockpits_holiday_file_is_checked_before_the_screen_opens(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--holidays`` is read as ``tape health --holidays`` reads it (checked whole, exit 2 naming
    each problem) and only with ``--lake``, whose health it is for."""
    from cli.main import main

    lake = tmp_path / "lake"
    bad = tmp_path / "holidays.csv"
    bad.write_text("year,date\n2027,2027-01-02\n")
    assert main(["cockpit", str(journal), "--lake", str(lake), "--holidays", str(bad)]) == 2
    assert "2027-01-02 is a Saturday" in capsys.readouterr().out
    good = tmp_path / "good.csv"
    good.write_text(XSHG_2027)
    assert main(["cockpit", str(journal), "--holidays", str(good)]) == 2
    assert "give --lake LAKE as well" in capsys.readouterr().out
