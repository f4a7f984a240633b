"""The cockpit's tables at a given width: whole columns only, a number never cut."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.tables import TABLES, Row, fill_table, fit_columns

BLOTTER = TABLES["#blotter"]
POSITIONS = TABLES["#positions-table"]


def blotter_row(reason: str = "") -> Row:
    cells = ("1674", "sma-20201025-000140", "sma", "SYN0003", "buy", "1,234,567", "1,234,567",
             "143.93", "filled", reason)  # fmt: skip
    return Row("sma-20201025-000140", cells)


def shown_width(columns: tuple, rows: list[Row], shown: list[int], text_width: int) -> int:  # type: ignore[type-arg]
    fixed = sum(max(len(columns[i].label), *(len(r.cells[i]) for r in rows)) + 2 for i in shown
                if not columns[i].wraps)  # fmt: skip
    return fixed + (text_width + 2 if text_width else 0)


def test_every_column_fits_when_the_width_allows() -> None:
    rows = [blotter_row("price limit: 10.00% above the close")]
    shown, text_width = fit_columns(BLOTTER, rows, 200)
    assert shown == list(range(len(BLOTTER)))
    assert text_width == len(rows[0].cells[-1])  # no wider than its text


def test_narrow_widths_drop_the_lowest_ranked_columns_and_never_cut_a_number() -> None:
    rows = [blotter_row("price limit: 10.00% above the close")]
    for width in (120, 100, 80, 76, 60, 40):
        shown, text_width = fit_columns(BLOTTER, rows, width)
        labels = [BLOTTER[i].label for i in shown]
        assert shown_width(BLOTTER, rows, shown, text_width) <= width or len(shown) == 1, width
        assert "order" in labels  # the highest ranked stay
        if "qty" not in labels:  # dropped whole, never shown narrower than "1,234,567"
            assert "strategy" not in labels
    shown, _ = fit_columns(BLOTTER, rows, 76)
    assert "reason" not in [BLOTTER[i].label for i in shown]  # rank 1: the first to go


def test_a_column_with_nothing_in_it_goes_first() -> None:
    cells = ("SYN0001", "USD", "513", "-", "-", "-", "99,711.81 USD", "213.25", "109,397.25 USD",
             "9.90%/10.00%", "9,685.44 USD")  # fmt: skip
    rows = [Row("1", cells)]
    shown, _ = fit_columns(POSITIONS, rows, 92)  # all eleven need 114
    labels = [POSITIONS[i].label for i in shown]
    assert labels == ["symbol", "ccy", "qty", "cost", "mark", "value", "weight/limit", "unrealised"]


def test_the_text_column_wraps_in_the_width_left() -> None:
    rows = [Row("1", ("1666", "298", "sma", "name clip: 23.75% -> 10.00% (limit 10.00%, e8_nav) " * 3))]
    shown, text_width = fit_columns(TABLES["#verdicts"], rows, 76)
    assert len(shown) == 4
    assert text_width == 76 - (6 + 6 + 10) - 2


def order_row(seq: int) -> Row:
    order = f"sma-2020-{seq:06d}"
    return Row(order, (str(seq), order, "sma", "SYN0003", "buy", "100", "100", "143.93", "filled", ""))


@pytest.mark.asyncio
async def test_a_refilled_table_keeps_its_cursor_on_the_same_row() -> None:
    """The blotter lists the newest order first: a new order refilled it and moved the cursor to
    the first row, so `w` (why) explained another order than the one highlighted."""

    class Blotter(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(id="blotter", cursor_type="row")

    async with Blotter().run_test(size=(120, 20)) as pilot:
        table = pilot.app.query_one("#blotter", DataTable)
        fill_table(table, [order_row(seq) for seq in (3, 2, 1)], 110)
        table.move_cursor(row=1)  # order 2
        await pilot.pause()
        fill_table(table, [order_row(seq) for seq in (4, 3, 2, 1)], 110)  # order 4 arrives on top
        await pilot.pause()
        assert table.cursor_row == 2
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "sma-2020-000002"
        fill_table(table, [order_row(seq) for seq in (5, 4)], 110)  # its row gone: the first row
        await pilot.pause()
        assert table.cursor_row == 0
