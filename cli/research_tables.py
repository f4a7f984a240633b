"""Terminal tables fitted to the terminal as the cockpit's are (``tui.tables.fit_columns``): the
research commands' (``tape sweep``, ``tape runs``, ``tape walkforward``), ``tape report``'s
execution quality, ``tape compare`` and ``tape alerts``. A number is never wrapped or cut: each
figure's column is as wide as its widest cell and its header (or, where the width is short, the
header's longest word: headers then wrap between words); the parameters are the one column that
wraps, between parameters (never inside one: it is at least as wide as the longest
``name=value``); columns that do not fit beside it are dropped, lowest rank first, and a line
under the table names them (``--csv`` / ``--json`` have every figure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from cli.progress import console
from tui.tables import PADDING, Column, Row, fit_columns

__all__ = ["Column", "print_fitted"]


def print_fitted(
    title: str,
    columns: tuple[Column, ...],
    rows: Sequence[tuple[str | Text, ...]],
    *,
    left: int = 0,
    elsewhere: str = "--csv / --json have every figure",
) -> None:
    """``rows`` under ``columns`` at the console's width: the first ``left`` columns and the
    wrapping one are left-aligned, the rest right-aligned. A wrapping column's cells are words
    (``name=value``) separated by single spaces. A ``str`` cell is shown as it is (a ``[...]`` in
    a message is text, never console markup); a styled cell is a ``rich.text.Text``."""
    plain = [tuple(str(cell) for cell in row) for row in rows]
    wraps = [i for i, column in enumerate(columns) if column.wraps]
    longest = max((len(word) for row in plain for i in wraps for word in row[i].split(" ")), default=0)
    fitted = tuple(
        Column(c.label, c.rank, c.wraps, max(c.min_width, longest)) if c.wraps else c for c in columns
    )
    fitting = [Row(str(n), row) for n, row in enumerate(plain)]
    # fit_columns counts PADDING after every column; here the last one has none (no edge)
    room = console.width + PADDING
    shown, text_width = fit_columns(fitted, fitting, room)
    # Too narrow for every column with its header on one line: headers wrap between their words,
    # a figure's column as wide as its widest cell or its header's longest word.
    wrapped = len(shown) < len(fitted)
    if wrapped:
        measured = tuple(dataclasses.replace(c, label=_longest_word(c.label)) for c in fitted)
        shown, text_width = fit_columns(measured, fitting, room)
    table = Table(
        title=Text(title, style="table.title"),
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_edge=False,
    )
    for index in shown:
        column = fitted[index]
        if column.wraps:
            table.add_column(column.label, width=text_width, overflow="fold")
        else:
            header = _longest_word(column.label) if wrapped else column.label
            width = max([len(header), *(len(row[index]) for row in plain)])
            justify = "left" if index < left else "right"  # no cell is wider: only headers fold
            table.add_column(column.label, justify=justify, overflow="fold", width=width)
    for row in rows:
        table.add_row(
            *(row[index] if isinstance(row[index], Text) else Text(str(row[index])) for index in shown)
        )
    console.print(table)
    dropped = [column.label for index, column in enumerate(columns) if index not in shown]
    if dropped:
        console.print(f"not shown at this width: {', '.join(dropped)} ({elsewhere})")


def _longest_word(label: str) -> str:
    return max(label.split(), key=len, default=label)
