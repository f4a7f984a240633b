"""The replay screen: a day's journal stepped through record by record, the book after the
record under the cursor, and a fresh replay's verdict beside the journal's close of the day."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual.widgets import Static

from domain.events import Event
from kernel.replay import ReplayResult
from tui import views
from tui.daytape import BookLine, DayTape
from tui.describe import describe, full_text
from tui.format import counted, day_text, decimal, money, utc_text
from tui.tables import Row

if TYPE_CHECKING:
    from tui.app import CockpitApp

__all__ = ["show_day_tape", "show_replay_error", "show_replay_result", "show_tape_error"]

KEYS = ("n / p record", "] / [ step", "{ / } opening / end")


def show_tape_error(app: CockpitApp, day: int, error: Exception) -> None:
    app.query_one("#replay-cursor", Static).update(
        f"[red]cannot open {day_text(day)}[/]: {escape(' '.join(str(error).split()))}"
    )


def show_day_tape(app: CockpitApp) -> None:
    """The record under the cursor and the book after it."""
    tape, index = app.data.tape, app.tape_index
    if tape is None:
        return
    book = tape.book_at(index)
    prices = tape.prices_at(index, app.data.marks)
    app.query_one("#replay-cursor", Static).update(_cursor_text(app, tape, index))
    lines = tape.lines(book, prices)
    ccy = tape.currency
    cash = tape.cash_minor(book)
    text = f"cash {money(cash, ccy)}"
    if tape.rates is not None:  # several currencies: each one's cash, then all in the base
        parts = ", ".join(money(value, c) for c, value in tape.cash_by_currency(book).items())
        text += f" ({parts} at the day's rates)"
    realised = -(
        tape.total_in_base(book, "income:realized:") - tape.total_in_base(tape.opening, "income:realized:")
    )
    costs = tape.total_in_base(book, "expenses:") - tape.total_in_base(tape.opening, "expenses:")
    text += f"   realised today {money(realised, ccy)}   costs today {money(costs, ccy)}"
    if prices is not None:
        nav = tape.nav_minor(book, prices)
        opening_nav = tape.nav_minor(tape.opening, tape.prices_at(-1, app.data.marks) or {})
        if tape.rates is not None:  # the previous close's NAV, at its own day's rates
            before = [close.nav_minor for _, close in app.data.overview.closes if close.day < tape.day]
            opening_nav = before[-1] if before else views.initial_nav_minor(app)
        unrealised = sum(
            tape.in_base(
                (line.value_minor or 0) - line.cost_minor, tape.instruments[line.instrument_id].currency
            )
            for line in lines
        )
        text += (
            f"\nNAV {money(nav, ccy)}   PnL today {money(nav - opening_nav, ccy)}   "
            f"unrealised {money(unrealised, ccy)}"
        )
    elif app.data.sources.marks is None:
        text += "\nNAV: not marked (no data set marks were given)"
    else:
        text += "\nNAV: loading the data set's closes to mark the book..."
    app.query_one("#replay-book", Static).update(text)
    _fill_positions(app, tape, lines)


def _cursor_text(app: CockpitApp, tape: DayTape, index: int) -> str:
    day = day_text(tape.day)
    last_seq = tape.start_seq + len(tape) - 1
    counts = (
        f"{day}: {counted(len(tape), 'record')} (seq {tape.start_seq:,}..{last_seq:,}), "
        f"{counted(len(tape.step_starts), 'step')}"
    )
    width = views.text_width(app)
    # broken between the counts and the keys' groups only ("{ /" and "}" split at 80 columns)
    lines = [line.replace("[", "\\[") for line in views.fitted([counts, *KEYS], width)]  # no markup
    head = f"[b]{day}[/b]{lines[0].removeprefix(day)}\n" + "".join(f"{line}\n" for line in lines[1:])
    if index < 0:
        source = (
            f"the kernel's snapshot seq {tape.opening_snapshot_seq:,}"
            if tape.opening_snapshot_seq >= 0
            else "the run's start (no earlier snapshot)"
        )
        return head + f"at the opening: the book of {source}"
    record, event = tape.records[index], tape.events[index]
    line = describe(event, tape.instruments, tape.currency)
    return head + (
        f"record {index + 1:,}/{len(tape):,}  step {tape.step_number(index):,}/{len(tape.step_starts):,}  "
        f"seq {record.seq:,}  {utc_text(record.ts_ns)}\n{record.kind}: {escape(line)}"
    )


def _fill_positions(app: CockpitApp, tape: DayTape, lines: list[BookLine]) -> None:
    rows = []
    for line in lines:
        inst = tape.instruments.get(line.instrument_id)
        ccy = inst.currency if inst is not None else tape.currency  # its own currency's money
        qty_digits, price_digits = (inst.qty_digits, inst.price_digits) if inst is not None else (0, 0)
        cells = (
            app.data.symbol(line.instrument_id),
            decimal(line.qty_raw, qty_digits),
            money(line.cost_minor, ccy),
            decimal(line.mark_px_raw, price_digits) if line.mark_px_raw is not None else "-",
            money(line.value_minor, ccy) if line.value_minor is not None else "-",
            money(line.value_minor - line.cost_minor, ccy) if line.value_minor is not None else "-",
        )
        rows.append(Row(str(line.instrument_id), cells))
    views.fill(app, "#replay-positions", rows, "the book after the record")


def show_replay_result(app: CockpitApp, day: int, result: ReplayResult) -> None:
    widget = app.query_one("#replay-verdict", Static)
    if result.ok:
        rehashed = result.segments_rehashed
        # words wrap freely; a count with its noun and the seq range stay whole
        parts = [
            "replay",
            "matched",
            f"{day_text(day)}:",
            counted(result.records_compared, "derived record"),
            f"(seq {result.first_seq:,}..{result.last_seq:,})",
            *("re-derived", "byte", "for", "byte", "by", "a", "fresh", "kernel,"),
            f"{rehashed:,} segment {'hash' if rehashed == 1 else 'hashes'}",
            "rebuilt",
            *(["(an unfinished run)"] if result.unfinished else []),
        ]
        lines = [escape(line) for line in views.fitted(parts, views.side_width(app), " ")]
        title = "replay matched"
        widget.update("\n".join([f"[b][green]{title}[/][/b]{lines[0].removeprefix(title)}", *lines[1:]]))
        return
    divergence = result.divergence
    assert divergence is not None
    widget.update(
        f"[b][red]replay diverged[/][/b] at seq {divergence.seq:,}: {escape(divergence.reason)}\n"
        f"[b]journal[/b]: {_decoded(app, divergence.expected)}\n"
        f"[b]replay[/b]:  {_decoded(app, divergence.actual)}"
    )


def _decoded(app: CockpitApp, event: Event | None) -> str:
    if event is None:
        return "(none)"
    overview = app.data.overview
    kind = type(event).__struct_config__.tag
    line = describe(event, overview.instruments, overview.currency)
    fields = full_text(event).replace("\n", "; ")
    return escape(f"{kind}: {line}\n  {fields}")


def show_replay_error(app: CockpitApp, day: int, error: Exception) -> None:
    app.query_one("#replay-verdict", Static).update(
        f"[red]cannot replay {day_text(day)}[/]: {escape(' '.join(str(error).split()))}"
    )
