"""The cockpit's screens as widgets: one tab pane per screen (what ``tui.views`` fills)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Input, Sparkline, Static, TabbedContent, TabPane

from tui.sources import COMMANDS_DISABLED_REASON

__all__ = ["OPERATOR_COMMANDS", "SENDABLE", "TABS", "compose_tabs"]

TABS = ("centre", "orders", "positions", "why", "journal", "replay", "data", "commands")
OPERATOR_COMMANDS = ("halt", "flatten", "pause", "resume", "rearm", "acknowledge")
SENDABLE = ("halt", "flatten", "pause", "resume", "rearm")  # what a running session takes


def compose_tabs(initial: str = "centre") -> ComposeResult:
    with TabbedContent(id="tabs", initial=initial):
        with TabPane("1 Centre", id="centre"), VerticalScroll():
            yield from _centre()
        with TabPane("2 Orders", id="orders"), VerticalScroll():
            yield from _orders()
        with TabPane("3 Positions", id="positions"), VerticalScroll():
            yield Static("positions: loading...", id="positions-head")
            yield DataTable(id="positions-table", cursor_type="row")
        with TabPane("4 Why?", id="why"), VerticalScroll():
            yield Static(
                "Select an order (2), a position (3) or a fill in the journal (5) and press w.", id="why-head"
            )
            yield DataTable(id="why-table", cursor_type="row")
            yield Static(id="why-event")
        with TabPane("5 Journal", id="journal"), VerticalScroll():
            yield from _journal()
        with TabPane("6 Replay", id="replay"), VerticalScroll():
            yield from _replay()
        with TabPane("7 Data", id="data"), VerticalScroll():
            yield Static(id="data-health")
        with TabPane("8 Commands", id="commands"), VerticalScroll():
            yield Static(COMMANDS_DISABLED_REASON, id="commands-reason")
            yield Input(placeholder="strategy id (pause / resume)", id="cmd-strategy")
            for command in OPERATOR_COMMANDS:
                yield Button(f"{command} (disabled)", id=f"cmd-{command}", disabled=True)
            yield Static(id="commands-journaled")


def _centre() -> ComposeResult:
    yield Static(id="cc-head")
    yield Static("NAV", classes="label")
    yield Sparkline([], id="nav-spark")
    yield Static("drawdown", classes="label")
    yield Sparkline([], id="dd-spark")
    yield Static(id="cc-risk")
    yield Static(id="cc-kill")
    yield Static(id="cc-alerts")
    yield DataTable(id="alerts", cursor_type="row")
    yield Static(id="cc-stale")
    yield DataTable(id="verdicts", cursor_type="row")
    yield Static("report summary: loading...", id="cc-summary")


def _orders() -> ComposeResult:
    yield Static("orders: loading...", id="funnel")
    yield Input(placeholder="filter: text, status:rejected, strategy:sma, side:sell", id="blotter-filter")
    yield DataTable(id="blotter", cursor_type="row")
    yield Static("execution quality: loading...", id="quality")


def _journal() -> ComposeResult:
    with Horizontal(classes="inputs"):
        yield Input(placeholder="filter: kind:order instrument:3 order:ID", id="tail-filter")
        yield Input(placeholder="seq or 2024-03-05T14:30Z", id="tail-seq")  # whole at 80 columns
    yield Static(id="tail-head")
    yield DataTable(id="tail", cursor_type="row")


def _replay() -> ComposeResult:
    yield Input(placeholder="day to replay: YYYY-MM-DD (enter)", id="replay-day")
    with Horizontal(classes="sides"):
        yield Static(
            "Pick a session day: the journal's close of it and a fresh replay's verdict show side by "
            "side; n / p and ] / [ step through its records and steps.",
            id="replay-journal",
        )
        yield Static(id="replay-verdict")
    yield Static(id="replay-cursor")
    yield Static(id="replay-book")
    yield DataTable(id="replay-positions", cursor_type="row")
