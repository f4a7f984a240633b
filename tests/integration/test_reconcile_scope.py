"""`tape reconcile` of a book at two brokers (US stocks in USD at one, a CNY name at another):
one statement per broker, scoped with --currencies / --venues, or several statements summed.
A CNY-only statement compared every USD line as 0 at the broker (exit 1) and offered no way
to say what it covers; several --statement options kept only the last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from domain.fixed import to_decimal
from kernel.store import open_journal
from projections import rebuild_ledger
from projections.daybook import JournalBook, fold_journal_book
from projections.reconcile import CashRounding
from tests.factories import two_currency_run

HEADER = "day,account,symbol,quantity,cash,currency"


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JournalBook]:
    root = tmp_path_factory.mktemp("two-brokers")
    journal = two_currency_run(root)
    rebuild_ledger(journal, Path(str(journal) + ".ledger.sqlite"))
    with open_journal(journal) as opened:
        return journal, fold_journal_book(opened)


def broker(
    tmp_path: Path, name: str, book: JournalBook, currency: str, *, extra: str = "", skip: str = ""
) -> Path:
    """The statement of the broker holding ``currency``: its positions and cash at the last close."""
    cut = book.days[-1]
    day = f"{cut.day // 10000}-{cut.day // 100 % 100:02d}-{cut.day % 100:02d}"
    rows = [HEADER]
    for iid, qty in cut.positions.items():
        instrument = book.instruments[iid]
        if instrument.currency == currency and instrument.symbol != skip:
            rows.append(f"{day},{name},{instrument.symbol},{qty},,{currency}")
    rows.append(f"{day},{name},,,{to_decimal(cut.cash[currency], 2)},{currency}")
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(rows) + "\n" + extra)
    return path


def reconcile(tmp_path: Path, journal: Path, *args: str) -> tuple[int, dict[str, object]]:
    out = tmp_path / "r.json"
    out.unlink(missing_ok=True)
    status = main(["reconcile", str(journal), "--json", str(out), *args])
    return status, json.loads(out.read_text()) if out.exists() else {}


def by_name(result: dict[str, object]) -> dict[str, dict[str, object]]:
    lines = result["lines"]
    assert isinstance(lines, list)
    return {f"{line['item']} {line['key']}": line for line in lines}


def test_a_cny_statement_scoped_to_cny_reconciles_and_names_what_it_leaves_out(
    book: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, folded = book
    cn = broker(tmp_path, "CN1", folded, "CNY")
    status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--no-ledger")
    assert status == 1  # unscoped: the US name and the USD cash read as 0 at this broker
    assert {name for name, line in by_name(result).items() if not line["ok"]} == {"position AAA", "cash USD"}
    for scope in (["--currencies", "CNY"], ["--venues", "TEST"]):
        capsys.readouterr()
        status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--no-ledger", *scope)
        assert status == 0, result
        assert result["outside_scope"] == ["position AAA", "cash USD"]
        lines = by_name(result)
        assert lines["position AAA"]["statement"] is None
        assert lines["position AAA"]["outside_scope"] is True
        assert lines["position BBB"]["statement"] == lines["position BBB"]["journal"]
        assert lines["cash CNY"]["statement"] == lines["cash CNY"]["journal"]
        assert lines["cash CNY"]["outside_scope"] is False
    assert result["scope"] == {"currencies": [], "venues": ["TEST"]}
    status = main(["reconcile", str(journal), "--statement", str(cn), "--venues", "TEST"])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0
    assert "statement scope --venues TEST: left out position AAA, cash USD" in out
    assert "reconciled: 6 lines match; 2 outside the statement's scope (compared with the ledger only)" in out


def test_a_scoped_statement_still_catches_a_missing_row_and_a_row_outside_its_scope(
    book: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    journal, folded = book
    cn = broker(tmp_path, "CN1", folded, "CNY", skip="BBB")  # the broker's CNY name missing
    status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--currencies", "CNY")
    assert status == 1
    lines = by_name(result)
    assert not lines["position BBB"]["ok"]
    assert lines["position BBB"]["statement"] == "0"
    day = folded.days[-1].day
    iso = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}"
    cn = broker(tmp_path, "CN1", folded, "CNY", extra=f"{iso},CN1,,,100.00,USD\n")
    status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--currencies", "CNY")
    assert status == 1  # what a statement lists is compared, never dropped
    lines = by_name(result)
    assert lines["cash USD"]["statement"] == "100.00"
    assert lines["cash USD"]["note"] == "the statement lists it, outside --currencies CNY"
    assert result["outside_scope"] == ["position AAA"]


def test_two_statements_together_cover_the_book(
    book: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, folded = book
    cn = broker(tmp_path, "CN1", folded, "CNY")
    us = broker(tmp_path, "U1", folded, "USD")
    status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--statement", str(us))
    assert status == 0, result
    assert result["statements"] == [{"path": str(cn), "account": "CN1"}, {"path": str(us), "account": "U1"}]
    assert result["outside_scope"] == []
    lines = by_name(result)
    assert lines["position AAA"]["statement_parts"] == {str(us): lines["position AAA"]["journal"]}
    # one broker's statement is not the book: the other's lines are compared as 0
    status, result = reconcile(tmp_path, journal, "--statement", str(cn), "--statement", str(cn))
    assert status == 2
    us_short = broker(tmp_path, "U1", folded, "USD", skip="AAA")
    capsys.readouterr()
    status = main(["reconcile", str(journal), "--statement", str(cn), "--statement", str(us_short)])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 1
    assert f"statements summed line by line: {cn} (CN1), {us_short} (U1)" in out
    assert "difference position AAA (qty): journal 17,000, ledger 17,000, statement 0" in out


def test_statements_of_different_days_and_a_venue_the_journal_lacks_are_refused(
    book: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, folded = book
    cn = broker(tmp_path, "CN1", folded, "CNY")
    us = broker(tmp_path, "U1", folded, "USD")
    us.write_text(us.read_text().replace("2024-01-06", "2024-01-05"))
    capsys.readouterr()
    assert main(["reconcile", str(journal), "--statement", str(cn), "--statement", str(us)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"the statements state different days ({cn} 2024-01-06, {us} 2024-01-05): pass --day" in out
    assert main(["reconcile", str(journal), "--statement", str(cn), "--venues", "XSHG"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "--venues: no instrument of the journal trades at XSHG (its venues: TEST, XNAS)" in out
    assert main(["reconcile", str(journal), "--currencies", "CNY"]) == 2
    assert main(["reconcile", str(journal), "--statement", str(cn), "--currencies", "XYZ"]) == 2


def test_the_scoped_table_fits_80_columns_and_csv_marks_the_lines_left_out(
    book: tuple[Path, JournalBook],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli.progress import console

    journal, folded = book
    cn = broker(tmp_path, "CN1", folded, "CNY")
    monkeypatch.setattr(console, "width", 80)
    capsys.readouterr()
    out_csv = tmp_path / "r.csv"
    assert (
        main(
            ["reconcile", str(journal), "--statement", str(cn), "--currencies", "CNY", "--csv", str(out_csv)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = {tuple(row.split(",")[1:3]): row.split(",")[-1] for row in out_csv.read_text().splitlines()[1:]}
    assert rows[("position", "AAA")] == "true"
    assert rows[("cash", "USD")] == "true"
    assert rows[("cash", "CNY")] == ""


def test_the_rounding_bound_grows_by_a_minor_unit_per_further_statement_once_there_are_fills() -> None:
    assert CashRounding.of(3, 0, 2).bound == to_decimal(2, 2)
    assert CashRounding.of(3, 0, 2, statements=2).bound == to_decimal(3, 2)
    assert CashRounding.of(0, 0, 2, statements=2).bound == 0  # no fill: every balance exact
