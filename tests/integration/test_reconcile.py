"""`tape reconcile`: a real backtest journal, its real SQLite (and PostgreSQL) ledger and a
statement CSV; a reconciliation that matches and ones that differ by a known amount."""

from __future__ import annotations

import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from cli.main import main
from domain.fixed import to_decimal
from kernel.store import open_journal
from projections import rebuild_ledger
from projections.daybook import JournalBook, fold_journal_book
from tests.contracts.projection_servers import admin_execute, scratch_database
from tests.factories import make_config, make_dataset, run

DAY_MID = "2020-03-05"  # a day with three positions open (the run ends holding two)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JournalBook]:
    root = tmp_path_factory.mktemp("reconcile")
    data = make_dataset(root / "data", symbols=3, bars=120)
    run(make_config(data, root / "run", seed=1))
    rebuild_ledger(root / "run", root / "run.ledger.sqlite")
    with open_journal(root / "run") as journal:
        book = fold_journal_book(journal)
    return root, book


def reconcile(tmp_path: Path, journal: Path, *args: str) -> tuple[int, dict[str, object]]:
    out = tmp_path / "reconcile.json"
    status = main(["reconcile", str(journal), "--json", str(out), *args])
    return status, json.loads(out.read_text()) if out.exists() else {}


def differences(result: dict[str, object]) -> list[tuple[str, str, object, object, object]]:
    lines = result["lines"]
    assert isinstance(lines, list)
    return [
        (line["item"], line["key"], line["journal"], line["ledger"], line["statement"])
        for line in lines
        if not line["ok"]
    ]


def ledger_copy(world: tuple[Path, JournalBook], tmp_path: Path) -> Path:
    copy = tmp_path / "ledger.sqlite"
    shutil.copyfile(world[0] / "run.ledger.sqlite", copy)
    return copy


def statement_rows(book: JournalBook, day: str, *, wrong: dict[str, str] | None = None) -> str:
    cut = book.days[-1] if day == "last" else book.day(int(day.replace("-", "")))
    assert cut is not None
    iso = f"{cut.day // 10000}-{cut.day // 100 % 100:02d}-{cut.day % 100:02d}"
    rows = ["day,account,symbol,quantity,cash,currency"]
    for iid, qty in cut.positions.items():
        instrument = book.instruments[iid]
        text = (wrong or {}).get(instrument.symbol, str(to_decimal(qty, instrument.qty_digits)))
        rows.append(f"{iso},U123,{instrument.symbol},{text},,{instrument.currency}")
    rows.extend(f"{iso},U123,,,{to_decimal(amount, 2)},{ccy}" for ccy, amount in cut.cash.items())
    return "\n".join(rows) + "\n"


def test_a_fresh_ledger_reconciles_with_the_journal(world: tuple[Path, JournalBook], tmp_path: Path) -> None:
    root, book = world
    status, result = reconcile(tmp_path, root / "run")
    assert status == 0
    assert result["ok"] is True
    assert result["differences"] == 0
    last = book.days[-1]
    assert result["cut_seq"] == last.seq
    lines = {(line["item"], line["key"]): line for line in result["lines"]}  # type: ignore[union-attr]
    assert {key for key in lines if key[0] == "position"} == {
        ("position", book.instruments[iid].symbol) for iid in last.positions
    }
    for iid, qty in last.positions.items():
        line = lines[("position", book.instruments[iid].symbol)]
        assert line["journal"] == line["ledger"] == str(qty)
    assert lines[("cash", "USD")]["ledger"] == str(to_decimal(last.cash["USD"], 2))
    assert lines[("nav", "USD")]["ledger"] == str(to_decimal(last.nav_minor or 0, 2))


def test_an_earlier_day_rolls_the_ledger_back_to_that_close(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    mid = book.day(int(DAY_MID.replace("-", "")))
    assert mid is not None
    assert mid.positions != book.days[-1].positions  # the roll-back has something to undo
    status, result = reconcile(tmp_path, root / "run", "--day", DAY_MID)
    assert status == 0, differences(result)
    assert result["day"] == DAY_MID
    held = {line["key"]: line["ledger"] for line in result["lines"] if line["item"] == "position"}  # type: ignore[union-attr]
    assert held == {book.instruments[iid].symbol: str(qty) for iid, qty in mid.positions.items()}


def test_a_tampered_position_row_is_named_with_both_numbers(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    ledger = ledger_copy(world, tmp_path)
    iid, qty = next(iter(book.days[-1].positions.items()))
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE positions SET qty_raw = qty_raw + 7 WHERE instrument_id = ?", (iid,))
    db.close()
    status, result = reconcile(tmp_path, root / "run", "--db", str(ledger))
    assert status == 1
    symbol = book.instruments[iid].symbol
    assert differences(result) == [("position", symbol, str(qty), str(qty + 7), None)]


def test_one_difference_reads_1_of_n_lines_differs(
    world: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, book = world
    ledger = ledger_copy(world, tmp_path)
    iid = next(iter(book.days[-1].positions))
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE positions SET qty_raw = qty_raw + 7 WHERE instrument_id = ?", (iid,))
    db.close()
    capsys.readouterr()
    status, result = reconcile(tmp_path, root / "run", "--db", str(ledger))
    assert status == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"1 of {len(result['lines'])} lines differs" in out, out  # type: ignore[arg-type]  # was "differ"


def test_a_tampered_cash_posting_shows_the_exact_amount(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    ledger = ledger_copy(world, tmp_path)
    with sqlite3.connect(ledger) as db:
        (seq,) = db.execute("SELECT MIN(seq) FROM postings WHERE account = 'assets:cash:USD'").fetchone()
        db.execute(
            "UPDATE postings SET amount_minor = amount_minor - 12345 "
            "WHERE seq = ? AND account = 'assets:cash:USD'",
            (seq,),
        )
    db.close()
    status, result = reconcile(tmp_path, root / "run", "--db", str(ledger))
    assert status == 1
    cash = book.days[-1].cash["USD"]
    assert differences(result) == [
        ("cash", "USD", str(to_decimal(cash, 2)), str(to_decimal(cash - 12345, 2)), None)
    ]


def test_a_ledger_behind_the_day_close_is_a_difference(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    ledger = tmp_path / "behind.sqlite"
    mid = book.day(int(DAY_MID.replace("-", "")))
    assert mid is not None
    rebuild_ledger(root / "run", ledger, stop_seq=mid.seq - 1)
    status, result = reconcile(tmp_path, root / "run", "--db", str(ledger), "--day", DAY_MID)
    assert status == 1
    found = differences(result)
    assert found[0] == ("checkpoint", "", str(mid.seq), str(mid.seq - 1), None)


def test_a_statement_that_matches(world: tuple[Path, JournalBook], tmp_path: Path) -> None:
    root, book = world
    statement = tmp_path / "broker.csv"
    statement.write_text(statement_rows(book, "last"))
    status, result = reconcile(tmp_path, root / "run", "--statement", str(statement))
    assert status == 0, differences(result)
    assert result["account"] == "U123"
    assert all(
        line["statement"] is not None for line in result["lines"] if line["item"] in ("position", "cash")
    )  # type: ignore[union-attr]


def test_a_statement_with_a_wrong_quantity_and_a_missing_row(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    last = book.days[-1]
    (first_id, first_qty), (second_id, second_qty) = list(last.positions.items())[:2]
    first, second = book.instruments[first_id].symbol, book.instruments[second_id].symbol
    text = statement_rows(book, "last", wrong={first: str(first_qty - 100)})
    text = "\n".join(line for line in text.splitlines() if f",{second}," not in line) + "\n"
    statement = tmp_path / "broker.csv"
    statement.write_text(text)
    status, result = reconcile(tmp_path, root / "run", "--statement", str(statement), "--no-ledger")
    assert status == 1
    assert differences(result) == [
        ("position", first, str(first_qty), None, str(first_qty - 100)),
        ("position", second, str(second_qty), None, "0"),
    ]


def test_the_table_fits_80_columns_and_names_each_difference(
    world: tuple[Path, JournalBook],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, book = world
    ledger = ledger_copy(world, tmp_path)
    iid, qty = next(iter(book.days[-1].positions.items()))
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE positions SET qty_raw = qty_raw - 3 WHERE instrument_id = ?", (iid,))
    db.close()
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    assert main(["reconcile", str(root / "run"), "--db", str(ledger)]) == 1
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    symbol = book.instruments[iid].symbol
    text = " ".join(out.split())
    assert (
        f"difference position {symbol} (qty): journal {qty}, ledger {qty - 3} (ledger - journal = -3)" in text
    )


def test_csv_output_has_one_row_per_line(world: tuple[Path, JournalBook], tmp_path: Path) -> None:
    root, _ = world
    out = tmp_path / "r.csv"
    assert main(["reconcile", str(root / "run"), "--csv", str(out), "--json", str(tmp_path / "r.json")]) == 0
    rows = out.read_text().splitlines()
    result = json.loads((tmp_path / "r.json").read_text())
    assert rows[0] == "day,item,key,unit,journal,ledger,statement,ok,note"
    assert len(rows) == 1 + len(result["lines"])


def test_json_dash_puts_the_data_alone_on_stdout_and_an_unwritable_path_is_refused(
    world: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: reconcile kept its own copy of "``-`` means stdout"; it writes through
    ``cli.progress.write_output`` as every verb does: ``-`` gives the data alone (no table, no
    note), a path that cannot be written is refused naming the option (exit 2), not an Errno."""
    root, _ = world
    capsys.readouterr()
    assert main(["reconcile", str(root / "run"), "--json", "-"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # the whole of stdout is the document
    assert result["differences"] == 0 and result["lines"]
    assert main(["reconcile", str(root / "run"), "--csv", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "day,item,key,unit,journal,ledger,statement,ok,note"
    assert not (Path.cwd() / "-").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["reconcile", str(root / "run"), "--csv", str(blocker / "r.csv")]) == 2
    assert f"--csv {blocker / 'r.csv'}: cannot write it" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("args", "statement"),
    [
        (["--day", "2020-13-01"], None),
        (["--day", "2031-01-01"], None),
        ([], "date,sym,qty\n2020-01-01,X,1\n"),
        ([], "day,account,symbol,quantity,cash,currency\n2020-04-29,U1,SYN0001,abc,,USD\n"),
        (
            [],
            "day,account,symbol,quantity,cash,currency\n2020-04-29,U1,SYN0001,1,,USD\n2020-04-28,U1,,,5,USD\n",
        ),
        (["--db", "missing.sqlite"], None),
    ],
    ids=["bad-day", "day-not-closed", "not-a-statement", "text-quantity", "two-days", "ledger-missing"],
)
def test_refusals_exit_2(
    world: tuple[Path, JournalBook], tmp_path: Path, args: list[str], statement: str | None
) -> None:
    root, _ = world
    extra = [a if a != "missing.sqlite" else str(tmp_path / a) for a in args]
    if statement is not None:
        (tmp_path / "s.csv").write_text(statement)
        extra += ["--statement", str(tmp_path / "s.csv")]
    assert main(["reconcile", str(root / "run"), *extra]) == 2
    assert not (tmp_path / "missing.sqlite").exists()


def refused(tmp_path: Path, journal: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Reconcile ``journal`` with a statement of ``text``: refused (exit 2); its one error line."""
    statement = tmp_path / "broker.csv"
    statement.write_text(text)
    capsys.readouterr()
    status = main(["reconcile", str(journal), "--statement", str(statement), "--no-ledger"])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 2, out
    assert out.startswith("error:") and str(statement) in out, out
    return out


@pytest.mark.parametrize("finer", [".5", ".001", ".0000001"])
def test_a_quantity_finer_than_the_instrument_allows_is_refused_naming_the_row(
    world: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str], finer: str
) -> None:
    """Half a whole-unit share is no broker's position: a statement written wrong, refused with
    its line and the instrument's increment, never reported as a difference of 0.5."""
    root, book = world
    iid, qty = next(iter(book.days[-1].positions.items()))
    instrument = book.instruments[iid]
    assert instrument.qty_digits == 0
    text = statement_rows(book, "last", wrong={instrument.symbol: f"{qty}{finer}"})
    line = next(n for n, row in enumerate(text.splitlines(), 1) if f",{instrument.symbol}," in row)
    out = refused(tmp_path, root / "run", text, capsys)
    assert (
        f"line {line}: quantity {qty}{finer} of {instrument.symbol} is finer than the instrument allows"
        in out
    )
    assert "quantity increment is 1 (whole units, qty_digits 0)" in out


def test_trailing_zeros_are_the_same_quantity_and_cash(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    last = book.days[-1]
    text = statement_rows(
        book, "last", wrong={book.instruments[i].symbol: f"{q}.000" for i, q in last.positions.items()}
    )
    text = text.replace(f",{to_decimal(last.cash['USD'], 2)},", f",{to_decimal(last.cash['USD'], 2)}000,")
    statement = tmp_path / "broker.csv"
    statement.write_text(text)
    status, result = reconcile(tmp_path, root / "run", "--statement", str(statement), "--no-ledger")
    assert status == 0, differences(result)


def test_a_quantity_finer_than_a_fractional_instruments_increment_is_refused() -> None:
    import msgspec

    from domain.instruments import Instrument
    from projections.reconcile import ReconcileRefused, Statement, check_statement_quantities

    coin = Instrument(
        instrument_id=7, symbol="BTCUSDT", venue="BINANCE", asset_class="crypto", currency="USDT",
        price_digits=2, tick_raw=1, qty_digits=5, lot_raw=1,
    )  # fmt: skip

    def statement(quantity: str) -> Statement:
        return Statement(
            "broker.csv",
            "U1",
            20240105,
            {"BTCUSDT": Decimal(quantity)},
            {},
            {"BTCUSDT": "USDT"},
            {"BTCUSDT": 4},
        )

    check_statement_quantities(statement("0.12345"), {7: coin})
    check_statement_quantities(statement("0.1234500"), {7: coin})
    other = msgspec.structs.replace(coin, instrument_id=99, symbol="OTHER")
    check_statement_quantities(statement("0.123456"), {99: other})  # not the journal's: a difference
    with pytest.raises(
        ReconcileRefused,
        match=r"broker.csv: line 4: quantity 0.123456 of BTCUSDT .* increment is 0.00001 \(qty_digits 5\)",
    ):
        check_statement_quantities(statement("0.123456"), {7: coin})


HEADER = "day,account,symbol,quantity,cash,currency"
EXPECTED = "day, account, symbol, quantity, cash, currency"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", ["the statement is empty", f"naming the columns {EXPECTED}"]),
        ("\n\n", ["the statement is empty", f"naming the columns {EXPECTED}"]),
        (HEADER + "\n", ["has a header and no rows"]),
        (
            HEADER + ",note\n2024-01-03,U1,,,5,USD,hello\n",
            ["its header names unknown column 'note'", f"exactly the columns {EXPECTED}"],
        ),
        (
            HEADER.replace("quantity", "qty") + "\n2024-01-03,U1,,,5,USD\n",
            [
                "its header lacks column quantity and names unknown column 'qty'",
                f"exactly the columns {EXPECTED}",
            ],
        ),
        (HEADER + ",cash\n", ["its header names column cash twice", f"exactly the columns {EXPECTED}"]),
        (
            HEADER + "\n2024-01-03,U1,,,5,USD,extra\n",
            [f"line 2: 7 fields where the header names 6 ({EXPECTED})"],
        ),
        (HEADER + "\n2024-01-03,U1,,,5\n", [f"line 2: 5 fields where the header names 6 ({EXPECTED})"]),
    ],
    ids=[
        "empty",
        "blank-lines",
        "header-only",
        "unknown-column",
        "renamed-column",
        "column-twice",
        "extra-field",
        "missing-field",
    ],
)
def test_a_statement_of_the_wrong_shape_says_what_is_wrong(
    world: tuple[Path, JournalBook],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    said: list[str],
) -> None:
    root, _ = world
    out = refused(tmp_path, root / "run", text, capsys)
    for words in said:
        assert words in out


@pytest.mark.parametrize(
    "cash", ["1e5", "1E+5", "118345.59e0", "1,000.00", "1_000", "NaN", "Infinity", "\u0661\u0660\u0660"]
)
def test_cash_in_any_form_but_a_plain_decimal_is_refused(
    world: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str], cash: str
) -> None:
    """Money is exact: ``1e5`` was taken as 100000 (and compared), ``1_000`` as 1000."""
    root, book = world
    text = statement_rows(book, "last")
    rows = text.splitlines()
    line = next(n for n, row in enumerate(rows, 1) if row.endswith(",USD") and ",,," in row)
    fields = rows[line - 1].split(",")
    fields[4] = f'"{cash}"'
    rows[line - 1] = ",".join(fields)
    out = refused(tmp_path, root / "run", "\n".join(rows) + "\n", capsys)
    assert f"line {line}: cash '{cash}' is not a plain decimal number" in out
    assert "money must be exact" in out


def test_cash_finer_than_its_currency_is_refused(
    world: tuple[Path, JournalBook], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, book = world
    cash = to_decimal(book.days[-1].cash["USD"], 2)
    text = statement_rows(book, "last").replace(f",{cash},", f",{cash}1,")
    out = refused(tmp_path, root / "run", text, capsys)
    assert f"cash {cash}1 USD is finer than USD allows: its smallest unit is 0.01" in out


def test_postgres_ledger_reconciles_and_a_tampered_row_differs(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    root, book = world
    with scratch_database() as url:
        rebuild_ledger(root / "run", url)
        status, result = reconcile(tmp_path, root / "run", "--db", url)
        assert status == 0, differences(result)
        assert str(result["ledger"]).endswith("schema tape_ledger")
        iid, qty = next(iter(book.days[-1].positions.items()))
        admin_execute(
            f"UPDATE tape_ledger.positions SET qty_raw = qty_raw * 2 WHERE instrument_id = {iid}",
            database=url.rsplit("/", 1)[1],
        )
        status, result = reconcile(tmp_path, root / "run", "--db", url)
        assert status == 1
        assert differences(result) == [
            ("position", book.instruments[iid].symbol, str(qty), str(2 * qty), None)
        ]


def test_the_reconciliation_alert_fires_on_a_difference_and_resolves_when_clean(
    world: tuple[Path, JournalBook], tmp_path: Path
) -> None:
    """`tape reconcile --json` as the scheduled job writes it, `tape alerts check` reads it."""
    root, book = world
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "reconciliation"\nreport = "reports/reconcile.json"\n')
    report = tmp_path / "reports" / "reconcile.json"
    check = ["alerts", "check", str(root / "run"), "--rules", str(rules), "--no-send"]
    assert main(check) == 0  # no report yet: nothing to say
    ledger = ledger_copy(world, tmp_path)
    iid, qty = next(iter(book.days[-1].positions.items()))
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE positions SET qty_raw = 1 WHERE instrument_id = ?", (iid,))
    db.close()
    assert main(["reconcile", str(root / "run"), "--db", str(ledger), "--json", str(report)]) == 1
    assert main(check) == 1
    from projections.alerts import AlertStore

    store = AlertStore(tmp_path / "alerts.state.sqlite", str((root / "run").resolve()))
    (alert,) = store.alerts(firing_only=True)
    store.close()
    assert (alert.rule, alert.key, alert.severity) == ("reconciliation", str(report), "critical")
    symbol = book.instruments[iid].symbol
    assert f"1 of {len(json.loads(report.read_text())['lines'])} lines differ" in alert.message
    assert f"position {symbol} journal {qty}, ledger 1" in alert.message
    assert main(["reconcile", str(root / "run"), "--json", str(report)]) == 0
    assert main(check) == 0
    store = AlertStore(tmp_path / "alerts.state.sqlite", str((root / "run").resolve()))
    (resolved,) = store.alerts()
    store.close()
    assert resolved.status == "resolved"
    assert "lines match" in (resolved.resolved_message or "")
    report.write_text("{not json")
    assert main(check) == 1  # a report nobody can read is not a clean reconciliation


def test_an_earlier_day_before_a_split_rolls_back_the_split_too(tmp_path: Path) -> None:
    """The ledger keeps no table of corporate actions: rolling its positions back past a split
    takes the split's share change from the journal."""
    import pyarrow as pa

    from domain.instruments import Instrument
    from domain.markets import session_intervals_ns
    from lake.store import write_dataset
    from sim.backtest import BacktestConfig, StrategyConfig, run_backtest
    from tests.factories import Scripted, one_name_policy

    xyz = Instrument(
        instrument_id=1, symbol="XYZ", venue="XNAS", asset_class="equity", currency="USD",
        price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
    )  # fmt: skip
    days = [20200101 + i for i in range(10)]
    price = [10_000] * 5 + [5_000] * 5  # 2-for-1 on the sixth day
    bars = pa.table({
        "ts_ns": [session_intervals_ns("24x7", day)[-1][1] for day in days], "day": days,
        "instrument_id": [1] * 10, "open": price, "high": price, "low": price, "close": price,
        "volume": [1_000_000] * 10,
    })  # fmt: skip
    actions = pa.table({
        "instrument_id": [1], "ex_date": [days[5]], "pay_date": [0], "cash_e8": [0],
        "split_to": [2], "split_from": [1],
    })  # fmt: skip
    write_dataset(tmp_path / "data", name="split", frequency="1d", calendar="24x7", instruments=[xyz],
                  bars=bars, actions=actions)  # fmt: skip
    config = BacktestConfig(
        run_id="split", dataset=str(tmp_path / "data"), journal=str(tmp_path / "run"),
        strategy=StrategyConfig(name="scripted"), risk=one_name_policy(), us_regulatory_fees=False,
    )  # fmt: skip
    run_backtest(config, Scripted({0: 0.5}))
    rebuild_ledger(tmp_path / "run", tmp_path / "run.ledger.sqlite")
    with open_journal(tmp_path / "run") as journal:
        book = fold_journal_book(journal)
    before, after = book.day(days[3]), book.days[-1]
    assert before is not None
    assert after.positions[1] == 2 * before.positions[1] > 0
    for day in ("2020-01-04", None):
        status, result = reconcile(tmp_path, tmp_path / "run", *(["--day", day] if day else []))
        assert status == 0, differences(result)
        (position,) = [line for line in result["lines"] if line["item"] == "position"]  # type: ignore[union-attr]
        expected = before if day else after
        assert position["ledger"] == position["journal"] == str(expected.positions[1])


def test_a_large_books_figures_stay_whole_at_80_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A book of 9 x 10**12 (the docs allow 10**13): the NAV in minor units has 19 characters
    with its commas, and neither it nor any other figure is split over two lines at 80 columns."""
    data = make_dataset(tmp_path / "data", symbols=3, bars=120)
    run(make_config(data, tmp_path / "run", seed=1, initial_cash="9000000000000"))
    rebuild_ledger(tmp_path / "run", tmp_path / "run.ledger.sqlite")
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    status, result = reconcile(tmp_path, tmp_path / "run", "--db", str(tmp_path / "run.ledger.sqlite"))
    assert status == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    lines = result["lines"]
    assert isinstance(lines, list)
    figures = [f"{Decimal(line['journal']):,}" for line in lines]  # as the table prints them
    assert max(len(figure) for figure in figures) >= 19
    for figure in figures:
        assert figure in out, figure  # whole, on one line


def test_json_and_csv_both_on_stdout_and_a_day_off_the_calendar_are_refused(
    world: tuple[Path, JournalBook], capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: ``--json - --csv -`` printed the JSON document and the CSV one after the other on
    stdout (neither parseable), exit 0; ``--day 2020-13-01`` was taken for a day the journal
    did not close instead of a date that does not exist."""
    root, _ = world
    capsys.readouterr()
    assert main(["reconcile", str(root / "run"), "--json", "-", "--csv", "-"]) == 2
    out = capsys.readouterr().out
    assert "--json - and --csv - both write to stdout" in out and "{" not in out, out
    assert main(["reconcile", str(root / "run"), "--day", "2020-13-01"]) == 2
    assert "day '2020-13-01' is not a calendar date" in capsys.readouterr().out
