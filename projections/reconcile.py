"""End-of-day reconciliation: positions and cash from a fresh fold of the journal
(``projections.daybook``), from the ledger projection's tables and from a broker statement.

Every figure is compared in exact integers (raw quantities, minor units) and reported as an
exact decimal. A *line* is one (item, key): ``position SYMBOL`` (quantity), ``cash CCY``,
``nav CCY`` (the day close's NAV against the ledger's ``nav`` row) and ``checkpoint`` (the
ledger must have applied the journal at least up to the day's close). The day's cut is the
seq of its ``day.closed.v1``; the ledger's tables are read as of that seq:

* cash: the ``postings`` of the ``assets:cash:{CCY}`` accounts with ``seq <=`` the cut;
* positions: the ``positions`` table less the ``fills`` after the cut and less the
  corporate-action share changes journaled after the cut (the ledger keeps no table of them);
* NAV: the ``nav`` row of the day.

Journal and ledger must agree exactly. The statement's cash may differ from the journal's by
the book's rounding of its fills: the book books each fill's notional and fee in the
currency's minor unit (half-even), a venue such as Binance keeps 1e-8, and the statement states
the venue's balance in minor units again. Each of those roundings moves the book's cash by at
most half a minor unit, so the residual over ``h`` of them (every fill's fee, and its notional
where ``qty * price * multiplier`` is inexact: ``DayBook.cash_roundings``) is below ``h / 2 + 1``
minor units and, being a whole number of them, at most ``ceil(h / 2)``: a statement cash line
within that bound is ``rounding`` (ok, shown with its residual and bound), one beyond it a
difference. With no fill in a currency the bound is 0: cash compares exactly.

The statement CSV (``docs/data_contracts/statement.md``) has one row per position and per
currency's cash of a day and account; only the rows of the reconciled day (and account) count.
It is refused (``ReconcileRefused``), not compared, when it is not one: empty, a header that is
not exactly the statement's columns, a row of another width, a number that is not a plain
decimal (``1e5``), cash finer than its currency's minor unit or a quantity finer than its
instrument's increment.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.fixed import minor_digits, to_decimal
from domain.instruments import Instrument
from projections.base import LedgerProjection
from projections.daybook import DayBook, JournalBook

__all__ = [
    "STATEMENT_COLUMNS",
    "Line",
    "Reconciliation",
    "ReconcileRefused",
    "Statement",
    "StatementRow",
    "CashRounding",
    "StatementScope",
    "check_statement_quantities",
    "combine_statements",
    "ledger_figures",
    "read_statement",
    "reconcile",
    "resolve_cut",
]

STATEMENT_COLUMNS = ("day", "account", "symbol", "quantity", "cash", "currency")
STATEMENT_ROWS_MAX = 1_000_000
# A statement's numbers are plain decimals: ASCII digits, an optional sign and decimal point.
# Exponents ("1e5"), thousands separators, underscores, NaN / Infinity and non-ASCII digits,
# all of which ``Decimal`` would take, are refused: money and quantities are written exactly.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class ReconcileRefused(ValueError):
    """An input reconciliation cannot use (a statement that is not one, a day not closed)."""


@dataclass(frozen=True)
class StatementRow:
    line: int
    day: int
    account: str
    symbol: str
    quantity: Decimal | None
    cash: Decimal | None
    currency: str


@dataclass(frozen=True)
class Statement:
    path: str
    account: str
    day: int
    positions: dict[str, Decimal]  # symbol -> quantity
    cash: dict[str, Decimal]  # currency -> amount
    currencies: dict[str, str]  # symbol -> the currency the row names
    position_rows: dict[str, int] = field(default_factory=dict)  # symbol -> its line in the file
    # Several statements combined (``combine_statements``): each file and account, and per
    # line ("position" / "cash", key) the figure each file lists; empty for one file.
    sources: tuple[tuple[str, str], ...] = ()
    parts: dict[tuple[str, str], tuple[tuple[str, Decimal], ...]] = field(default_factory=dict)

    def listing(self, item: str, key: str) -> int:
        """How many of the combined files list the line (1 for a single file that does)."""
        if self.sources:
            return len(self.parts.get((item, key), ()))
        return int(key in (self.positions if item == "position" else self.cash))


@dataclass(frozen=True)
class StatementScope:
    """What a statement covers, when it covers part of the book (one broker of several):
    positions of instruments at ``venues`` (else priced in ``currencies``) and cash in
    ``currencies`` (else in the currencies of the instruments at ``venues``). Lines outside it
    are not compared with the statement (and said so); a line the statement lists is always
    compared, and one outside the scope is a difference with a note."""

    currencies: frozenset[str] = frozenset()
    venues: frozenset[str] = frozenset()

    def covers_instrument(self, instrument: Instrument) -> bool:
        if self.venues:
            return instrument.venue in self.venues
        return instrument.currency in self.currencies

    def covers_cash(self, currency: str, instruments: Mapping[int, Instrument]) -> bool:
        if self.currencies:
            return currency in self.currencies
        return any(i.currency == currency for i in instruments.values() if i.venue in self.venues)

    def describe(self) -> str:
        """``--currencies CNY --venues XSHG,XSHE``: as it was given."""
        parts = [f"--currencies {','.join(sorted(self.currencies))}"] if self.currencies else []
        parts += [f"--venues {','.join(sorted(self.venues))}"] if self.venues else []
        return " ".join(parts)

    def to_json(self) -> dict[str, list[str]]:
        return {"currencies": sorted(self.currencies), "venues": sorted(self.venues)}


@dataclass(frozen=True)
class CashRounding:
    """How far a statement's cash may sit from the journal's by the book's rounding alone: the
    fills booked in the currency up to the cut (a fee each) and those of them whose notional
    was inexact, each rounded by at most half a minor unit, and the statement's own rounding
    to the minor unit (module doc)."""

    fills: int
    notionals: int  # the fills whose notional was not a whole number of minor units
    bound: Decimal  # ceil((fills + notionals) / 2) minor units, in the currency's units
    statements: int = 1  # the statements whose figures are summed, each rounded to the minor unit

    @classmethod
    def of(cls, fills: int, notionals: int, digits: int, statements: int = 1) -> CashRounding:
        """Each of ``statements`` rounds its own balance (under one minor unit each) once the
        currency has a fill; with none every balance is exact and so is the bound (0)."""
        halves = fills + notionals
        extra = max(statements, 1) - 1 if halves else 0
        return cls(fills, notionals, to_decimal((halves + 1) // 2 + extra, digits), max(statements, 1))

    def describe(self, unit: str) -> str:
        fills = f"{self.fills:,} fill{'' if self.fills == 1 else 's'}"
        text = f"±{self.bound:,} {unit}: {fills} x 0.5 minor in fee, {self.notionals:,} in notional"
        return text + (f", {self.statements} statements' rounding" if self.statements > 1 else "")

    def to_json(self) -> dict[str, object]:
        several = {"statements": self.statements} if self.statements > 1 else {}
        return {"fills": self.fills, "notionals": self.notionals, "bound": str(self.bound), **several}


@dataclass(frozen=True)
class Line:
    item: str  # position | cash | nav | checkpoint
    key: str  # symbol, currency, or "" (checkpoint)
    unit: str  # the currency, "qty" for a quantity, "seq" for the checkpoint
    journal: Decimal | None
    ledger: Decimal | None
    statement: Decimal | None
    note: str = ""
    rounding: CashRounding | None = None  # a cash line with a statement: the bound of its residual
    outside: bool = False  # outside the statement's scope: not compared with the statement
    parts: tuple[tuple[str, Decimal], ...] = ()  # several statements: the figure each file lists

    @property
    def ok(self) -> bool:
        present = [v for v in (self.journal, self.ledger, self.statement) if v is not None]
        if self.item == "checkpoint":
            return self.ledger is not None and self.journal is not None and self.ledger >= self.journal
        return not self.note and (len(set(present)) <= 1 or self.within_rounding)

    @property
    def within_rounding(self) -> bool:
        """The statement differs from the journal by no more than the book's rounding of its
        fills, and the ledger (if read) equals the journal exactly."""
        if self.rounding is None or self.statement is None or self.journal is None:
            return False
        if self.ledger is not None and self.ledger != self.journal:
            return False
        return self.statement != self.journal and abs(self.statement - self.journal) <= self.rounding.bound

    def rounding_text(self) -> str:
        """``rounding (-0.01 within ±0.08 USD: ...)`` for a line within its bound, else ""."""
        if not self.within_rounding or self.rounding is None:
            return ""
        assert self.statement is not None and self.journal is not None
        residual = _signed(self.statement - self.journal)
        return f"rounding ({residual} within {self.rounding.describe(self.unit)})"

    def describe(self) -> str:
        """One sentence with the numbers of a difference."""
        name = f"{self.item} {self.key}".strip()
        if self.item == "checkpoint":
            return f"checkpoint: ledger applied to seq {self.ledger}; the day closes at seq {self.journal}"
        parts = [f"{source} {_text(value)}" for source, value in self._sources() if value is not None]
        deltas = [
            f"{source} - journal = {_signed(value - self.journal)}"
            for source, value in self._sources()[1:]
            if value is not None and self.journal is not None and value != self.journal
        ]
        text = f"{name} ({self.unit}): " + ", ".join(parts)
        if deltas:
            text += " (" + "; ".join(deltas) + ")"
        if self.parts:
            text += "; statement = " + " + ".join(f"{path} {_text(value)}" for path, value in self.parts)
        if (
            self.rounding is not None
            and self.rounding.bound
            and self.statement is not None
            and self.journal is not None
            and abs(self.statement - self.journal) > self.rounding.bound
        ):
            text += f"; beyond rounding ({self.rounding.describe(self.unit)})"
        return text + (f"; {self.note}" if self.note else "")

    def _sources(self) -> list[tuple[str, Decimal | None]]:
        return [("journal", self.journal), ("ledger", self.ledger), ("statement", self.statement)]

    def to_json(self) -> dict[str, object]:
        return {
            "item": self.item,
            "key": self.key,
            "unit": self.unit,
            "journal": _json(self.journal),
            "ledger": _json(self.ledger),
            "statement": _json(self.statement),
            "ok": self.ok,
            "note": self.note,
            "rounding": self.rounding_text() or None,
            "tolerance": self.rounding.to_json() if self.rounding is not None else None,
            "outside_scope": self.outside,
            "statement_parts": {path: str(value) for path, value in self.parts} or None,
        }


@dataclass(frozen=True)
class Reconciliation:
    journal: str
    day: int  # 0: the journal's end (no day closed)
    cut_seq: int
    ledger: str | None
    statement: str | None
    account: str
    lines: list[Line]
    scope: StatementScope | None = None
    statements: tuple[tuple[str, str], ...] = ()  # (path, account) of each statement

    @property
    def outside(self) -> list[Line]:
        """The lines the statement's scope leaves out (compared with the ledger only, if read)."""
        return [line for line in self.lines if line.outside]

    @property
    def differences(self) -> list[Line]:
        return [line for line in self.lines if not line.ok]

    @property
    def roundings(self) -> list[Line]:
        """The lines that match only within the book's rounding of its fills."""
        return [line for line in self.lines if line.ok and line.within_rounding]

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, object]:
        return {
            "journal": self.journal,
            "day": _iso_day(self.day) if self.day else None,
            "cut_seq": self.cut_seq,
            "ledger": self.ledger,
            "statement": self.statement,
            "account": self.account,
            "ok": self.ok,
            "differences": len(self.differences),
            "roundings": len(self.roundings),
            "statements": [{"path": path, "account": account} for path, account in self.statements],
            "scope": self.scope.to_json() if self.scope is not None else None,
            "outside_scope": [f"{line.item} {line.key}" for line in self.outside],
            "lines": [line.to_json() for line in self.lines],
        }


def _json(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _text(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,}"


def _signed(value: Decimal) -> str:
    return f"{value:+,}"


def _iso_day(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def parse_day(text: str) -> int:
    """``YYYY-MM-DD`` -> YYYYMMDD, refusing anything else."""
    parts = text.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or [len(p) for p in parts] != [4, 2, 2]:
        raise ReconcileRefused(f"day {text!r} is not YYYY-MM-DD")
    try:
        date(*(int(p) for p in parts))
    except ValueError:
        raise ReconcileRefused(f"day {text!r} is not a calendar date") from None
    return int("".join(parts))


# --- the statement ----------------------------------------------------------------------------


def _decimal(text: str, what: str, line: int) -> Decimal | None:
    text = text.strip()
    if not text:
        return None
    if not _PLAIN_DECIMAL.fullmatch(text):
        kind = "money" if what == "cash" else "quantities"
        raise ReconcileRefused(
            f"line {line}: {what} {text!r} is not a plain decimal number: write it with digits, "
            f"an optional sign and decimal point (such as -1200 or 98765.43); exponents (1e5), "
            f"thousands separators and other number forms are refused, {kind} must be exact"
        )
    return Decimal(text)


def _finer_than(value: Decimal, digits: int) -> bool:
    """Whether ``value`` has a non-zero digit past ``digits`` decimals (``1.50`` fits 1);
    exact at any size (no rounding context)."""
    _, figures, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a plain decimal: finite
    extra = -exponent - digits  # the figures past the allowed decimals
    return extra > 0 and any(figures[-extra:])


def _unit(digits: int) -> str:
    return f"{Decimal(1).scaleb(-digits):f}"


def _increment(digits: int) -> str:
    return f"{_unit(digits)} (qty_digits {digits})" if digits else "1 (whole units, qty_digits 0)"


def _statement_row(number: int, row: dict[str, str]) -> StatementRow:
    values = {column: (row.get(column) or "").strip() for column in STATEMENT_COLUMNS}
    symbol, currency = values["symbol"], values["currency"]
    quantity = _decimal(values["quantity"], "quantity", number)
    cash = _decimal(values["cash"], "cash", number)
    if not currency:
        raise ReconcileRefused(f"line {number}: currency is empty")
    if symbol and (quantity is None or cash is not None):
        raise ReconcileRefused(f"line {number}: a position row ({symbol}) has a quantity and no cash")
    if not symbol and (cash is None or quantity is not None):
        raise ReconcileRefused(f"line {number}: a cash row (no symbol) has a cash amount and no quantity")
    if cash is not None:
        try:
            digits = minor_digits(currency)
        except ValueError:
            digits = None  # an unknown currency is a line of its own ("unknown currency")
        if digits is not None and _finer_than(cash, digits):
            raise ReconcileRefused(
                f"line {number}: cash {values['cash']} {currency} is finer than {currency} allows: "
                f"its smallest unit is {_unit(digits)}"
            )
    try:
        day = parse_day(values["day"])
    except ReconcileRefused as error:
        raise ReconcileRefused(f"line {number}: {error}") from None
    return StatementRow(number, day, values["account"], symbol, quantity, cash, currency)


def _expected() -> str:
    return f"{', '.join(STATEMENT_COLUMNS)} (in any order; docs/data_contracts/statement.md)"


def _check_header(path: Path, fieldnames: Sequence[str] | None) -> list[str]:
    """The header's columns: exactly the statement's, each once."""
    if not fieldnames:
        raise ReconcileRefused(
            f"{path}: the statement is empty: it needs a header row naming the columns {_expected()}"
        )
    columns = list(fieldnames)
    problems = []
    missing = [c for c in STATEMENT_COLUMNS if c not in columns]
    if missing:
        problems.append(f"lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    unknown = [c for c in columns if c not in STATEMENT_COLUMNS]
    if unknown:
        names = ", ".join(repr(c) for c in unknown)
        problems.append(f"names unknown column{'s' if len(unknown) > 1 else ''} {names}")
    twice = sorted({c for c in columns if columns.count(c) > 1 and c in STATEMENT_COLUMNS})
    if twice:
        problems.append(f"names column{'s' if len(twice) > 1 else ''} {', '.join(twice)} twice")
    if problems:
        raise ReconcileRefused(
            f"{path}: not a statement: its header {' and '.join(problems)}; "
            f"a statement has exactly the columns {_expected()}"
        )
    return columns


def _statement_rows(path: Path) -> list[StatementRow]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ReconcileRefused(f"{path}: not a UTF-8 text file") from None
    reader = csv.reader(text.splitlines())
    header = next((row for row in reader if row), None)  # blank lines before it are skipped
    columns = _check_header(path, header)
    rows = []
    for values in reader:
        if not values:
            continue  # a blank line
        number = reader.line_num
        if number > STATEMENT_ROWS_MAX:
            raise ReconcileRefused(f"{path}: more than {STATEMENT_ROWS_MAX:,} rows")
        if len(values) != len(columns):
            raise ReconcileRefused(
                f"{path}: line {number}: {len(values)} fields where the header names {len(columns)} "
                f"({', '.join(columns)}): a comma too many or too few (quote a field that holds one)"
            )
        try:
            rows.append(_statement_row(number, dict(zip(columns, values, strict=True))))
        except ReconcileRefused as error:
            raise ReconcileRefused(f"{path}: {error}") from None
    if not rows:
        raise ReconcileRefused(
            f"{path}: the statement has a header and no rows: it lists a day's positions and cash "
            "(a cash row for each currency, 0 for an empty balance)"
        )
    return rows


def read_statement(path: Path, day: int | None, account: str | None) -> Statement:
    """The rows of one day and account. Without ``day`` the statement must hold one day; without
    ``account`` the day's rows must be one account's. Two rows for one symbol or currency are
    refused (a statement lists each once)."""
    rows = _statement_rows(path)
    days = sorted({row.day for row in rows})
    if day is None:
        if len(days) != 1:
            raise ReconcileRefused(
                f"{path}: holds {len(days)} days {[_iso_day(d) for d in days]}: pass --day"
            )
        day = days[0]
    rows = [row for row in rows if row.day == day and (account is None or row.account == account)]
    accounts = sorted({row.account for row in rows})
    if not rows:
        raise ReconcileRefused(
            f"{path}: no rows for day {_iso_day(day)}" + (f" and account {account}" if account else "")
        )
    if len(accounts) > 1:
        raise ReconcileRefused(f"{path}: day {_iso_day(day)} holds accounts {accounts}: pass --account")
    positions: dict[str, Decimal] = {}
    cash: dict[str, Decimal] = {}
    currencies: dict[str, str] = {}
    position_rows: dict[str, int] = {}
    for row in rows:
        target, key = (positions, row.symbol) if row.symbol else (cash, row.currency)
        if key in target:
            raise ReconcileRefused(f"{path}: line {row.line}: {key} listed twice for {_iso_day(day)}")
        value = row.quantity if row.symbol else row.cash
        assert value is not None
        target[key] = value
        if row.symbol:
            currencies[row.symbol] = row.currency
            position_rows[row.symbol] = row.line
    return Statement(str(path), accounts[0], day, positions, cash, currencies, position_rows)


def combine_statements(statements: Sequence[Statement]) -> Statement:
    """Several statements of one day (one per broker) as one: each position and cash balance
    summed over the files that list it, with the figure of each kept (``parts``). Together they
    must cover the book (a line none lists is compared as 0, as with one statement). One
    statement is returned as it is."""
    if len(statements) == 1:
        return statements[0]
    paths = [statement.path for statement in statements]
    twice = sorted({path for path in paths if paths.count(path) > 1})
    if twice:
        raise ReconcileRefused(f"statement {', '.join(twice)} given twice")
    days = sorted({statement.day for statement in statements})
    if len(days) > 1:
        each = ", ".join(f"{statement.path} {_iso_day(statement.day)}" for statement in statements)
        raise ReconcileRefused(f"the statements state different days ({each}): pass --day")
    parts: dict[tuple[str, str], list[tuple[str, Decimal]]] = {}
    currencies: dict[str, str] = {}
    for statement in statements:
        for symbol, quantity in statement.positions.items():
            parts.setdefault(("position", symbol), []).append((statement.path, quantity))
            named = statement.currencies[symbol]
            known = currencies.setdefault(symbol, named)
            if named not in known.split("/"):
                currencies[symbol] = f"{known}/{named}"
        for currency, amount in statement.cash.items():
            parts.setdefault(("cash", currency), []).append((statement.path, amount))
    positions = {
        key: sum((v for _, v in listed), Decimal(0))
        for (item, key), listed in parts.items()
        if item == "position"
    }
    cash = {
        key: sum((v for _, v in listed), Decimal(0))
        for (item, key), listed in parts.items()
        if item == "cash"
    }
    return Statement(
        ", ".join(paths),
        ", ".join(dict.fromkeys(statement.account for statement in statements)),
        days[0],
        positions,
        cash,
        currencies,
        sources=tuple((statement.path, statement.account) for statement in statements),
        parts={key: tuple(listed) for key, listed in parts.items()},
    )


def check_statement_quantities(statement: Statement, instruments: Mapping[int, Instrument]) -> None:
    """Refuse a position quantity finer than its instrument's quantity increment
    (``10**-qty_digits``: 0.5 of a whole-share stock): no broker can hold it, so it is a
    statement written wrong, not a difference. A symbol the journal does not define is left to
    the comparison (a difference with a note)."""
    by_symbol = {instrument.symbol: instrument for instrument in instruments.values()}
    for symbol, quantity in statement.positions.items():
        instrument = by_symbol.get(symbol)
        if instrument is not None and _finer_than(quantity, instrument.qty_digits):
            line = statement.position_rows.get(symbol)
            where = f"line {line}: " if line is not None else ""
            raise ReconcileRefused(
                f"{statement.path}: {where}quantity {quantity} of {symbol} is finer than the instrument "
                f"allows: its quantity increment is {_increment(instrument.qty_digits)}"
            )


# --- the ledger --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerFigures:
    checkpoint_seq: int
    positions: dict[int, int]
    cash: dict[str, int]
    nav: tuple[int, str] | None


def _int_rows(ledger: LedgerProjection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(int(v) if not isinstance(v, str) else v for v in row) for row in ledger.query(sql)]


def ledger_figures(
    ledger: LedgerProjection, cut: DayBook, share_changes_after: dict[int, int]
) -> LedgerFigures:
    """The ledger's positions, cash and NAV as of ``cut.seq`` (see the module doc). The SQL
    holds integers only and no ``%`` (no parameters: the backends' placeholders differ)."""
    seq = int(cut.seq)
    positions = dict(_int_rows(ledger, "SELECT instrument_id, qty_raw FROM positions"))
    later = _int_rows(
        ledger,
        f"SELECT instrument_id, SUM(side * fill_qty_raw) FROM fills WHERE seq > {seq} GROUP BY instrument_id",
    )
    for instrument_id, qty in later + sorted(share_changes_after.items()):
        positions[instrument_id] = positions.get(instrument_id, 0) - qty
    cash_rows = _int_rows(
        ledger,
        "SELECT account, SUM(amount_minor) FROM postings "
        f"WHERE substr(account, 1, 12) = 'assets:cash:' AND seq <= {seq} GROUP BY account",
    )
    nav_rows = _int_rows(ledger, f"SELECT nav_minor, currency FROM nav WHERE day = {int(cut.day)}")
    return LedgerFigures(
        checkpoint_seq=ledger.checkpoint_seq,
        positions={iid: qty for iid, qty in sorted(positions.items()) if qty},
        cash={account.removeprefix("assets:cash:"): amount for account, amount in sorted(cash_rows)},
        nav=(nav_rows[0][0], nav_rows[0][1]) if nav_rows else None,
    )


# --- the comparison ---------------------------------------------------------------------------


def resolve_cut(book: JournalBook, day: int | None) -> DayBook:
    """The day's close (``day``), else the last day closed, else the journal's end."""
    if day is not None:
        found = book.day(day)
        if found is None:
            closed = [b.day for b in book.days]
            last = f" (its last is {_iso_day(closed[-1])})" if closed else " (it closes no day)"
            raise ReconcileRefused(f"the journal has no close of day {_iso_day(day)}{last}")
        return found
    return book.days[-1] if book.days else book.end


def _quantity(instrument: Instrument | None, raw: int | None) -> Decimal | None:
    if raw is None:
        return None
    return to_decimal(raw, instrument.qty_digits) if instrument else Decimal(raw)


def _in_digits(value: Decimal, digits: int) -> Decimal:
    """A statement's figure with the journal's decimals (``1`` USD reads ``1.00``, ``794.00``
    shares ``794``): exact, since a figure finer than that was refused when it was read."""
    exact = value.quantize(Decimal(1).scaleb(-digits))
    assert exact == value
    return exact


def _as_written(quantity: Decimal, instrument: Instrument | None) -> Decimal:
    """A statement's quantity in its instrument's decimals (as written for an unknown symbol)."""
    return quantity if instrument is None else _in_digits(quantity, instrument.qty_digits)


def _money(currency: str, minor: int | None) -> Decimal | None:
    return None if minor is None else to_decimal(minor, minor_digits(currency))


def _statement_note(statement: Statement | None, symbol: str, instrument: Instrument | None) -> str:
    if statement is None:
        return ""
    if instrument is None:
        return "the journal defines no such instrument"
    named = statement.currencies.get(symbol, instrument.currency)
    if named != instrument.currency:
        return f"statement currency {named}, instrument's {instrument.currency}"
    return ""


def _scoped(
    statement: Statement | None, scope: StatementScope | None, item: str, key: str, covered: bool
) -> tuple[bool, str]:
    """Whether a line is outside the statement's scope, and the note of a line the statement
    lists although the scope leaves it out (compared all the same: a difference)."""
    if statement is None or scope is None or covered:
        return False, ""
    if statement.listing(item, key):
        return False, f"the statement lists it, outside {scope.describe()}"
    return True, ""


def _parts(statement: Statement | None, item: str, key: str) -> tuple[tuple[str, Decimal], ...]:
    return statement.parts.get((item, key), ()) if statement is not None and statement.sources else ()


def _position_lines(
    book: JournalBook,
    cut: DayBook,
    ledger: LedgerFigures | None,
    statement: Statement | None,
    scope: StatementScope | None,
) -> list[Line]:
    instruments = book.instruments
    ids = set(cut.positions) | set(ledger.positions if ledger else {})
    id_of = {(instruments[i].symbol if i in instruments else f"#{i}"): i for i in ids}
    id_of |= {i.symbol: i.instrument_id for i in instruments.values()}
    symbols = {s for s, i in id_of.items() if i in ids} | set(statement.positions if statement else {})
    lines = []
    for symbol in sorted(symbols):
        iid = id_of.get(symbol)
        instrument = instruments.get(iid) if iid is not None else None
        journal_raw = cut.positions.get(iid, 0) if iid is not None else 0
        ledger_raw = (ledger.positions.get(iid, 0) if iid is not None else 0) if ledger else None
        covered = instrument is None or scope is None or scope.covers_instrument(instrument)
        outside, scope_note = _scoped(statement, scope, "position", symbol, covered)
        figure = None
        if statement is not None and not outside:
            figure = _as_written(statement.positions.get(symbol, Decimal(0)), instrument)
        note = "; ".join(n for n in (_statement_note(statement, symbol, instrument), scope_note) if n)
        lines.append(
            Line(
                "position",
                symbol,
                "qty",
                _quantity(instrument, journal_raw),
                _quantity(instrument, ledger_raw),
                figure,
                note,
                outside=outside,
                parts=_parts(statement, "position", symbol),
            )
        )
    return lines


def _cash_lines(
    book: JournalBook,
    cut: DayBook,
    ledger: LedgerFigures | None,
    statement: Statement | None,
    options: tuple[StatementScope | None, bool],
) -> list[Line]:
    """A line per currency; with a statement (and not ``exact``), each carries the bound of its
    rounding residual."""
    scope, exact = options
    currencies = set(cut.cash) | set(ledger.cash if ledger else {}) | set(statement.cash if statement else {})
    lines = []
    for currency in sorted(currencies):
        try:
            digits = minor_digits(currency)
        except (KeyError, ValueError):
            lines.append(Line("cash", currency, currency, None, None, None, "unknown currency"))
            continue
        covered = scope is None or scope.covers_cash(currency, book.instruments)
        outside, note = _scoped(statement, scope, "cash", currency, covered)
        compared = statement is not None and not outside
        rounding = None
        if compared and not exact:
            assert statement is not None
            fills, notionals = cut.cash_roundings.get(currency, (0, 0))
            rounding = CashRounding.of(fills, notionals, digits, statement.listing("cash", currency))
        lines.append(
            Line(
                "cash",
                currency,
                currency,
                to_decimal(cut.cash.get(currency, 0), digits),
                to_decimal(ledger.cash.get(currency, 0), digits) if ledger else None,
                _in_digits(statement.cash.get(currency, Decimal(0)), digits)
                if compared and statement
                else None,
                note,
                rounding=rounding,
                outside=outside,
                parts=_parts(statement, "cash", currency),
            )
        )
    return lines


def _ledger_lines(cut: DayBook, ledger: LedgerFigures) -> list[Line]:
    lines = [Line("checkpoint", "", "seq", Decimal(cut.seq), Decimal(ledger.checkpoint_seq), None)]
    if cut.nav_minor is not None:
        nav_currency = ledger.nav[1] if ledger.nav else cut.currency
        note = "" if nav_currency == cut.currency else f"ledger's NAV is in {nav_currency}"
        lines.append(
            Line(
                "nav",
                cut.currency,
                cut.currency,
                _money(cut.currency, cut.nav_minor),
                _money(cut.currency, ledger.nav[0]) if ledger.nav else None,
                None,
                note if ledger.nav else "the ledger has no nav row for the day",
            )
        )
    return lines


def reconcile(
    journal: str,
    book: JournalBook,
    cut: DayBook,
    *,
    ledger: LedgerFigures | None = None,
    ledger_name: str | None = None,
    statement: Statement | None = None,
    exact: bool = False,
    scope: StatementScope | None = None,
) -> Reconciliation:
    """Every line of the day. A statement quantity finer than its instrument's increment is
    refused (``ReconcileRefused``), not compared. ``exact``: the statement's cash too is
    compared exactly (no rounding bound). ``scope``: the part of the book the statement covers
    (``StatementScope``); the lines outside it are not compared with the statement."""
    if statement is not None:
        check_statement_quantities(statement, book.instruments)
    lines = _position_lines(book, cut, ledger, statement, scope)
    lines += _cash_lines(book, cut, ledger, statement, (scope, exact))
    if ledger is not None:
        lines = _ledger_lines(cut, ledger) + lines
    sources = ()
    if statement is not None:
        sources = statement.sources or ((statement.path, statement.account),)
    return Reconciliation(
        journal=journal,
        day=cut.day,
        cut_seq=cut.seq,
        ledger=ledger_name,
        statement=statement.path if statement else None,
        account=statement.account if statement else "",
        lines=lines,
        scope=scope if statement is not None else None,
        statements=sources,
    )


def check_sources(sources: Sequence[object]) -> None:
    """A reconciliation needs something to compare the journal with."""
    if not any(source is not None for source in sources):
        raise ReconcileRefused("nothing to compare the journal with: give --db and/or --statement")
