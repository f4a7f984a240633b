"""One turnover for a book: ``tape report``'s summary and the strategies table's ``book`` row
both give traded notional (one-sided, the sum of fills' notionals) over the average NAV (the
capital and every day-close NAV), annualised by the run's session days (365 a year on the 24x7
calendar of ``make_dataset``). Each strategy's turnover is the same over its sleeve. The figures
are computed here by hand from the journal's events (QA: the report said 6.06x and the book
row 7.45x for one book, the row over the starting capital and 252 days a year)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from domain.events import DayClosed, OrderFilled, OrderSubmitted, SleevesMarked
from kernel.store import open_journal
from tests.factories import two_sleeve_run


def test_the_report_and_the_book_row_give_one_turnover_computed_by_hand(tmp_path: Path) -> None:
    two_sleeve_run(tmp_path, "turnover")
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]

    # By hand: the book.
    navs = [e.nav_minor for e in events if isinstance(e, DayClosed)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    traded = sum(f.notional_minor for f in fills)
    years = len(navs) / 365  # the 24x7 calendar
    book_average = (10_000_000 + sum(navs)) / (len(navs) + 1)
    book = traded / book_average / years
    # By hand: each strategy over its sleeve's capital and day-close NAVs.
    owner = {e.order_id: e.strategy_id for e in events if isinstance(e, OrderSubmitted)}
    marks = [e for e in events if isinstance(e, SleevesMarked)]
    by_hand, averages = {}, {}
    for sid in ("fast", "slow"):
        sleeve = [m for mark in marks for m in mark.sleeves if m.strategy_id == sid]
        capital = sleeve[0].capital_minor
        sleeve_traded = sum(f.notional_minor for f in fills if owner[f.order_id] == sid)
        averages[sid] = (capital + sum(m.nav_minor for m in sleeve)) / (len(sleeve) + 1)
        by_hand[sid] = sleeve_traded / averages[sid] / years
    assert 0 < by_hand["slow"] < by_hand["fast"]  # two sleeves that trade differently

    assert main(["report", str(tmp_path / "j"), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    rows = {row["strategy"]: row for row in report["strategies"]}
    assert report["summary"]["turnover"] == pytest.approx(book, rel=1e-12)
    assert rows["book"]["turnover"] == pytest.approx(book, rel=1e-9)  # rounded to 10 places
    for sid, turnover in by_hand.items():
        assert rows[sid]["turnover"] == pytest.approx(turnover, rel=1e-9)
    # The sleeves' average NAVs sum to the book's: its turnover is theirs, weighted by them.
    assert "(kernel orders)" not in rows
    assert sum(averages.values()) == pytest.approx(book_average, rel=1e-12)
    weighted = sum(rows[sid]["turnover"] * averages[sid] for sid in averages) / book_average
    assert weighted == pytest.approx(rows["book"]["turnover"], rel=1e-9)
