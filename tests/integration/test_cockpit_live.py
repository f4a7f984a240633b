"""The cockpit on a journal that grows and on a live source's journal: the journal screen
follows by describing only the appended records; firing alerts are shown and acknowledged with
``a`` exactly as ``tape alerts ack`` records it; a queued session's data staleness comes from
its journaled bars (their arrival stamps), clock advances and quarantined inputs."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Static

from cli.alerts_cmd import firing_alerts
from cli.cockpit_cmd import cockpit_sources
from cli.main import main
from cli.wiring import make_strategies
from domain.events import Event, VenueConnection, VenueReconciled
from domain.riskrules import KillSwitchConfig
from kernel.loop import Kernel
from kernel.store import open_journal
from kernel.stream import QueueSource
from lake.store import dataset_ref, load_panel
from sim.backtest import build_setup, journal_inputs
from sim.queued import bars_at
from tests.factories import make_config, make_dataset, run
from tui import CockpitApp
from tui.confirm import ConfirmScreen
from tui.data import CockpitData
from tui.format import utc_text
from tui.tail import TAIL_ROWS, TailFilter

SIZE = (100, 30)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live-cockpit")
    dataset = make_dataset(root / "data", symbols=4, bars=300)
    return run(make_config(dataset, root / "journal")).journal


@pytest.fixture(scope="module")
def tripped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose kill switch trips (and stays halted): the kill_switch alert rule fires."""
    root = tmp_path_factory.mktemp("tripped-alerts")
    dataset = make_dataset(root / "data", symbols=4, bars=300)
    kill = KillSwitchConfig(drawdown_max_e8=1_000_000, flatten_on_trip=True)
    return run(make_config(dataset, root / "journal.sqlite", kill_switch=kill)).journal


def text(app: CockpitApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def cells(app: CockpitApp, selector: str, column: str) -> list[str]:
    table = app.query_one(selector, DataTable)
    labels = [str(c.label) for c in table.columns.values()]
    index = labels.index(column)
    return [str(table.get_row_at(row)[index]) for row in range(table.row_count)]


async def until(pilot: Pilot[None], condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "the cockpit did not get there in time"
        await pilot.pause(0.05)


def events_of(path: Path) -> list[Event]:
    with open_journal(path) as handle:
        return [event for _, event in handle.events()]


# --- 1 the journal screen follows incrementally ------------------------------------------------


def test_a_followed_page_extended_by_the_appended_records_is_the_page_read_afresh(
    journal: Path, tmp_path: Path
) -> None:
    """read_growth describes only the records after the page's end; the page it extends to is
    the one a fresh read of the grown journal gives, with and without a filter."""
    events = events_of(journal)
    growing = tmp_path / "growing.sqlite"
    writer = open_journal(growing, writable=True)
    first = len(events) // 3
    for event in events[:first]:
        writer.append(event)
    writer.commit()
    data = CockpitData(cockpit_sources(growing, follow=False))
    data.overview, data.detail = data.read_overview(), data.read_detail()
    pages = {text_: data.read_tail(TailFilter.parse(text_), None) for text_ in ("", "kind:filled")}
    for stop in (first + 7, first + 7 + TAIL_ROWS * 3, len(events)):  # a little, more than a page, the rest
        for event in events[len(events_of(growing)) : stop]:
            writer.append(event)
        writer.commit()
        for text_, page in pages.items():
            growth = data.read_growth(data.overview.records, page)
            assert growth is not None and growth.tail_base is page and growth.tail_rows is not None
            assert all(row.seq >= page.end for row in growth.tail_rows)  # nothing described twice
            data.tail = page
            data.apply_growth(growth)
            extended = data.tail
            assert extended is not None and extended.end == stop
            fresh = data.read_tail(TailFilter.parse(text_), None)
            assert extended.rows == fresh.rows and extended.head == fresh.head
            pages[text_] = extended
    writer.close()
    assert pages[""].rows[-1].kind == "run.finished.v1"
    assert {row.kind for row in pages["kind:filled"].rows} == {"order.filled.v1"}


def test_a_page_from_a_seq_or_past_the_end_is_not_followed(journal: Path) -> None:
    data = CockpitData(cockpit_sources(journal, follow=False))
    data.overview = data.read_overview()
    assert data.read_tail(TailFilter(), None).follows
    assert not data.read_tail(TailFilter(), 10).follows
    past = data.read_tail_at(TailFilter(), 4_000_000_000 * 10**9)
    assert not past.follows and past.rows == [] and "the journal ends before it" in past.head
    with open_journal(journal) as handle:
        assert data.read_growth(len(handle), data.read_tail(TailFilter(), 10)) is None  # nothing new


@pytest.mark.asyncio
async def test_the_journal_screen_follows_without_reading_its_page_again(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the journal screen shows the last records, the appended ones arrive through the
    poll (read once, described once): the page is read afresh only when it is first shown."""
    events = events_of(journal)
    growing = tmp_path / "growing.sqlite"
    writer = open_journal(growing, writable=True)
    half = len(events) // 2
    for event in events[:half]:
        writer.append(event)
    writer.commit()
    pages_read: list[int | None] = []
    original = CockpitData.read_tail

    def counted(self: CockpitData, tail_filter: TailFilter, start: int | None) -> object:
        pages_read.append(start)
        return original(self, tail_filter, start)

    monkeypatch.setattr(CockpitData, "read_tail", counted)
    app = CockpitApp(cockpit_sources(growing, follow=True, poll_interval_s=0.05))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready and app.data.tail is not None)
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#tail", DataTable).row_count > 0)
        for chunk in range(half, len(events), 97):
            for event in events[chunk : chunk + 97]:
                writer.append(event)
            writer.commit()
            await pilot.pause(0.06)
        await until(pilot, lambda: cells(app, "#tail", "kind")[-1:] == ["run.finished.v1"])
        assert pages_read == [None]  # the first page only: the rest came with the polls
        shown = [int(seq) for seq in cells(app, "#tail", "seq")]
        assert shown[-TAIL_ROWS:] == list(range(len(events) - TAIL_ROWS, len(events)))
        assert f"(journal has {len(events):,})" in text(app, "#tail-head")
        assert app.data.overview.records == len(events)
        await pilot.press("1")  # the command centre, refilled when shown
        await pilot.pause(0.1)
        assert f"{len(events):,} records" in text(app, "#cc-head")
    writer.close()


# --- 2 alerts acknowledged from the cockpit -------------------------------------------------


@pytest.mark.asyncio
async def test_a_firing_alert_is_shown_and_acknowledged_as_tape_alerts_ack_does(
    tripped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "kill_switch"\n')
    assert main(["alerts", "check", str(tripped), "--rules", str(rules), "--no-send"]) == 1  # firing
    (alert,) = firing_alerts(rules)
    assert alert.acked_by is None
    silence = ["alerts", "silence", "kill_switch", "--key", "book", "--for", "2h", "--by", "ana"]
    assert main([*silence, "--rules", str(rules)]) == 0  # journaled; the cockpit shows it from there
    app = CockpitApp(cockpit_sources(tripped, follow=False, alerts=rules))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready and app.data.alerts is not None)
        await pilot.pause(0.1)
        assert "1 firing, 1 not acknowledged" in text(app, "#cc-alerts")
        assert "silenced (1): kill_switch book until " in text(app, "#cc-alerts")
        assert "by ana" in text(app, "#cc-alerts")
        assert cells(app, "#alerts", "rule") == ["kill_switch"]
        assert cells(app, "#alerts", "fired (UTC)") == [utc_text(alert.fired_ts_ns)]  # the trip's time
        assert cells(app, "#alerts", "acked by") == ["-"]
        await pilot.press("8")
        await pilot.pause(0.1)
        assert not app.query_one("#cmd-acknowledge", Button).disabled
        await pilot.press("1", "a")  # asks first; n leaves it
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert "not acknowledged" in app.status_line
        assert firing_alerts(rules)[0].acked_by is None
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "acknowledged by" in app.status_line)
        await until(pilot, lambda: cells(app, "#alerts", "acked by") == [getpass.getuser()])
        assert "1 firing, 0 not acknowledged" in text(app, "#cc-alerts")
        assert app.query_one("#cmd-acknowledge", Button).disabled  # nothing waits for one now
        await pilot.press("a")
        await pilot.pause(0.1)
        assert "acknowledged by" in app.status_line and "already" in app.status_line
        await pilot.press("8")
        await pilot.pause(0.1)
        history = text(app, "#commands-journaled")
        assert "journaled alert acknowledgements and silences (2):" in history
        assert "seq 0 " in history and "silence 1 kill_switch book until " in history and "by ana" in history
        assert (
            "seq 1 " in history
            and f"ack alert {alert.id} (kill_switch book) by {getpass.getuser()}" in history
        )
    (acked,) = firing_alerts(rules)
    assert acked.acked_by == getpass.getuser() and acked.acked_at_ns is not None
    capsys.readouterr()
    assert main(["alerts", "list", "--rules", str(rules)]) == 0  # tape alerts shows the same ack
    assert getpass.getuser() in capsys.readouterr().out


@pytest.mark.asyncio
async def test_alerts_say_why_they_cannot_be_read_and_a_without_alerts_says_how(
    tripped: Path, journal: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "kill_switch"\n')
    app = CockpitApp(cockpit_sources(tripped, follow=False, alerts=rules))  # no alert state yet
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready and app.data.alerts_error != "")
        await pilot.pause(0.1)
        assert "no alert state yet" in text(app, "#cc-alerts")
    assert main(["alerts", "check", str(tripped), "--rules", str(rules), "--no-send"]) == 1
    app = CockpitApp(cockpit_sources(journal, follow=False, alerts=rules))  # another journal's state
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready and app.data.alerts_error != "")
        await pilot.pause(0.1)
        assert "not " in app.data.alerts_error and "one state file per journal" in app.data.alerts_error
    app = CockpitApp(cockpit_sources(journal, follow=False))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.detail_ready)
        assert "--alerts RULES" in text(app, "#cc-alerts")
        assert not app.query_one("#alerts", DataTable).display
        await pilot.press("a")
        assert "--alerts RULES" in app.status_line


# --- 3 a live source's data staleness --------------------------------------------------------

LAG_NS = 2_000_000_000  # the bars arrive 2 s after their step


def queued_session(root: Path, lag_ns: int | None = LAG_NS) -> tuple[Path, list[int]]:
    """A queued session (what tape paper journals) that got bars with arrival stamps for most
    of its steps, a duplicate (quarantined), then only clock advances: its feed went quiet.
    Returns the journal and the grid's step times (``lag_ns`` None: a feed without a clock)."""

    def arrival(row: int) -> int:
        return int(full.ts_ns[row]) + lag_ns if lag_ns is not None else 0

    data = make_dataset(root / "data", seed=11, symbols=2, bars=120)
    config = make_config(data, root / "journal")
    setup = build_setup(config, make_strategies(config), queued=True)
    store = open_journal(root / "journal", writable=True)
    journal_inputs(store, config, dataset_ref(data), setup.panel)
    kernel = Kernel(setup, store, arrived=setup.start_step)
    kernel.begin()
    source = QueueSource(kernel, journal=store, name="test-feed")
    full, _ = load_panel(data)
    last_bar_row = 100
    for row in range(last_bar_row + 1):
        bars = bars_at(full, row, received_ns=arrival(row))
        assert bars is not None and source.push(bars)
    duplicate = bars_at(full, last_bar_row, received_ns=arrival(last_bar_row))
    assert duplicate is not None and not source.push(duplicate)
    for row in (103, 106, 109):  # the clock moves on, no bars come
        source.pass_time(int(full.ts_ns[row]))
    store.commit()
    store.close()
    return root / "journal", [int(ts) for ts in full.ts_ns]


@pytest.mark.asyncio
async def test_a_queued_sessions_staleness_comes_from_its_journaled_inputs(tmp_path: Path) -> None:
    path, grid = queued_session(tmp_path)
    with open_journal(path) as handle:
        newest = max(record.ts_ns for record in handle.records())
    assert newest == grid[109]
    app = CockpitApp(cockpit_sources(path, follow=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        stale = text(app, "#cc-stale")
        arrived = grid[100] + LAG_NS
        assert (
            f"for the step of {utc_text(grid[100])}, arrived {utc_text(arrived)} (2.0 s after that step)"
            in (stale.replace("\n", " "))
        )
        age_days = (newest - arrived) / 86_400e9
        assert f"staleness: {age_days:,.1f} d since that arrival" in stale
        assert f"newest journaled time {utc_text(newest)}; 3 clock advances with no bars since" in stale
        assert "inputs quarantined: DUPLICATE 1" in stale
        assert "no connection changes or heartbeats journaled" in stale
        assert "no session is writing this journal now" in stale
        assert "101 steps of bars" in stale
    # the fold behind it, without the screen
    data = CockpitData(cockpit_sources(path, follow=False))
    overview = data.read_overview()
    assert (overview.bars_records, overview.empty_passes, dict(overview.quarantined)) == (
        101,
        3,
        {"DUPLICATE": 1},
    )


@pytest.mark.asyncio
async def test_a_live_sessions_connection_and_reconciliation_are_shown(tmp_path: Path) -> None:
    """What ``tape live`` journals about its venue (``venue.connection.v1``,
    ``venue.reconciled.v1``; constructed here on a queued session) is on the command centre."""
    path, grid = queued_session(tmp_path)
    with open_journal(path, writable=True) as store:
        store.append(VenueConnection(ts_ns=grid[104], venue="binance", stream="orders", state="disconnected"))
        store.append(VenueConnection(ts_ns=grid[105], venue="binance", stream="orders", state="reconciled"))
        store.append(
            VenueReconciled(
                ts_ns=grid[105], venue="binance", when="reconnect", orders_checked=1, fills_recovered=2,
                differences=["USDT: venue 1, book 2 (difference -1)"], action="halted",
            )
        )  # fmt: skip
        store.commit()
    app = CockpitApp(cockpit_sources(path, follow=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        stale = text(app, "#cc-stale").replace("\n", " ")
        assert f"venue: orders reconciled at {utc_text(grid[105])}; 1 drops" in stale
        assert "reconciled (reconnect, seq" in stale and "1 difference, 2 fills recovered; halted" in stale


@pytest.mark.asyncio
async def test_bars_without_an_arrival_stamp_say_so(tmp_path: Path) -> None:
    """A feed without a clock (received_ns 0, e.g. a test feed): no staleness is made up."""
    path, grid = queued_session(tmp_path, lag_ns=None)
    app = CockpitApp(cockpit_sources(path, follow=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.detail_ready)
        stale = text(app, "#cc-stale")
        assert f"for the step of {utc_text(grid[100])}; their arrival is not stamped" in stale
        assert "staleness" not in stale


def test_an_unusable_alerts_file_is_named_before_the_screen_opens(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "no_such_rule"\n')
    assert main(["cockpit", str(journal), "--alerts", str(rules)]) == 2
    captured = capsys.readouterr()
    assert "no_such_rule" in captured.out + captured.err


@pytest.mark.parametrize("poll", ["0", "-1", "nan", "inf"])
def test_a_poll_interval_that_is_not_a_positive_time_is_refused(
    journal: Path, poll: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--poll 0 made the poll timer divide by zero (a traceback, the cockpit left running) and a
    negative one spun the UI thread so that not even SIGTERM stopped it: both refused before the
    screen opens, with one line naming the option (exit 2)."""
    assert main(["cockpit", str(journal), "--poll", poll]) == 2
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "--poll" in out and "Traceback" not in out
