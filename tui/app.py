"""The cockpit: a Textual app over one journal (finished, or growing while another process
appends to it). Every journal read runs in a worker thread that opens its own read-only
journal; the UI thread only renders what the folds hold.

Screens (tabs, keys 1-8): command centre, orders, positions, why?, journal, replay,
data, commands. ``?`` lists the keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from domain.events import StateSnapshotted
from kernel.journal import Journal, JournalError
from kernel.replay import replay
from kernel.store import open_journal
from tui import views
from tui.fold import DETAIL_KINDS, OVERVIEW_KINDS, Detail, Overview
from tui.help import HelpScreen
from tui.sources import COMMANDS_DISABLED_REASON, CockpitSources, ExecutionLike, Marks, SummaryLike
from tui.tail import TailFilter, read_tail

__all__ = ["TABS", "CockpitApp"]

TABS = ("centre", "orders", "positions", "why", "journal", "replay", "data", "commands")
TAIL_VERDICT_RECORDS = 8192  # the first screen's latest verdicts come from this many last records
BLOTTER_ROWS_MAX = 500


class CockpitApp(App[None]):
    """``tape cockpit JOURNAL``."""

    TITLE = "Tape cockpit"
    CSS_PATH = Path(__file__).with_name("cockpit.tcss")
    BINDINGS = [  # noqa: RUF012 (Textual's declared class attribute)
        Binding("1", "tab('centre')", "Centre"),
        Binding("2", "tab('orders')", "Orders"),
        Binding("3", "tab('positions')", "Positions"),
        Binding("4", "tab('why')", "Why?"),
        Binding("5", "tab('journal')", "Journal"),
        Binding("6", "tab('replay')", "Replay"),
        Binding("7", "tab('data')", "Data", show=False),
        Binding("8", "tab('commands')", "Commands", show=False),
        Binding("w", "why", "Why this row"),
        Binding("slash", "filter", "Filter"),
        Binding("g", "goto", "Go to seq", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, sources: CockpitSources) -> None:
        super().__init__()
        self.sources = sources
        self.overview = Overview()
        self.detail: Detail | None = None
        self.summary: SummaryLike | None = None
        self.execution: ExecutionLike | None = None
        self.marks: Marks | None = None
        self.health: list[str] | None = None
        self.first_screen_ready = False  # the command centre shows the whole journal
        self.detail_ready = False
        self.status_line = "opening the journal..."
        self.why_links: list[tuple[int, str, str, str]] = []  # seq, role, kind, text
        self._polling = False
        self._open_lock = threading.Lock()

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs", initial="centre"):
            with TabPane("1 Centre", id="centre"), VerticalScroll():
                yield Static(id="cc-head")
                yield Static("NAV", classes="label")
                yield Sparkline([], id="nav-spark")
                yield Static("drawdown", classes="label")
                yield Sparkline([], id="dd-spark")
                yield Static(id="cc-risk")
                yield Static(id="cc-kill")
                yield Static(id="cc-stale")
                yield DataTable(id="verdicts", cursor_type="row")
                yield Static("report summary: loading...", id="cc-summary")
            with TabPane("2 Orders", id="orders"), VerticalScroll():
                yield Static("orders: loading...", id="funnel")
                yield Input(
                    placeholder="filter: text, status:rejected, strategy:sma, side:sell", id="blotter-filter"
                )
                yield DataTable(id="blotter", cursor_type="row")
                yield Static("execution quality: loading...", id="quality")
            with TabPane("3 Positions", id="positions"), VerticalScroll():
                yield Static("positions: loading...", id="positions-head")
                yield DataTable(id="positions-table", cursor_type="row")
            with TabPane("4 Why?", id="why"), VerticalScroll():
                yield Static(
                    "Select an order (2), a position (3) or a fill in the journal (5) and press w.",
                    id="why-head",
                )
                yield DataTable(id="why-table", cursor_type="row")
                yield Static(id="why-event")
            with TabPane("5 Journal", id="journal"), VerticalScroll():
                with Horizontal(classes="inputs"):
                    yield Input(placeholder="filter: kind:order instrument:3 order:ID", id="tail-filter")
                    yield Input(placeholder="seq", id="tail-seq", type="integer")
                yield Static(id="tail-head")
                yield DataTable(id="tail", cursor_type="row")
            with TabPane("6 Replay", id="replay"), VerticalScroll():
                yield Input(placeholder="day to replay: YYYY-MM-DD (enter)", id="replay-day")
                yield Static(
                    "Pick a session day; the journal's record of it and a fresh replay's verdict "
                    "show side by side.",
                    id="replay-journal",
                )
                yield Static(id="replay-verdict")
            with TabPane("7 Data", id="data"), VerticalScroll():
                yield Static(id="data-health")
            with TabPane("8 Commands", id="commands"), VerticalScroll():
                yield Static(COMMANDS_DISABLED_REASON, id="commands-reason")
                for command in ("halt", "flatten", "pause", "resume", "rearm", "acknowledge"):
                    yield Button(f"{command} (disabled)", id=f"cmd-{command}", disabled=True)
                yield Static(id="commands-journaled")
        yield Static(self.status_line, id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.sources.journal)
        views.setup_tables(self)
        self.run_worker(self._load, thread=True, group="load")

    # --- loading (worker threads) ----------------------------------------------------------

    @contextmanager
    def _open(self) -> Iterator[Journal]:
        """A read-only journal for one worker. Opens and closes are serialised: the LMDB
        backend shares one environment per path and process, and its reference count is not
        guarded against two threads opening the same path at once."""
        with self._open_lock:
            journal = open_journal(self.sources.journal)
        try:
            yield journal
        finally:
            with self._open_lock:
                journal.close()

    def _load(self) -> None:
        try:
            self._load_overview()
        except JournalError as error:
            self.call_from_thread(self._set_status, f"cannot read the journal: {error}")

    def _load_rest(self) -> None:
        """The order fold and the report folds, started once the first screen has painted
        (a fold holding the GIL would otherwise delay that paint)."""
        try:
            self._load_detail()
        except JournalError as error:
            self.call_from_thread(self._set_status, f"cannot read the journal: {error}")
            return
        self._load_folds()
        if self.sources.follow:
            self.call_from_thread(self._start_following)

    def _load_overview(self) -> None:
        overview = Overview()
        with self._open() as journal:
            for record in journal.records_of_kinds(OVERVIEW_KINDS):
                overview.apply(record)
            count = len(journal)
            start = max(0, count - TAIL_VERDICT_RECORDS)
            for record in journal.records_of_kinds(frozenset({"risk.verdict.v2"}), start):
                overview.tail_verdicts.append((record.seq, record.event()))  # type: ignore[arg-type]
            overview.records = count
            overview.last_ts_ns = journal.record(count - 1).ts_ns if count else 0
        self.call_from_thread(self._show_overview, overview)

    def _load_detail(self) -> None:
        detail = Detail()
        with self._open() as journal:
            detail.apply_all(journal.records_of_kinds(DETAIL_KINDS, 0))
            detail.records = len(journal)
        self.call_from_thread(self._show_detail, detail)

    def _load_folds(self) -> None:
        for name, loader in (("summary", self.sources.summary), ("execution", self.sources.execution)):
            if loader is None:
                continue
            try:
                with self._open() as journal:
                    value = loader(journal)
            except Exception as error:  # a fold that cannot read this journal says why on screen
                self.call_from_thread(self._set_status, f"{name}: {error}")
                continue
            self.call_from_thread(self._show_fold, name, value)

    def _show_overview(self, overview: Overview) -> None:
        self.overview = overview
        views.show_centre(self)
        views.show_static_tabs(self)
        self._set_status(f"{overview.records:,} records read; folding orders and verdicts...")
        self.call_after_refresh(self._first_screen_painted)

    def _first_screen_painted(self) -> None:
        self.first_screen_ready = True
        self.run_worker(self._load_rest, thread=True, group="load")
        if self.sources.health is not None and self.health is None:
            loader = self.sources.health

            def work() -> None:
                try:
                    lines = loader()
                except Exception as error:  # a lake that cannot be read says why on the data tab
                    lines = [f"data health: {error}"]
                self.call_from_thread(self._show_health, lines)

            self.run_worker(work, thread=True, group="health", exclusive=True)

    def _show_health(self, lines: list[str]) -> None:
        self.health = lines
        views.show_static_tabs(self)

    def _show_detail(self, detail: Detail) -> None:
        self.detail = detail
        self.detail_ready = True
        views.show_centre(self)
        views.show_orders(self)
        self._set_status(f"{detail.records:,} records folded ({len(detail.orders):,} orders)")
        self._load_tail(TailFilter.parse(""), None)

    def _show_fold(self, name: str, value: object) -> None:
        setattr(self, name, value)
        if name == "summary":
            views.show_summary(self)
        else:
            views.show_quality(self)

    def _set_status(self, text: str) -> None:
        self.status_line = text
        self.query_one("#status", Static).update(text)

    # --- following a growing journal ---------------------------------------------------------

    def _start_following(self) -> None:
        self.set_interval(self.sources.poll_interval_s, self._poll)

    def _poll(self) -> None:
        if self._polling or not self.detail_ready:
            return
        self._polling = True
        self.run_worker(self._read_growth, thread=True, group="poll")

    def _read_growth(self) -> None:
        try:
            with self._open() as journal:
                count = len(journal)
                start = self.overview.records
                if count <= start:
                    return
                overview_records = list(journal.records_of_kinds(OVERVIEW_KINDS | {"risk.verdict.v2"}, start))
                detail_records = list(journal.records_of_kinds(DETAIL_KINDS, start))
                last_ts = journal.record(count - 1).ts_ns
            self.call_from_thread(self._apply_growth, overview_records, detail_records, count, last_ts)
        finally:
            self._polling = False

    def _apply_growth(self, overview_records: list, detail_records: list, count: int, last_ts: int) -> None:  # type: ignore[type-arg]
        for record in overview_records:
            if record.kind == "risk.verdict.v2":
                self.overview.tail_verdicts.append((record.seq, record.event()))
            else:
                self.overview.apply(record)
        assert self.detail is not None
        self.detail.apply_all(detail_records)
        self.overview.records = self.detail.records = count
        self.overview.last_ts_ns = last_ts
        views.show_centre(self)
        views.show_orders(self)
        self._set_status(f"following: {count:,} records")

    # --- actions ---------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        if tab == "positions":
            self._load_positions()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_reload(self) -> None:
        self._set_status("recomputing the report folds...")
        self.run_worker(self._load_folds, thread=True, group="folds")

    def action_filter(self) -> None:
        active = self.query_one("#tabs", TabbedContent).active
        target = {"orders": "#blotter-filter", "journal": "#tail-filter", "replay": "#replay-day"}.get(active)
        if target:
            self.query_one(target, Input).focus()

    def action_goto(self) -> None:
        self.action_tab("journal")
        self.query_one("#tail-seq", Input).focus()

    def action_why(self) -> None:
        if self.detail is None:
            self._set_status("the why-chain needs the order fold: still loading")
            return
        active = self.query_one("#tabs", TabbedContent).active
        handler: Callable[[], None] | None = {
            "orders": self._why_from_blotter,
            "positions": self._why_from_position,
            "journal": self._why_from_tail,
        }.get(active)
        if handler is None:
            self._set_status("w: select an order (2), a position (3) or a fill in the journal (5)")
            return
        handler()

    def _row_key(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def _why_from_blotter(self) -> None:
        order_id = self._row_key("#blotter")
        if order_id is not None:
            self.show_why(f"order {order_id}", order_id=order_id)

    def _why_from_position(self) -> None:
        key = self._row_key("#positions-table")
        if key is None or self.detail is None:
            return
        seq = self.detail.last_fill_of(int(key))
        if seq is None:
            self._set_status("no fill of this instrument in the journal")
            return
        self.show_why(f"position {views.symbol(self, int(key))}: its last fill (seq {seq})", fill_seq=seq)

    def _why_from_tail(self) -> None:
        key = self._row_key("#tail")
        if key is None or self.detail is None:
            return
        seq = int(key)
        if any(fill_seq == seq for fill_seq, _ in self.detail.fills):
            self.show_why(f"fill seq {seq}", fill_seq=seq)
            return
        order_id = views.order_id_at(self, seq)
        if order_id is None:
            self._set_status(f"seq {seq} is not an order event: the why-chain starts at a fill or an order")
            return
        self.show_why(f"order {order_id}", order_id=order_id)

    def show_why(self, title: str, *, order_id: str | None = None, fill_seq: int | None = None) -> None:
        """Build the why-chain's links (index look-ups) and decode them in a worker."""
        assert self.detail is not None
        links = (
            self.detail.why_fill(fill_seq) if fill_seq is not None else self.detail.why_order(order_id or "")
        )
        self.query_one("#tabs", TabbedContent).active = "why"
        self.query_one("#why-head", Static).update(f"why? {title}: {len(links)} events, oldest first")
        self.run_worker(lambda: self._decode_links(links), thread=True, group="why", exclusive=True)

    def _decode_links(self, links: list) -> None:  # type: ignore[type-arg]
        with self._open() as journal:
            decoded = [(link.seq, link.role, journal.record(link.seq).event()) for link in links]
        self.call_from_thread(views.show_why_chain, self, decoded)

    # --- inputs ----------------------------------------------------------------------------

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id == "blotter-filter":
            views.show_orders(self)
            self.query_one("#blotter", DataTable).focus()
        elif message.input.id in ("tail-filter", "tail-seq"):
            seq_text = self.query_one("#tail-seq", Input).value.strip()
            start = int(seq_text) if seq_text else None
            self._load_tail(TailFilter.parse(self.query_one("#tail-filter", Input).value), start)
            self.query_one("#tail", DataTable).focus()
        elif message.input.id == "replay-day":
            self._start_replay(message.value.strip())

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if message.data_table.id == "why-table":
            views.show_why_event(self, message.cursor_row)

    def _load_tail(self, tail_filter: TailFilter, start: int | None) -> None:
        instruments = dict(self.overview.instruments)

        def work() -> None:
            with self._open() as journal:
                rows, head = read_tail(journal, tail_filter, start, instruments, self.overview.currency)
            self.call_from_thread(views.show_tail, self, rows, head)

        self.run_worker(work, thread=True, group="tail", exclusive=True)

    def _load_positions(self) -> None:
        if self.marks is not None or self.sources.marks is None:
            views.show_positions(self)
            return
        views.show_positions(self)
        loader = self.sources.marks

        def work() -> None:
            try:
                with self._open() as journal:
                    marks = loader(journal)
            except Exception as error:  # the data set may be gone: positions still show, unmarked
                self.call_from_thread(self._set_status, f"marks: {error}")
                return
            self.call_from_thread(self._show_marks, marks)

        self.run_worker(work, thread=True, group="marks", exclusive=True)

    def _show_marks(self, marks: Marks) -> None:
        self.marks = marks
        views.show_positions(self)

    def snapshot_event(self) -> StateSnapshotted | None:
        record = self.overview.last_snapshot
        if record is None:
            return None
        event = record.event()
        return event if isinstance(event, StateSnapshotted) else None

    def _start_replay(self, text: str) -> None:
        try:
            day = int(text.replace("-", ""))
        except ValueError:
            self.query_one("#replay-verdict", Static).update(f"not a day: {text!r} (YYYY-MM-DD)")
            return
        views.show_replay_journal(self, day)
        build = self.sources.replay_build
        if build is None:
            self.query_one("#replay-verdict", Static).update(
                "replay is not available: no run builder was given"
            )
            return
        self.query_one("#replay-verdict", Static).update(f"replaying {day} with a fresh kernel...")

        def work() -> None:
            try:
                with self._open() as journal:
                    result = replay(journal, build, day=day)
            except Exception as error:  # a config that cannot be rebuilt here, a missing data set
                self.call_from_thread(views.show_replay_error, self, day, error)
                return
            self.call_from_thread(views.show_replay_result, self, day, result)

        self.run_worker(work, thread=True, group="replay", exclusive=True)


def cockpit_app(journal: Path, **sources: object) -> CockpitApp:
    """A cockpit on ``journal`` with only the journal's own screens (tests, benches)."""
    return CockpitApp(CockpitSources(journal=journal, **sources))  # type: ignore[arg-type]
