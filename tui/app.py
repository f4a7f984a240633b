"""The cockpit: a Textual app over one journal (finished, or growing while another process
appends to it). The data lives in ``tui.data.CockpitData`` (its reads run in worker threads,
each with its own read-only journal); the widgets in ``tui.panes``; what they show is
rendered by ``tui.views``. The app wires keys and inputs to reads and reads to views.

Screens (tabs, keys 1-8): command centre, orders, positions, why?, journal, replay (``n`` /
``p`` and ``]`` / ``[`` step through a day), data, commands. ``?`` lists the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.markup import escape
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Button, DataTable, Footer, Header, Input, Static, TabbedContent

from kernel.journal import JournalError
from kernel.replay import ReplayResult
from projections.alerts import Alert
from tui import replay_view, views
from tui.confirm import ConfirmScreen
from tui.data import CockpitData, Growth
from tui.daytape import DayTape
from tui.fold import Detail, Overview
from tui.help import HelpScreen
from tui.panes import TABS, compose_tabs
from tui.sources import CockpitSources, Marks
from tui.tables import Row
from tui.tail import TailFilter, TailPage, parse_jump

__all__ = ["TABS", "CockpitApp"]

TABS_WIDE = 82  # the eight tab labels with a space either side ("1 Centre" .. "8 Commands")
ALERTS_POLL_S = 1.0  # the alert state is read at most this often (tape alerts follow writes it)
ANSWER_HOLD_S = 30.0  # an answer to a key stays on the status line this long while it follows
FOLLOWED_SCREENS = frozenset({"centre", "orders", "positions", "journal"})  # refilled as it grows

T = TypeVar("T")


class CockpitApp(App[None]):
    """``tape cockpit JOURNAL``."""

    TITLE = "Tape cockpit"
    CSS_PATH = Path(__file__).with_name("cockpit.tcss")
    # below the tab labels' width with their padding the tabs lose one space each (cockpit.tcss)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (TABS_WIDE, "-wide")]  # noqa: RUF012 (Textual's)
    # The tab keys are on the tabs' labels ("1 Centre"), so the footer keeps room for the rest.
    BINDINGS = [  # noqa: RUF012 (Textual's declared class attribute)
        Binding("1", "tab('centre')", "Centre", show=False),
        Binding("2", "tab('orders')", "Orders", show=False),
        Binding("3", "tab('positions')", "Positions", show=False),
        Binding("4", "tab('why')", "Why?", show=False),
        Binding("5", "tab('journal')", "Journal", show=False),
        Binding("6", "tab('replay')", "Replay", show=False),
        Binding("7", "tab('data')", "Data", show=False),
        Binding("8", "tab('commands')", "Commands", show=False),
        Binding("w", "why", "Why this row"),
        Binding("slash", "filter", "Filter"),
        Binding("g", "goto", "Go to seq", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("a", "acknowledge", "Ack alert", show=False),
        # the replay screen's keys are listed on it ("n / p record  ] / [ step  { / } opening /
        # end"): in the footer they pushed help and quit off an 80-column screen
        Binding("n", "step(1, 'record')", "Next record", show=False),
        Binding("p", "step(-1, 'record')", "Previous record", show=False),
        Binding("right_square_bracket", "step(1, 'step')", "Next step", show=False),
        Binding("left_square_bracket", "step(-1, 'step')", "Previous step", show=False),
        Binding("left_curly_bracket", "step(-1, 'day')", "Day's opening", show=False),
        Binding("right_curly_bracket", "step(1, 'day')", "Day's end", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, sources: CockpitSources) -> None:
        super().__init__()
        self.data = CockpitData(sources)
        self.first_screen_ready = False  # the command centre shows the whole journal
        self.detail_ready = False
        self.status_line = "opening the journal..."
        self._answer = ""  # the last answer to a key, for ANSWER_HOLD_S
        self._answers = 0
        self.why_links: list[tuple[int, str, str, str]] = []  # seq, role, kind, text
        self.table_rows: dict[str, tuple[list[Row], str]] = {}  # each table's rows, for a resize
        self.tape_index = -1  # the replay screen's cursor: a record of the day (-1: its opening)
        self.replay_day: int | None = None  # the day the replay screen shows
        self._polling = False
        self._stale: set[str] = set()  # screens the journal's growth changed, not refilled yet

    @property
    def sources(self) -> CockpitSources:
        return self.data.sources

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield from compose_tabs()
        yield Static(self.status_line, id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.sources.journal)
        views.setup_tables(self)
        self.read(self.data.read_overview, self._show_overview, "load", failed=self._unreadable)

    def read(
        self,
        read: Callable[[], T],
        show: Callable[[T], None],
        group: str,
        *,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run ``read`` in a worker thread and hand its value to ``show`` on the UI thread
        (or its error to ``failed``; without one the error is the worker's). A newer read of
        the same group replaces an older one."""

        def work() -> None:
            try:
                value = read()
            except Exception as error:
                if failed is None:
                    raise
                self._hand_over(failed, error)
                return
            self._hand_over(show, value)

        self.run_worker(work, thread=True, group=group, exclusive=True)

    def _hand_over(self, callback: Callable[[T], None], value: T) -> None:
        """``callback(value)`` on the UI thread, unless the app is closing: a read that ends
        while the app shuts down (q pressed during a poll) found the screen's widgets removed,
        and the NoMatches it raised ended the cockpit with a traceback."""

        def on_ui_thread() -> None:
            if self.is_running:  # false from the start of the shutdown, before widgets go
                callback(value)

        if not self.is_running:
            return
        try:
            self.call_from_thread(on_ui_thread)
        except RuntimeError:  # "App is not running": it closed while this read ran
            if self.is_running:
                raise

    def on_resize(self) -> None:
        # after the refresh: while the resize event is handled, ``self.size`` is still the old
        # size (the tables were refitted to the width the terminal had before)
        self.call_after_refresh(views.refit_tables, self)
        self.call_after_refresh(self._refit_replay)

    def _refit_replay(self) -> None:
        """The replay screen's lines break between a label and its figure at the new width."""
        if self.replay_day is None:
            return
        views.show_replay_journal(self, self.replay_day)
        if self.data.replay_result is not None:
            replay_view.show_replay_result(self, self.replay_day, self.data.replay_result)
        replay_view.show_day_tape(self)

    def set_status(self, text: str) -> None:
        """An answer to a key (a command sent or refused, a jump that could not be read): it
        stays in front of the following count for ``ANSWER_HOLD_S`` (a poll used to replace it
        within one interval, so a session's operator never saw "halt sent")."""
        self._answer = text
        self._answers += 1
        answers = self._answers

        def expire() -> None:  # a later answer keeps its own time
            if self._answers == answers:
                self._answer = ""

        self.set_timer(ANSWER_HOLD_S, expire)
        self._show_status(text)

    def _show_status(self, text: str) -> None:
        self.status_line = text
        self.query_one("#status", Static).update(text)

    def _show_following(self) -> None:
        following = f"following: {self.data.overview.records:,} records"
        if self._answer:
            following = f"{self._answer}  |  {following}"
        self._show_status(following)

    def _unreadable(self, error: Exception) -> None:
        if not isinstance(error, JournalError):
            raise error
        message = f"cannot read the journal: {error}"
        self.set_status(message)
        # on the first screen too, in place of the run's header (nothing else of it can show)
        self.query_one("#cc-head", Static).update(f"[b $error]{escape(message)}[/]")
        # and the panes still waiting for it stop saying "loading..."
        missing = "not available: the journal could not be read (the status line says why)"
        waiting = {
            "#cc-summary": ("report summary", self.data.summary is None),
            "#quality": ("execution quality", self.data.execution is None),
            "#funnel": ("orders", self.data.detail is None),
            "#positions-head": ("positions", self.data.detail is None),
        }
        for pane, (what, still_waiting) in waiting.items():
            if still_waiting:
                self.query_one(pane, Static).update(f"{what}: {missing}")

    # --- loading, in order: overview (first screen), orders, report folds, following -------

    def _show_overview(self, overview: Overview) -> None:
        self.data.overview = overview
        views.show_centre(self)
        views.show_static_tabs(self)
        self._show_status(f"{self.data.overview.records:,} records read; folding orders and verdicts...")
        self.call_after_refresh(self.first_screen_painted)

    def first_screen_painted(self) -> None:
        """The order fold and the report folds start once the first screen has painted (a
        fold holding the GIL would otherwise delay that paint)."""
        self.first_screen_ready = True
        if self.sources.alerts is not None:
            self._poll_alerts()
            if self.sources.follow:
                self.set_interval(max(self.sources.poll_interval_s, ALERTS_POLL_S), self._poll_alerts)
        self.read(self.data.read_detail, self._show_detail, "detail", failed=self._unreadable)
        if self.sources.health is not None and self.data.health is None:
            self.read(self.data.read_health, self._show_health, "health")
        if self.sources.replay_day is not None:
            day = self.sources.replay_day
            self.action_tab("replay")
            self.query_one(
                "#replay-day", Input
            ).value = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}"
            self.start_replay(str(day))

    def _show_health(self, lines: list[str]) -> None:
        self.data.health = lines
        views.show_static_tabs(self)

    def _show_detail(self, detail: Detail) -> None:
        self.data.detail = detail
        self.detail_ready = True
        views.show_centre(self)
        views.show_orders(self)
        self._show_status(f"{detail.records:,} records folded ({len(detail.orders):,} orders)")
        self._load_tail(TailFilter.parse(""), None)
        self._load_folds()
        if self.sources.follow:
            self.set_interval(self.sources.poll_interval_s, self._poll)

    def _show_fold(self, name: str, value: object) -> None:
        if value is None:
            return
        self.data.set_fold(name, value)
        views.show_summary(self) if name == "summary" else views.show_quality(self)

    # --- following a growing journal ---------------------------------------------------------

    def _poll(self) -> None:
        if self._polling or not self.detail_ready:
            return
        try:
            tabs = self.query_one("#tabs", TabbedContent)
        except NoMatches:  # the app is closing: its screens are gone, the timer not yet
            return
        self._polling = True

        def done(growth: Growth | None) -> None:
            self._polling = False
            if growth is not None:
                self.data.apply_growth(growth)
                self._stale.update(FOLLOWED_SCREENS)
                if tabs.is_attached:  # not when the app closed while the worker read
                    self._show_if_stale(tabs.active)
                    self._show_following()

        def failed(error: Exception) -> None:
            self._polling = False
            self.set_status(f"cannot read the journal: {error}")

        # the journal page gains its new rows only while it is on display (described once each;
        # shown again later, it catches up from its end at the next poll)
        shown = tabs.active == "journal"
        start, tail = self.data.overview.records, self.data.tail if shown else None
        self.read(lambda: self.data.read_growth(start, tail), done, "poll", failed=failed)

    def _poll_alerts(self) -> None:
        """The alert state, read in a worker (tape alerts follow fires and resolves alerts on
        its own clock, whether the journal grows or not)."""
        self.read(self.data.read_alerts, self._show_alerts, "alerts")

    def _show_alerts(self, value: object) -> None:
        if self.data.set_alerts(value):  # type: ignore[arg-type]
            views.show_alerts(self)
            views.show_command_buttons(self)
            views.show_journaled_commands(self)

    # --- actions ---------------------------------------------------------------------------

    def action_acknowledge(self) -> None:
        """``a``: acknowledge the alert highlighted on the command centre, after a confirmation;
        journaled in the alerts journal as ``tape alerts ack`` journals it."""
        desk = self.sources.alerts
        if desk is None:
            self.set_status("a: no alerts here (open the cockpit with --alerts RULES)")
            return
        key = self._row_key("#alerts")
        alert = next((a for a in self.data.alerts or [] if str(a.id) == key), None)
        if alert is None:
            self.set_status("a: no firing alert to acknowledge (the command centre lists them)")
            return
        if alert.acked_by is not None:
            self.set_status(f"alert {alert.id} was acknowledged by {alert.acked_by} already")
            return
        self.action_tab("centre")
        question = (
            f"Acknowledge alert {alert.id} ({alert.severity}: {alert.rule} {alert.key}) as "
            f"{desk.operator}?\n{alert.message}\nIts repeats stop; it stays firing until it resolves."
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                self.set_status(f"alert {alert.id} not acknowledged")
                return
            self.read(
                lambda: self.data.acknowledge(alert.id),
                self._acknowledged,
                "ack",
                failed=lambda error: self.set_status(f"alert {alert.id} not acknowledged: {error}"),
            )

        self.push_screen(ConfirmScreen(escape(question)), answered)

    def _acknowledged(self, alert: Alert) -> None:
        self.set_status(f"alert {alert.id} ({alert.rule} {alert.key}) acknowledged by {alert.acked_by}")
        self._poll_alerts()

    def action_tab(self, tab: str) -> None:
        # Nothing of the screen left keeps the focus: a focused table (the blotter after a filter,
        # the replay's book after a day) handed it, as it was hidden, to the field before it in
        # its pane, and the tabs follow the focus back to that pane: the key did not switch and
        # the next keys were typed into the field.
        self.screen.set_focus(None)
        self.query_one("#tabs", TabbedContent).active = tab
        if tab == "positions":
            self._load_positions()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if not self.screen_stack:  # the app is closing (its screens are gone), the message late
            return
        self.refresh_bindings()  # the replay keys work on the replay screen only (check_action)
        self._show_if_stale(event.pane.id or "")
        if event.pane.id == "journal" and self.sources.follow:
            self._poll()  # the page catches up with what was appended while it was not shown

    def _show_if_stale(self, screen: str) -> None:
        """Refill a screen the journal's growth changed, when it is the one shown: while
        following, only the screen on display is refilled each poll (refilling every screen
        would keep the UI thread busy and the keys waiting)."""
        if screen not in self._stale:
            return
        self._stale.discard(screen)
        if screen == "centre":
            views.show_centre(self)
        elif screen == "orders":
            views.show_orders(self)
        elif screen == "positions":  # the book of the last day snapshot, which a close replaces
            views.show_positions(self)
        elif screen == "journal" and self.data.tail is not None and self.data.tail.follows:
            views.show_tail(self, self.data.tail)  # the last records: the poll appended the new ones

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != "step":
            return True
        return self.data.tape is not None and self.query_one("#tabs", TabbedContent).active == "replay"

    def action_step(self, direction: int, unit: str) -> None:
        """Move the replay screen's cursor by a record, a kernel step or to an end of the day."""
        tape = self.data.tape
        if tape is None:
            return
        index = self.tape_index
        if unit == "record":
            index = min(max(index + direction, -1), len(tape) - 1)
        elif unit == "step":
            index = tape.next_step(index) if direction > 0 else tape.previous_step(index)
        else:
            index = len(tape) - 1 if direction > 0 else -1
        self.tape_index = index
        replay_view.show_day_tape(self)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_reload(self) -> None:
        self.set_status("recomputing the report folds...")
        self._load_folds()

    def _load_folds(self) -> None:
        """The report folds, each in its own worker; one that cannot read this journal says
        why in the status line."""
        for name in ("summary", "execution"):
            self._load_fold(name)

    def _load_fold(self, name: str) -> None:
        self.read(
            lambda: self.data.read_fold(name),
            lambda value: self._show_fold(name, value),
            f"fold-{name}",
            failed=lambda error: self.set_status(f"{name}: {error}"),
        )

    def action_filter(self) -> None:
        active = self.query_one("#tabs", TabbedContent).active
        target = {"orders": "#blotter-filter", "journal": "#tail-filter", "replay": "#replay-day"}.get(active)
        if target:
            self.query_one(target, Input).focus()

    def action_goto(self) -> None:
        self.action_tab("journal")
        self.query_one("#tail-seq", Input).focus()

    def action_why(self) -> None:
        if self.data.detail is None:
            self.set_status("the why-chain needs the order fold: still loading")
            return
        active = self.query_one("#tabs", TabbedContent).active
        start = {"orders": self._why_from_blotter, "positions": self._why_from_position,
                 "journal": self._why_from_tail}.get(active)  # fmt: skip
        if start is None:
            self.set_status("w: select an order (2), a position (3) or a fill in the journal (5)")
            return
        start()

    def _row_key(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _why_from_blotter(self) -> None:
        order_id = self._row_key("#blotter")
        if order_id is not None:
            self.show_why(f"order {order_id}", order_id=order_id)

    def _why_from_position(self) -> None:
        key = self._row_key("#positions-table")
        if key is None or self.data.detail is None:
            return
        seq = self.data.detail.last_fill_of(int(key))
        if seq is None:
            self.set_status("no fill of this instrument in the journal")
            return
        self.show_why(f"position {self.data.symbol(int(key))}: its last fill (seq {seq})", fill_seq=seq)

    def _why_from_tail(self) -> None:
        key = self._row_key("#tail")
        if key is None or self.data.detail is None:
            return
        seq = int(key)
        if any(fill_seq == seq for fill_seq, _ in self.data.detail.fills):
            self.show_why(f"fill seq {seq}", fill_seq=seq)
            return
        order_id = self.data.order_id_at(seq)
        if order_id is None:
            self.set_status(f"seq {seq} is not an order event: the why-chain starts at a fill or an order")
            return
        self.show_why(f"order {order_id}", order_id=order_id)

    def show_why(self, title: str, *, order_id: str | None = None, fill_seq: int | None = None) -> None:
        """Build the why-chain's links (index look-ups) and decode them in a worker."""
        detail = self.data.detail
        assert detail is not None
        links = detail.why_fill(fill_seq) if fill_seq is not None else detail.why_order(order_id or "")
        self.query_one("#tabs", TabbedContent).active = "why"
        self.query_one("#why-head", Static).update(f"why? {title}: {len(links)} events, oldest first")
        self.read(
            lambda: self.data.read_links(links), lambda decoded: views.show_why_chain(self, decoded), "why"
        )

    # --- inputs ----------------------------------------------------------------------------

    def on_button_pressed(self, message: Button.Pressed) -> None:
        """An operator command button: sent to the running session (it journals and applies it)."""
        button = message.button.id or ""
        if button == "cmd-acknowledge":
            self.action_acknowledge()
            return
        sender = self.sources.commands
        if not button.startswith("cmd-") or sender is None:
            return
        command = button.removeprefix("cmd-")
        strategy = ""
        if command in ("pause", "resume"):
            strategy = self.query_one("#cmd-strategy", Input).value.strip()
            if not strategy:
                self.set_status(f"{command}: type the strategy id first")
                return
            refused = sender.refusal(command, strategy)
            if refused is not None:  # refused now, not after the operator said yes
                self.set_status(f"{command} not sent: {refused}")
                return

        def answered(yes: bool | None) -> None:
            if not yes:
                self.set_status(f"{command} not sent")
                return
            try:
                self.set_status(sender.send(command, "from the cockpit", strategy))
            except (OSError, ValueError) as error:
                self.set_status(f"{command} not sent: {error}")
            views.show_command_buttons(self)

        # a command changes what a live session does (flatten closes the book): asked first
        self.push_screen(
            ConfirmScreen(escape(command_question(command, strategy, self.sources.journal))), answered
        )

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id == "blotter-filter":
            views.show_orders(self)
            self.query_one("#blotter", DataTable).focus()
        elif message.input.id in ("tail-filter", "tail-seq"):
            self._jump(self.query_one("#tail-seq", Input).value.strip())
        elif message.input.id == "replay-day":
            self.start_replay(message.value.strip())
            # out of the field whatever the day gives (a day without a close, a journal that
            # cannot be replayed): left there, the screen keys (1-8, q, ?) were typed into it
            self.query_one("#replay-positions", DataTable).focus()

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if message.data_table.id == "why-table":
            views.show_why_event(self, message.cursor_row)

    def _jump(self, where: str) -> None:
        """The journal tail from a sequence number or a time (empty: the last page)."""
        tail_filter = TailFilter.parse(self.query_one("#tail-filter", Input).value)
        try:
            seq, ts_ns = parse_jump(where) if where else (None, None)
        except ValueError as error:
            self.set_status(str(error))
            return
        if ts_ns is not None:
            read_at = lambda: self.data.read_tail_at(tail_filter, ts_ns)  # noqa: E731
            self.read(read_at, self._show_tail, "tail", failed=self._unreadable)
        else:
            self._load_tail(tail_filter, seq)
        self.query_one("#tail", DataTable).focus()

    def _load_tail(self, tail_filter: TailFilter, start: int | None) -> None:
        self.read(
            lambda: self.data.read_tail(tail_filter, start), self._show_tail, "tail", failed=self._unreadable
        )

    def _show_tail(self, page: TailPage) -> None:
        """A page read afresh (a filter, a jump, the first load); the poll extends it from
        here while it shows the last records."""
        self.data.tail = page
        views.show_tail(self, page)

    def _load_positions(self) -> None:
        views.show_positions(self)
        if self.data.marks is not None or self.sources.marks is None:
            return

        self._load_marks()

    def _load_marks(self) -> None:
        """The kernel's prices by step (``Marks``), for the positions and the replay screens
        (the data set may be gone: both still show, unmarked)."""
        self.read(self.data.read_marks, self._show_marks, "marks",
                  failed=lambda error: self.set_status(f"marks: {error}"))  # fmt: skip

    def _show_marks(self, marks: Marks | None) -> None:
        self.data.marks = marks
        views.show_positions(self)
        replay_view.show_day_tape(self)

    def start_replay(self, text: str) -> None:
        """Open a day on the replay screen: the journal's close of it, its records to step
        through with the book after each, and a fresh replay's verdict."""
        try:
            day = int(text.replace("-", ""))
        except ValueError:
            self.query_one("#replay-verdict", Static).update(f"not a day: {text!r} (YYYY-MM-DD)")
            return
        self.replay_day = day
        views.show_replay_journal(self, day)
        self.data.tape = self.data.replay_result = None
        self.refresh_bindings()
        self.query_one("#replay-cursor", Static).update(f"reading {day}'s records...")
        self.read(lambda: self.data.read_day_tape(day), self._show_tape, "tape",
                  failed=lambda error: replay_view.show_tape_error(self, day, error))  # fmt: skip
        if self.data.marks is None and self.sources.marks is not None:
            self._load_marks()
        if self.sources.replay_build is None:
            self.query_one("#replay-verdict", Static).update(
                "replay is not available: no run builder was given"
            )
            return
        self.query_one("#replay-verdict", Static).update(f"replaying {day} with a fresh kernel...")
        self.read(
            lambda: self.data.read_replay(day),
            lambda result: self._show_replay_result(day, result),
            "replay",
            # a config that cannot be rebuilt here, a missing data set
            failed=lambda error: replay_view.show_replay_error(self, day, error),
        )

    def _show_tape(self, tape: DayTape) -> None:
        self.data.tape = tape
        self.table_rows = {}  # each table's rows, for a resize
        self.tape_index = -1
        self._jump_to_divergence()
        replay_view.show_day_tape(self)
        self.query_one("#replay-positions", DataTable).focus()
        self.refresh_bindings()

    def _show_replay_result(self, day: int, result: ReplayResult) -> None:
        self.data.replay_result = result
        replay_view.show_replay_result(self, day, result)
        if self._jump_to_divergence():
            replay_view.show_day_tape(self)

    def _jump_to_divergence(self) -> bool:
        """Put the replay cursor on the first divergent record, when it is in the day."""
        result, tape = self.data.replay_result, self.data.tape
        if result is None or result.divergence is None or tape is None:
            return False
        index = tape.index_of(result.divergence.seq)
        if index is None:
            return False
        self.tape_index = index
        return True


COMMAND_EFFECTS = {
    "halt": "its kill switch trips: no new risk until rearm",
    "flatten": "its kill switch trips and the book is flattened: orders close every position",
    "rearm": "its kill switch is armed again: the strategies may take risk again",
    "pause": "the strategy {strategy!r} takes no decisions until resume (its positions and orders stay)",
    "resume": "the strategy {strategy!r} decides again",
}


def command_question(command: str, strategy: str, journal: Path) -> str:
    """What the confirmation of an operator command asks: what it does, to which session."""
    effect = COMMAND_EFFECTS[command].format(strategy=strategy)
    return (
        f"Send {command}{f' {strategy}' if strategy else ''} to the session writing {journal}?\n"
        f"{effect[0].upper()}{effect[1:]}. The session journals the command as it reads it and "
        "applies it at its next step."
    )


def cockpit_app(journal: Path, **sources: object) -> CockpitApp:
    """A cockpit on ``journal`` with only the journal's own screens (tests, benches)."""
    return CockpitApp(CockpitSources(journal=journal, **sources))  # type: ignore[arg-type]
