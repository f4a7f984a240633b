"""``cli.research_tables.print_fitted``: a table exactly as wide as the console keeps every
column (the last column has no padding after it, which fitting once counted)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

import cli.research_tables as research_tables
from cli.research_tables import Column, print_fitted, wrap_text


@pytest.mark.parametrize("width", [80, 79])
def test_a_table_as_wide_as_the_console_keeps_every_column(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(research_tables, "console", Console(file=out, width=width, color_system=None))
    columns = (
        Column("a" * 32, 5),
        Column("b" * 22, 4),
        Column("c" * 7, 2),
        Column("d" * 5, 1),
        Column("e" * 6, 3),
    )
    row = ("1" * 32, "2" * 22, "3" * 7, "4" * 5, "5" * 6)  # 72 cells + 4 gaps of 2 = 80 wide
    print_fitted("t", columns, [row])
    lines = out.getvalue().splitlines()
    body = next(line for line in lines if line.startswith("1" * 32))
    if width == 80:
        assert body.split() == list(row) and len(body) == 80
        assert not any("not shown" in line for line in lines)
    else:  # one cell short: the lowest rank goes, and the table says so
        assert body.split() == [row[0], row[1], row[2], row[4]]
        assert any(line.startswith("not shown at this width: ddddd") for line in lines)


def test_square_brackets_in_a_cell_or_title_are_text_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: ``tape alerts list`` showed ``... drawdown 12% > 10%`` where the alert says ``...
    drawdown 12% > 10% [observed 1200, limit 1000]``: rich took the brackets for a style tag and
    dropped them. A ``Text`` cell keeps its style (reconcile's red DIFF)."""
    out = io.StringIO()
    monkeypatch.setattr(research_tables, "console", Console(file=out, width=100, color_system=None))
    columns = (Column("id", 5), Column("ok", 4), Column("message", 3, wraps=True))
    message = "drawdown 12% > 10% [observed 1200, limit 1000]"
    print_fitted("jobs in [ops]/jobs.toml", columns, [("[b]1", Text("DIFF", style="red"), message)])
    text = out.getvalue()
    assert "jobs in [ops]/jobs.toml" in text
    assert "[b]1" in text.split()
    assert "DIFF" in text.split()
    assert " ".join(text.split()).endswith(message)


def test_wrap_text_breaks_a_word_wider_than_the_column_only_after_its_break_characters() -> None:
    name = "nvda_daily_bars_adjusted_2014_2015_from_vendor_export.csv"
    wrapped = wrap_text(f"{name}\nbars 1d XNYS:NVDA", 13, "/_-.").splitlines()
    assert wrapped == ["nvda_daily_", "bars_", "adjusted_", "2014_2015_", "from_vendor_", "export.csv",
                       "bars 1d", "XNYS:NVDA"]  # fmt: skip
    # a word that fits a line of its own moves there whole; a count is never split
    assert wrap_text("ohlc_inconsistent 1, outside_session 1,217", 17, "_").splitlines() == [
        "ohlc_inconsistent", "1,", "outside_session", "1,217"
    ]  # fmt: skip
    assert wrap_text("2015-06-01..2017-12-29", 12, ".").splitlines() == ["2015-06-01..", "2017-12-29"]
    assert wrap_text("abcdefghijkl", 5, "_").splitlines() == ["abcde", "fghij", "kl"]  # no break point


def test_two_wrapping_columns_share_the_width_and_the_longest_word_is_broken_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file name and quarantine reasons at 60 columns: the reasons keep every word whole (17
    wide), the name, which cannot be whole anyway, breaks at its underscores."""
    out = io.StringIO()
    monkeypatch.setattr(research_tables, "console", Console(file=out, width=60, color_system=None))
    columns = (
        Column("file", 9, wraps=True, breaks="_"),
        Column("in", 8),
        Column("accepted", 7),
        Column("reasons", 5, wraps=True, breaks="_"),
    )
    name = "a_very_long_vendor_file_name_for_daily_bars_2014.csv"
    print_fitted("t", columns, [(name, "1,701", "1,483", "ohlc_inconsistent 1, outside_session 217")])
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60
    words = out.getvalue().split()
    assert "ohlc_inconsistent" in words and "outside_session" in words
    assert "1,701" in words and "1,483" in words
    pieces = [line.split()[0] for line in lines[3:] if line.strip() and not line.startswith(" ")]
    assert "".join(pieces) == name and all(piece.endswith("_") for piece in pieces[:-1])
