"""Terminal tables fitted to the terminal as the cockpit's are (``tui.tables.fit_columns``): the
verbs' tables (research: ``tape sweep``, ``runs``, ``walkforward``, ``montecarlo``, ``train``,
``models``; ``tape report``'s strategies and execution quality, ``compare``, ``reconcile``,
``alerts``, ``jobs list``, ``strategies``, and the lake's ``ingest`` and ``health``). A number
is never wrapped or cut: each figure's column is as wide as its widest cell and its header (or,
where the width is short, the header's longest word: headers then wrap between words). The
free-text columns (``wraps``: parameters, messages, file names, quarantine reasons) wrap between
words, and a word wider than its column breaks after one of the column's ``breaks`` characters
(a file name after ``_`` or ``/``), never elsewhere (a piece wider than the column itself is
folded, the last resort); such a column is at least as wide as its longest piece and its
header's longest word. Several free-text columns share the width left, the widest narrowed
first, each kept as wide as its longest word while that fits; where not, the one with the
longest word gives way. Columns that do not fit are dropped, lowest rank first, and a line under
the table names them and where every figure is (``--csv`` / ``--json`` by default)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from cli.progress import console
from tui.tables import PADDING, Column, Row, fit_columns

__all__ = ["Column", "print_fitted", "wrap_text"]


def print_fitted(
    title: str | tuple[str, ...],
    columns: tuple[Column, ...],
    rows: Sequence[tuple[str | Text, ...]],
    *,
    left: int = 0,
    elsewhere: str = "--csv / --json have every figure",
) -> None:
    """``rows`` under ``columns`` at the console's width: the first ``left`` columns and the
    wrapping ones are left-aligned, the rest right-aligned. A wrapping column's cells are words
    separated by single spaces (a ``\\n`` starts a new line). A ``str`` cell is shown as it is (a
    ``[...]`` in a message is text, never console markup); a styled cell is a ``rich.text.Text``.
    A ``title`` given as phrases (``("reconcile J,", "day D (seq 33)", "vs ledger")``) wraps
    between them at the table's width, never inside one (``seq`` apart from its number); a
    ``str`` title wraps between any words."""
    plain = [tuple(str(cell) for cell in row) for row in rows]
    fitted = tuple(
        dataclasses.replace(column, min_width=_hard_minimum(column, [row[i] for row in plain]))
        if column.wraps
        else column
        for i, column in enumerate(columns)
    )
    # fit_columns counts PADDING after every column; here the last one has none (no edge)
    room = console.width + PADDING
    words = {
        i: max(column.min_width, _longest_word_width(column, plain, i))
        for i, column in enumerate(fitted)
        if column.wraps
    }
    full = _layout(fitted, plain, words, room, wrapped=False)
    # Headers wrap between their words (a figure's column as wide as its widest cell or its
    # header's longest word) where every column does not fit with its header on one line, or
    # where that keeps more of the free-text columns' words whole.
    measured = _layout(fitted, plain, words, room, wrapped=True)
    wrapped = len(full[0]) < len(fitted) or _whole(measured, words) > _whole(full, words)
    shown, widths = measured if wrapped else full
    cells = [
        tuple(wrap_text(row[i], widths[i], fitted[i].breaks) if fitted[i].wraps else row[i] for i in shown)
        for row in plain
    ]
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_edge=False,
    )
    for position, index in enumerate(shown):
        column = fitted[index]
        width = widths[index]
        if column.wraps:  # no wider than its wrapped lines and its header (on one line if it fits)
            lines = [len(line) for row in cells for line in row[position].split("\n")]
            header = len(column.label) if len(column.label) <= width else len(_longest_word(column.label))
            width = max([header, *lines])
        # no cell is wider than its column (the wrapping ones are wrapped here): only headers fold
        justify = "left" if index < left or column.wraps else "right"
        table.add_column(column.label, justify=justify, overflow="fold", width=width)
    table.title = Text(_title_lines(title, console.measure(table).maximum), style="table.title")
    for row, given in zip(cells, rows, strict=True):
        table.add_row(
            *(
                given[index] if isinstance(given[index], Text) and not fitted[index].wraps else Text(cell)
                for cell, index in zip(row, shown, strict=True)
            )
        )
    console.print(table)
    dropped = [column.label for index, column in enumerate(columns) if index not in shown]
    if dropped:
        console.print(f"not shown at this width: {', '.join(dropped)} ({elsewhere})")


def _title_lines(title: str | tuple[str, ...], width: int) -> str:
    """``title`` as it is (a ``str``), or its phrases on lines no wider than ``width``: a phrase
    goes to a line of its own where it does not fit after the last (one wider than ``width``
    wraps between its words, a path after ``/``)."""
    if isinstance(title, str):
        return title
    lines: list[str] = []
    for phrase in title:
        joined = f"{lines[-1]} {phrase}" if lines else phrase
        if lines and len(joined) <= width:
            lines[-1] = joined
        else:
            lines.extend(wrap_text(phrase, max(width, 1), "/").split("\n"))
    return "\n".join(lines)


def _layout(
    columns: tuple[Column, ...],
    rows: list[tuple[str, ...]],
    words: dict[int, int],
    room: int,
    *,
    wrapped: bool,
) -> tuple[list[int], dict[int, int]]:
    """The columns shown and their widths: a figure's as wide as its widest cell and header (its
    longest word when ``wrapped``); the wrapping columns share what is left (``_share``), none
    narrower than its ``words`` (longest word) while that fits, none wider than its longest line
    or header."""
    # a free-text column's header wraps only when the column is narrowed (its floors hold it)
    headers = [_longest_word(c.label) if wrapped and not c.wraps else c.label for c in columns]
    measured = tuple(dataclasses.replace(c, label=h) for c, h in zip(columns, headers, strict=True))
    shown, _ = fit_columns(measured, [Row(str(n), row) for n, row in enumerate(rows)], room)
    widths = {
        i: max([len(headers[i]), *(len(line) for row in rows for line in row[i].split("\n"))]) for i in shown
    }
    texts = [i for i in shown if columns[i].wraps]
    free = room - sum(widths[i] + PADDING for i in shown if i not in texts) - PADDING * len(texts)
    shared = _share(
        [max(widths[i], columns[i].min_width) for i in texts],
        [words[i] for i in texts],
        [columns[i].min_width for i in texts],
        free,
    )
    widths.update(zip(texts, shared, strict=True))
    return shown, widths


def _whole(layout: tuple[list[int], dict[int, int]], words: dict[int, int]) -> tuple[int, int]:
    """A layout's columns shown and its free-text columns whose every word fits whole."""
    shown, widths = layout
    return len(shown), sum(widths[i] >= words[i] for i in shown if i in words)


def _share(widths: list[int], soft: list[int], hard: list[int], room: int) -> list[int]:
    """Narrow ``widths`` until they sum to ``room``, the widest first, each down to its ``soft``
    floor (its longest word). Where those floors together do not fit, the column with the
    longest word (a file name that cannot be whole anyway, before a reason that can; then the
    next) gives way: the others are narrowed to their soft floors first, then it goes down to
    its ``hard`` floor (its longest piece). At the hard floors they may stay wider than
    ``room`` (the table fitted them so, or only one column is left)."""
    floors = list(soft)
    giving = []
    for index in sorted(range(len(floors)), key=lambda i: (soft[i], i), reverse=True):
        if sum(floors) <= room:
            break
        floors[index] = hard[index]
        giving.append(index)
    shared = list(widths)
    for narrowed in ([i for i in range(len(shared)) if i not in giving], giving):
        while sum(shared) > room:
            narrowable = [i for i in narrowed if shared[i] > floors[i]]
            if not narrowable:
                break
            shared[max(narrowable, key=lambda i: (shared[i], i))] -= 1
    return shared


def wrap_text(text: str, width: int, breaks: str = "") -> str:
    """``text`` wrapped to ``width`` between words (``\\n`` kept); a word wider than ``width``
    breaks after a run of ``breaks`` characters, a piece wider than ``width`` is folded."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if not word:  # two spaces in a row
                continue
            joined = f"{line} {word}" if line else word
            if len(joined) <= width:
                line = joined
                continue
            if len(word) <= width:  # a word that fits a line of its own is never broken
                lines.append(line)
                line = word
                continue
            for number, piece in enumerate(_pieces(word, breaks)):
                joined = f"{line} {piece}" if line and number == 0 else line + piece
                if len(joined) <= width:
                    line = joined
                    continue
                if line:
                    lines.append(line)
                while len(piece) > width:  # the last resort: no break point narrow enough
                    lines.append(piece[:width])
                    piece = piece[width:]
                line = piece
        lines.append(line)
    return "\n".join(lines)


def _pieces(word: str, breaks: str) -> list[str]:
    """``word`` cut after each run of ``breaks`` characters: ``outside_session`` -> ``outside_``,
    ``session``; ``2015-06-01..2017-12-29`` (breaks ``.``) -> ``2015-06-01..``, ``2017-12-29``."""
    if not breaks:
        return [word]
    chars = re.escape(breaks)
    return re.findall(rf"[^{chars}]*[{chars}]+|[^{chars}]+$", word)


def _hard_minimum(column: Column, cells: list[str]) -> int:
    """A wrapping column's narrowest width: its longest piece, its header's longest word."""
    pieces = [len(piece) for cell in cells for word in cell.split() for piece in _pieces(word, column.breaks)]
    return max([column.min_width, len(_longest_word(column.label)), *pieces])


def _longest_word_width(column: Column, rows: list[tuple[str, ...]], index: int) -> int:
    words = [len(word) for row in rows for word in row[index].split()]
    return max([len(_longest_word(column.label)), *words])


def _longest_word(label: str) -> str:
    return max(label.split(), key=len, default=label)
