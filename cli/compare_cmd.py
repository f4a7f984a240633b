"""``tape compare A B``: two runs of one strategy day by day (``projections.compare``); exit 0
when every day and every derived event match, 1 when they part, 3 when a run that never finished
matches the other up to its end (or both match and one never finished)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cli.arguments import output_file
from cli.exits import EXIT_DAMAGED, EXIT_OK, EXIT_UNFINISHED
from cli.progress import console, one_stdout, plural, write_output
from cli.research_tables import print_fitted
from cli.wiring import ConfigError
from kernel.journal import JournalError
from kernel.run_status import run_status
from kernel.store import open_journal
from projections.compare import Comparison, DayPair, EventDivergence, compare_books, first_divergence
from projections.daybook import fold_journal_book
from tui.tables import Column

__all__ = ["add_compare_parser", "cmd_compare", "run_compare"]

_FIGURES = ("nav", "cash", "fills", "fees")


@contextmanager
def _naming(path: str) -> Iterator[None]:
    """A journal error raised in here is about the journal at ``path``: the ``error:`` line
    names it (``cli.main._print_error`` reads ``subject``), not the verb's first journal."""
    try:
        yield
    except JournalError as error:
        if getattr(error, "subject", None) is None:
            error.subject = path  # type: ignore[attr-defined]
        raise


def run_compare(path_a: str, path_b: str) -> Comparison:
    with ExitStack() as stack:
        with _naming(path_a):
            a = stack.enter_context(open_journal(path_a))
            book_a = fold_journal_book(a)
        with _naming(path_b):
            b = stack.enter_context(open_journal(path_b))
            book_b = fold_journal_book(b)
        if not book_a.days and not book_b.days:
            raise ConfigError(f"{path_a}: neither journal closes a day: nothing to compare")
        # Both were read whole above: the streams below read records already checked.
        divergence = first_divergence(a, b)
    return compare_books(path_a, book_a, path_b, book_b, divergence)


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _num(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _day_row(comparison: Comparison, pair: DayPair) -> dict[str, object]:
    row: dict[str, object] = {"day": _iso(pair.day)}
    for name in _FIGURES:
        a, b = getattr(pair, name)
        row[f"{name}_a"], row[f"{name}_b"] = _num(a), _num(b)
        row[f"{name}_diff"] = _num(b - a) if a is not None and b is not None else None
    row["positions_differ"] = {
        comparison.symbol(i): [str(comparison.quantity(i, qa)), str(comparison.quantity(i, qb))]
        for i, (qa, qb) in pair.position_differences().items()
    }
    row["differs"] = pair.differing()
    return row


def comparison_json(comparison: Comparison) -> dict[str, object]:
    divergence = comparison.divergence
    first = comparison.first_day
    return {
        "a": comparison.a,
        "b": comparison.b,
        "currency": comparison.currency,
        "same": comparison.same,
        "first_differing_day": _iso(first.day) if first else None,
        "first_differing_day_figures": first.differing() if first else [],
        "first_divergent_event": None
        if divergence is None
        else {
            "index": divergence.index,
            "seq_a": divergence.seq_a,
            "seq_b": divergence.seq_b,
            "kind_a": divergence.kind_a,
            "kind_b": divergence.kind_b,
            "fields": divergence.fields,
            "event_a": divergence.event_a,
            "event_b": divergence.event_b,
        },
        "summary": {
            s.name: {k: _num(v) for k, v in vars(s).items() if k != "name"} for s in comparison.stats()
        },
        "days": [_day_row(comparison, pair) for pair in comparison.days],
    }


def _csv_text(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [
        "day",
        *(f"{n}_{s}" for n in _FIGURES for s in ("a", "b", "diff")),
        "positions_differ",
        "differs",
    ]
    writer.writerow(columns)
    for pair in comparison.days:
        row = _day_row(comparison, pair)
        row["positions_differ"] = " ".join(f"{k}:{a}/{b}" for k, (a, b) in row["positions_differ"].items())  # type: ignore[attr-defined]
        row["differs"] = " ".join(row["differs"])  # type: ignore[arg-type]
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


_CODES = {"nav": "N", "cash": "C", "fills": "F", "fees": "E", "positions": "P"}


def _codes(pair: DayPair) -> str:
    return "".join(_CODES.get(name, "M") for name in pair.differing())


def _print_days(comparison: Comparison, rows_max: int) -> None:
    """The first differing day and the days after it (or the last days when all match)."""
    days = comparison.days
    start = days.index(comparison.first_day) if comparison.first_day else max(len(days) - rows_max, 0)
    rows: list[tuple[str, ...]] = []
    for pair in days[start : start + rows_max]:
        nav_a, nav_b = pair.nav
        cash_a, cash_b = pair.cash
        fee_a, fee_b = pair.fees
        fills_a, fills_b = pair.fills
        rows.append(
            (
                _iso(pair.day),
                "-" if nav_a is None else f"{nav_a:,.0f}",
                _money(nav_b - nav_a) if nav_a is not None and nav_b is not None else "-",
                _money(cash_b - cash_a) if cash_a is not None and cash_b is not None else "-",
                f"{'-' if fills_a is None else fills_a}/{'-' if fills_b is None else fills_b}",
                _money(fee_b - fee_a) if fee_a is not None and fee_b is not None else "-",
                _codes(pair),
            )
        )
    # At the console's width, dropping the least needed columns: a number is never cut.
    print_fitted(f"A {comparison.a} vs B {comparison.b} ({comparison.currency})", _DAY_COLUMNS, rows, left=1)
    console.print(
        "differs: N nav, C cash, F fills, E fees, P positions, M a day one run lacks", soft_wrap=True
    )


_DAY_COLUMNS = (
    Column("day", 9),
    Column("NAV A", 6),
    Column("NAV B-A", 8),
    Column("cash B-A", 4),
    Column("fills A/B", 3),
    Column("fees B-A", 2),
    Column("diff", 7),
)
_SUMMARY_COLUMNS = (
    Column("figure", 9),
    Column("days", 2),
    Column("differ", 6),
    Column("mean", 3),
    Column("mean |d|", 4),
    Column("max |d|", 7),
    Column("last", 8),
)


def _print_summary(comparison: Comparison) -> None:
    rows: list[tuple[str, ...]] = [
        (
            s.name,
            f"{s.days:,}",
            f"{s.differing_days:,}",
            *(("-" if math.isnan(v) else f"{v:,.2f}") for v in (s.mean, s.mean_abs, s.max_abs, s.last)),
        )
        for s in comparison.stats()
    ]
    print_fitted("B - A over the days both closed", _SUMMARY_COLUMNS, rows, left=1)


def _print_divergence(comparison: Comparison, last_seqs: dict[str, int]) -> None:
    first, divergence = comparison.first_day, comparison.divergence
    if first is not None:
        console.print(f"[red]first differing day[/] {_iso(first.day)}: {', '.join(first.differing())}")
        for i, (qa, qb) in first.position_differences().items():
            console.print(
                f"  position {comparison.symbol(i)}: A {comparison.quantity(i, qa):,}, "
                f"B {comparison.quantity(i, qb):,}",
                highlight=False,
            )
    if divergence is None:
        return
    sides = []
    for side, seq, kind in (
        ("A", divergence.seq_a, divergence.kind_a),
        ("B", divergence.seq_b, divergence.kind_b),
    ):
        ended = f"{side} ends at seq {last_seqs[side]}"  # its last record
        sides.append(ended if seq is None else f"{side} seq {seq} {kind}")
    console.print(f"[red]first divergent event[/] #{divergence.index}: {', '.join(sides)}", highlight=False)
    for line in _divergence_lines(divergence, console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


# A divergent event is summarised, never printed whole (an instruments.defined of 50 names is
# hundreds of lines): its kind, seq and time, then at most this many fields that differ (or,
# where one run ended, of the other's fields), each value cut to the line with a count of what
# is left out. --json holds both events whole.
_FIELDS_SHOWN_MAX = 6
_VALUE_CHARS_MIN = 24  # a value gets at least this many characters, however narrow the console


def _divergence_lines(divergence: EventDivergence, width: int) -> list[str]:
    """The bounded summary of the first divergent event, each line at most ``width`` wide
    (``_VALUE_CHARS_MIN`` allowing)."""
    event_a, event_b = divergence.event_a, divergence.event_b
    times = {side: _when(event.get("ts_ns")) for side, event in (("A", event_a), ("B", event_b)) if event}
    if len(times) == 2 and times["A"] == times["B"]:
        lines = [f"  at {times['A']} in both"]
    else:
        lines = ["  " + ", ".join(f"{side} at {when}" for side, when in times.items())]
    if event_a is not None and event_b is not None:
        fields = [name for name in divergence.fields if name not in ("kind", "ts_ns")]  # above
        what = "differ"
    else:
        fields = [name for name in (event_a or event_b or {}) if name not in ("kind", "ts_ns")]
        what = "in the event"
    for name in fields[:_FIELDS_SHOWN_MAX]:
        lines.extend(_field_lines(name, event_a, event_b, width))
    left = len(fields) - _FIELDS_SHOWN_MAX
    if left > 0:
        lines.append(f"  ... {plural(left, 'more field')} {what} (--json has the events whole)")
    return lines


def _when(ts_ns: object) -> str:
    if not isinstance(ts_ns, int):
        return "?"
    when = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    nanoseconds = ts_ns % 1_000_000_000
    return f"{when}.{nanoseconds:09d}Z" if nanoseconds else f"{when}Z"


_ABSENT = object()


def _field_lines(
    name: str, event_a: dict[str, Any] | None, event_b: dict[str, Any] | None, width: int
) -> list[str]:
    """A field's value in each run that has the event; of two lists, where they first part."""
    a = _ABSENT if event_a is None else event_a.get(name, _ABSENT)
    b = _ABSENT if event_b is None else event_b.get(name, _ABSENT)
    if isinstance(a, list) and isinstance(b, list):
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        head = f"  {name}: A {plural(len(a), 'item')}, B {plural(len(b), 'item')}; first differing: [{at}]"
        pairs = [(f"    A[{at}]: ", a[at] if at < len(a) else _ABSENT),
                 (f"    B[{at}]: ", b[at] if at < len(b) else _ABSENT)]  # fmt: skip
        return [head, *(label + _value(value, width - len(label)) for label, value in pairs)]
    both = event_a is not None and event_b is not None  # else: the fields of the one event
    pairs = [(f"  {name}: A ", a), (f"  {name}: B ", b)]
    return [
        label + _value(value, width - len(label)) for label, value in pairs if both or value is not _ABSENT
    ]


def _value(value: object, width: int) -> str:
    return "(none)" if value is _ABSENT else _brief(value, max(width, _VALUE_CHARS_MIN))


def _brief(value: object, chars_max: int) -> str:
    """``value`` as JSON in at most ``chars_max`` characters (a cut string keeps at least 8 of
    its own, so very narrow limits are exceeded): a list or an object keeps the
    items (keys) that fit and counts the rest (``... 49 more items``), a long string or number is
    cut with a count of the characters left out."""
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) <= chars_max:
        return text
    if isinstance(value, list | dict):
        return _brief_items(value, chars_max)
    kept = max(chars_max - len(f"... ({len(text):,} more characters)"), 8)
    return f"{text[:kept]}... ({len(text) - kept:,} more characters)"


def _brief_items(value: list[Any] | dict[str, Any], chars_max: int) -> str:
    """The items (keys) that fit in ``chars_max``, then a count of the rest; where not even the
    first fits, the first cut in turn (an instrument of a list of instruments), else the count
    alone (``{20 keys}``)."""
    if isinstance(value, dict):
        items = [f"{json.dumps(key)}: {json.dumps(item, sort_keys=True, default=str)}"
                 for key, item in sorted(value.items())]  # fmt: skip
        open_, close, noun = "{", "}", "key"
    else:
        items = [json.dumps(item, sort_keys=True, default=str) for item in value]
        open_, close, noun = "[", "]", "item"

    def joined(shown: list[str]) -> str:
        if not shown:
            return f"{open_}{plural(len(items), noun)}{close}"
        rest = len(items) - len(shown)
        return open_ + ", ".join([*shown, f"... {plural(rest, 'more ' + noun)}"] if rest else shown) + close

    shown: list[str] = []
    for item in items:
        if len(joined([*shown, item])) > chars_max:
            break
        shown.append(item)
    if shown or not items:
        return joined(shown)
    first = value[min(value)] if isinstance(value, dict) else value[0]
    key = f"{json.dumps(min(value))}: " if isinstance(value, dict) else ""
    room = chars_max - len(joined([key]))
    cut = joined([key + _brief(first, room)]) if room >= _VALUE_CHARS_MIN // 2 else ""
    return cut if cut and len(cut) <= chars_max else joined([])


def cmd_compare(args: argparse.Namespace) -> int:
    if args.days < 0:
        raise ConfigError("--days must not be negative")
    one_stdout(json=args.json, csv=args.csv)
    comparison = run_compare(args.journal, args.journal_b)
    outputs = {"json": args.json, "csv": args.csv}
    if args.json:
        text = json.dumps(comparison_json(comparison), indent=1, default=str) + "\n"
        write_output(args.json, text, option="--json")
    if args.csv:
        write_output(args.csv, _csv_text(comparison), option="--csv")
    if "-" not in outputs.values():
        _print_days(comparison, args.days)
        _print_summary(comparison)
        _print_divergence(comparison, _last_seqs(args.journal, args.journal_b))
        if comparison.same:
            console.print(f"[green]same[/]: {len(comparison.days)} days and every derived event match")
    unfinished = _unfinished(comparison, args.journal, args.journal_b)
    for line in unfinished if "-" not in outputs.values() else ():
        console.print(f"[yellow]{line}[/]", soft_wrap=True)
    if unfinished and (comparison.same or _matching_prefix(comparison)):
        return EXIT_UNFINISHED
    return EXIT_OK if comparison.same else EXIT_DAMAGED


def _last_seqs(path_a: str, path_b: str) -> dict[str, int]:
    """Each journal's last seq (where a run that ends first ends)."""
    seqs = {}
    for side, path in (("A", path_a), ("B", path_b)):
        with open_journal(path) as journal:
            seqs[side] = len(journal) - 1
    return seqs


def _matching_prefix(comparison: Comparison) -> bool:
    """One run's derived events are the other's up to where it ends, and every day both
    closed matches: a run stopped part-way (the other went on), not a divergence."""
    divergence = comparison.divergence
    if divergence is None or (divergence.event_a is not None and divergence.event_b is not None):
        return False
    return not any(pair.a is not None and pair.b is not None and pair.differing() for pair in comparison.days)


def _unfinished(comparison: Comparison, path_a: str, path_b: str) -> list[str]:
    """One line per journal whose run never finished (no run.finished.v1)."""
    lines = []
    for side, path in (("A", path_a), ("B", path_b)):
        with open_journal(path) as journal:
            status = run_status(journal)
        if not status.finished:
            divergence = comparison.divergence
            ended = divergence is not None and getattr(divergence, f"event_{side.lower()}") is None
            matched = (
                " (it matches the other run up to its end)" if ended and _matching_prefix(comparison) else ""
            )
            lines.append(f"{side} {path}: {status.describe()}{matched}")
    return lines


def add_compare_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "compare", help="two runs day by day: NAV, cash, positions, fills, fees; first divergence"
    )
    parser.add_argument("journal", metavar="JOURNAL_A")
    parser.add_argument("journal_b", metavar="JOURNAL_B")
    parser.add_argument(
        "--days", type=int, default=10, help="days printed from the first differing one (default 10)"
    )
    parser.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write every day, the summary and the divergence (alone or '-': stdout)",
    )
    parser.add_argument("--csv", type=output_file, metavar="PATH", help="write one row per day ('-': stdout)")
