"""Tables that fit the terminal: every column shown whole, none scrolled off to the right.

Each table declares its columns with a rank (a lower rank is dropped first when the width is
short; a column with nothing in it, all "-", before any) and at most one ``wraps`` column
(free text: it takes the width left and its cells wrap onto more lines). The other columns are
as wide as their widest cell, so a number is never cut; when they do not fit beside the text
column's minimum, the lowest-ranked are dropped and the table's border title says which.
"""

from __future__ import annotations

import io
import weakref
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

__all__ = [
    "CELL_TEXT_MAX",
    "GROWN_ROWS_MAX",
    "PADDING",
    "TABLES",
    "Column",
    "Row",
    "fill_table",
    "fit_columns",
]

PADDING = 2  # a DataTable cell's padding, left + right
_MEASURE = Console(file=io.StringIO(), width=1000, color_system=None)  # measures wrapped lines only
GROWN_ROWS_MAX = 1_000  # rows a followed table grows to before it is refilled with its page
CELL_TEXT_MAX = 400  # characters of a wrapping cell (a long target list ends "... (+N more)")


@dataclass(frozen=True)
class Column:
    label: str
    rank: int  # lower: dropped first when the width is short
    wraps: bool = False  # the free-text column: takes the width left, its cells wrap
    min_width: int = 0  # for the wrapping column: narrower than this, lower ranks are dropped
    # for a wrapping column (``cli.research_tables.print_fitted``): characters a word wider than
    # the column may also break after (file names: "/_-."), never inside a run of others
    breaks: str = ""


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[str, ...]


TABLES: dict[str, tuple[Column, ...]] = {
    "#verdicts": (Column("seq", 8), Column("step", 4), Column("strategy", 5),
                  Column("verdict", 9, wraps=True, min_width=30)),
    "#alerts": (Column("id", 9), Column("severity", 7), Column("rule", 6), Column("key", 5),
                Column("fired (UTC)", 3), Column("acked by", 4),
                Column("message", 8, wraps=True, min_width=24)),
    "#blotter": (Column("seq", 3), Column("order", 9), Column("strategy", 2), Column("symbol", 8),
                 Column("side", 8), Column("qty", 7), Column("filled", 7), Column("avg px", 4),
                 Column("status", 8), Column("reason", 1, wraps=True, min_width=16)),
    "#positions-table": (Column("symbol", 9), Column("ccy", 3), Column("qty", 9), Column("held", 2),
                         Column("T+1 locked", 2), Column("sellable", 4), Column("cost", 5),
                         Column("mark", 6), Column("value", 7), Column("weight/limit", 5),
                         Column("unrealised", 8)),
    "#why-table": (Column("seq", 9), Column("role", 8), Column("kind", 5),
                   Column("event", 9, wraps=True, min_width=30)),
    "#tail": (Column("seq", 9), Column("time (UTC)", 6), Column("kind", 7),
              Column("event", 9, wraps=True, min_width=24)),
    "#replay-positions": (Column("symbol", 9), Column("qty", 9), Column("cost", 5), Column("mark", 6),
                          Column("value", 7), Column("unrealised", 8)),
}  # fmt: skip


def _natural(columns: tuple[Column, ...], rows: list[Row]) -> list[int]:
    """Each column's width with its widest cell (or label) whole, padding included."""
    return [
        max([len(column.label), *(len(row.cells[index]) for row in rows)]) + PADDING
        for index, column in enumerate(columns)
    ]


def fit_columns(columns: tuple[Column, ...], rows: list[Row], width: int) -> tuple[list[int], int]:
    """The indexes of the columns shown in ``width`` cells, and the wrapping column's width
    (0 when it is dropped or there is none)."""
    natural = _natural(columns, rows)
    shown = list(range(len(columns)))
    empty = {i for i in shown if rows and all(row.cells[i] in ("-", "") for row in rows)}
    for index in sorted(shown, key=lambda i: (i not in empty, columns[i].rank, -i)):
        fixed = sum(natural[i] for i in shown if not columns[i].wraps)
        wrapping = [i for i in shown if columns[i].wraps]
        needed = fixed + sum(columns[i].min_width + PADDING for i in wrapping)
        if needed <= width or len(shown) == 1:
            break
        shown.remove(index)
    wrapping = [i for i in shown if columns[i].wraps]
    fixed = sum(natural[i] for i in shown if not columns[i].wraps)
    text_width = 0
    if wrapping:
        text_width = max(width - fixed - PADDING, columns[wrapping[0]].min_width)
        text_width = min(text_width, natural[wrapping[0]] - PADDING)
    return shown, text_width


@dataclass(frozen=True)
class _Filled:
    """What a table was last filled with: its columns (index, width) and rows."""

    layout: tuple[tuple[int, int], ...]
    rows: list[Row]


_FILLED: weakref.WeakKeyDictionary[DataTable[str | Text], _Filled] = weakref.WeakKeyDictionary()


def fill_table(table: DataTable[str | Text], rows: list[Row], width: int, what: str = "") -> None:
    """Replace the table's columns and rows with those that fit ``width`` cells.

    A table whose columns stay the same and whose rows only slid on (the journal's last page
    while it grows: rows gone at the top, new ones at the bottom) gets the new rows appended
    and keeps the old ones (removing rows one by one costs the table a re-index each), up to
    ``GROWN_ROWS_MAX`` rows; then it is refilled with ``rows``."""
    columns = TABLES[f"#{table.id}"]
    rows = [Row(row.key, tuple(_capped(cell) for cell in row.cells)) for row in rows]
    shown, text_width = fit_columns(columns, rows, width)
    natural = _natural(columns, rows)
    widths = [text_width if columns[i].wraps else natural[i] - PADDING for i in shown]
    layout = tuple(zip(shown, widths, strict=True))
    before = _FILLED.get(table)
    kept = _kept(before.rows, rows) if before is not None and before.layout == layout else None
    if kept is not None and before is not None and len(before.rows) + len(rows) - kept <= GROWN_ROWS_MAX:
        added = rows[kept:]
        _FILLED[table] = _Filled(layout, before.rows + added)
        selected = None
    else:
        selected = _cursor_key(table)
        table.clear(columns=True)
        for index, column_width in layout:  # explicit widths: the header and the rows alike
            table.add_column(columns[index].label, key=columns[index].label, width=column_width)
        added = rows
        _FILLED[table] = _Filled(layout, rows)
    for row in added:
        cells: list[str | Text] = [
            Text(row.cells[i], overflow="fold") if columns[i].wraps else row.cells[i] for i in shown
        ]
        table.add_row(*cells, key=row.key, height=_height(cells, text_width))
    if selected is not None and selected in table.rows:
        # the cursor stays on its order (row) where the refill still holds it: a new order at
        # the top of the blotter moved it to the first row, so `w` explained another order
        table.move_cursor(row=table.get_row_index(selected), scroll=False)
    dropped = [column.label for index, column in enumerate(columns) if index not in shown]
    title = what
    if dropped:
        title = f"{what}; " if what else ""
        title += f"not shown at this width: {', '.join(dropped)}"
    table.border_title = title or None


def _cursor_key(table: DataTable[str | Text]) -> RowKey | None:
    """The key of the row under the table's cursor (None: an empty table)."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except CellDoesNotExist:
        return None


def _kept(before: list[Row], after: list[Row]) -> int | None:
    """How many rows at the end of ``before`` begin ``after`` (the page slid on by the rest),
    or None when ``after`` is not such a continuation."""
    if not before:
        return None
    first = after[0] if after else None
    start = next((i for i, row in enumerate(before) if row == first), None)
    if start is None:
        return None
    kept = len(before) - start
    return kept if after[:kept] == before[start:] else None


def _height(cells: list[str | Text], text_width: int) -> int:
    """The lines a row needs: its wrapping cell's lines at ``text_width`` (measured by Rich,
    as the table will wrap it), 1 for a row that needs no wrapping. An explicit height spares
    the table measuring every row of every refill (hundreds of rows, several times a second
    while following a journal)."""
    lines = 1
    for cell in cells:
        if isinstance(cell, Text) and text_width and len(cell) > text_width:
            lines = max(lines, len(cell.wrap(_MEASURE, text_width)))
    return lines


def _capped(text: str) -> str:
    if len(text) <= CELL_TEXT_MAX:
        return text
    cut = text.rfind(", ", 0, CELL_TEXT_MAX)
    cut = cut if cut > 0 else text.rfind(" ", 0, CELL_TEXT_MAX)
    return text[: max(cut, 0)] + f" ... (+{len(text) - max(cut, 0):,} characters)"
