"""``tape report`` of a book of several currencies gives the fees paid in each currency, the
amount in it and its base equivalent at the rates of the close of each fee's day, beside the
total in the base: printed (80 and 120 columns), in ``--json`` and in ``--csv``. They showed
the total in the base alone. A run of one currency prints and writes what it did before."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli.main import main as tape
from cli.progress import console
from domain.events import CurrenciesMarked, LedgerPosted
from domain.fixed import minor_digits
from domain.fx import to_base_minor
from kernel.store import open_journal
from tests.factories import make_config, make_dataset, run, two_currency_run


@pytest.fixture(scope="module")
def two_currencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_currency_run(tmp_path_factory.mktemp("fees-fx"))


def _fees_by_currency(journal: Path) -> dict[str, tuple[int, int]]:
    """From the journal's events alone: per currency, (the expense postings in it, funding
    apart; the same postings each converted into USD at the rates of its day's close)."""
    paid: dict[str, list[int]] = {}
    pending: list[tuple[str, int]] = []
    with open_journal(journal) as handle:
        for _, event in handle.events():
            if isinstance(event, LedgerPosted):
                pending += [
                    (p.currency, p.amount_minor)
                    for p in event.postings
                    if p.account.startswith("expenses:") and not p.account.startswith("expenses:funding")
                ]
            elif isinstance(event, CurrenciesMarked):
                rates = {m.currency: m.rate_e8 for m in event.currencies}
                for currency, amount in pending:
                    both = paid.setdefault(currency, [0, 0])
                    both[0] += amount
                    both[1] += to_base_minor(amount, currency, "USD", rates[currency])
                pending = []
    return {currency: (amount, base) for currency, (amount, base) in paid.items()}


@pytest.mark.parametrize("width", [80, 120])
def test_the_report_gives_the_fees_paid_in_each_currency(
    two_currencies: Path,
    tmp_path: Path,
    width: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _fees_by_currency(two_currencies)
    assert set(expected) == {"CNY", "USD"} and all(amount > 0 for amount, _ in expected.values())
    monkeypatch.setattr(console, "width", width)
    out_json, out_csv = tmp_path / "r.json", tmp_path / "csv"
    assert tape(["report", str(two_currencies), "--json", str(out_json), "--csv", str(out_csv)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= width
    summary = json.loads(out_json.read_text())["summary"]
    with (out_csv / "summary.csv").open() as handle:
        flat = {row["metric"]: row["value"] for row in csv.DictReader(handle)}
    # the base equivalents sum exactly to the fees in the base
    assert sum(base for _, base in expected.values()) == round(summary["fees"] * 100)
    assert any("fees by currency" in line and "base USD" in line for line in lines)
    for currency, (amount, base) in expected.items():
        paid = amount / 10 ** minor_digits(currency)
        assert summary["fees_by_currency"][currency] == {"paid": paid, "base": base / 100}
        assert float(flat[f"fees_by_currency.{currency}.paid"]) == paid
        assert float(flat[f"fees_by_currency.{currency}.base"]) == base / 100
        shown = f"{paid:,.2f} {currency}" + ("" if currency == "USD" else f" = {base / 100:,.2f} USD")
        row = next(line for line in lines if f"{currency} fees" in line)  # whole on one line
        assert shown in row, row


def test_a_report_of_one_currency_has_no_fees_by_currency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its fees are all in the base: the summary is the one it was (no rows, keys or CSV lines)."""
    journal = run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=80), tmp_path / "j")).journal
    outputs = ["--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "c")]
    assert tape(["report", str(journal), *outputs]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["fees"] > 0
    assert "fees by currency" not in out and "fees_by_currency" not in summary and "currencies" not in summary
    assert "fees_by_currency" not in (tmp_path / "c" / "summary.csv").read_text()
    # nor a split of its PnL by source (no FX PnL in one currency)
    assert "PnL by source" not in out and "pnl_by_source" not in summary
