"""``tape ingest KIND PATH... --out LAKE``: files into the lake, with a report per file.

Wired into ``cli.main`` with ``add_ingest_parser(verbs)`` and ``VERBS["ingest"] = cmd_ingest``;
``tape health LAKE`` with ``add_health_parser(verbs)`` and ``VERBS["health"] = cmd_health``.
Exit status: 0 when every file was ingested (rows may be quarantined; the report says which
and why; rows the lake already holds are counted as already stored, and an ingest of nothing
new leaves the lake as it was), 2 when a file cannot be parsed at all (the lake is left
unchanged).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.markup import escape

from cli.arguments import output_file
from cli.progress import console, one_stdout, plural, progress_bar, results_on_stderr, write_output
from cli.research_tables import Column, print_fitted
from domain.markets import CalendarNotCovered, HolidayYears, holidays_hint
from lake.health import DatasetHealth, dataset_health, venue_calendar
from lake.holidays import HolidayFileError, read_holidays
from lake.ingest import IngestReport, ingest
from lake.metadata import MetadataError, MetadataReport, apply_metadata
from lake.partitioned import Lake, LakeError
from lake.schema import Kind
from lake.sources import (
    ColumnMap,
    IngestError,
    Parsed,
    parse_freqtrade,
    parse_generic_csv,
    parse_hikyuu_actions,
    parse_hikyuu_day,
    parse_hikyuu_minute,
    parse_yahoo,
)
from lake.store import DatasetRef, read_manifest
from lake.tick_health import GAP_NS, TickHealth, tick_health
from lake.tick_sources import (
    parse_freqtrade_trades,
    parse_kraken_trades,
    parse_nautilus_quotes,
    parse_nautilus_trades,
)

__all__ = [
    "FORMATS",
    "add_export_parser",
    "add_health_parser",
    "add_holidays_option",
    "add_ingest_parser",
    "cmd_export",
    "cmd_health",
    "cmd_ingest",
    "export_summary",
    "format_span",
    "health_csv",
    "holidays_option",
    "print_health",
    "print_tick_health",
    "tick_health_line",
]

FORMATS = (
    "yahoo",
    "hikyuu-day",
    "hikyuu-minute",
    "hikyuu-actions",
    "freqtrade",
    "csv",
    "trades-freqtrade",
    "trades-kraken",
    "trades-nautilus",
    "quotes-nautilus",
    "metadata",  # instrument metadata (CSV or TOML) applied to the lake's instruments (lake.metadata)
)
_TICK_PARSERS = {
    "trades-freqtrade": (parse_freqtrade_trades, "binance"),
    "trades-kraken": (parse_kraken_trades, "kraken"),
    "trades-nautilus": (parse_nautilus_trades, "binance"),
    "quotes-nautilus": (parse_nautilus_quotes, "binance"),
}


def add_ingest_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser("ingest", help="validate and store market data files in the lake")
    parser.add_argument("kind", choices=FORMATS, help="source format")
    parser.add_argument("paths", nargs="+", help="input files")
    parser.add_argument("--out", required=True, help="lake root (created if absent)")
    parser.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write the ingest report (every file's in = accepted + quarantined + already stored, "
        "reasons, gaps) as JSON (metadata: a list, one report per file; tape health --json: the "
        "lake's health) (alone or '-': stdout, the tables on stderr)",
    )
    parser.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per file (metadata: per instrument of each file) as CSV ('-': stdout)",
    )
    parser.add_argument("--symbol", help="symbol (default: from the file name)")
    add_holidays_option(parser, "the bars are checked, and their gaps counted, on the extended calendar")
    parser.add_argument(
        "--venue",
        help="venue (yahoo: the --calendar code, else XNYS; freqtrade/nautilus: binance, kraken: kraken)",
    )
    parser.add_argument(
        "--calendar", help="exchange_calendars code or 24x7 (yahoo: the --venue's calendar, else XNYS)"
    )
    parser.add_argument("--currency", default=None, help="quote currency (yahoo/csv: USD)")
    parser.add_argument("--price-digits", type=int, help="price precision (default: inferred)")
    parser.add_argument(
        "--qty-digits",
        type=int,
        default=None,
        help="volume/size precision (trades, quotes: inferred; kraken: 8)",
    )
    parser.add_argument("--frequency", default="1d", help="bar frequency for csv (1m, 5m, ..., 1d)")
    parser.add_argument(
        "--map", dest="column_map", help="csv: ts=COL (or DATE+TIME),open=COL,...,volume=COL[,turnover=COL]"
    )
    parser.add_argument(
        "--ts-format", default="%Y-%m-%d", help="csv: strptime pattern, iso, epoch_ms, epoch_s"
    )
    parser.add_argument("--tz", default="UTC", help="csv: time zone of naive timestamps")
    parser.add_argument(
        "--label", choices=("start", "end"), default="end", help="csv: bar label is its start or end"
    )
    return parser


def _parser_for(args: argparse.Namespace) -> Callable[[Path], Parsed]:
    kind = args.kind
    if kind == "yahoo":
        venue, calendar = _yahoo_venue_calendar(args.venue, args.calendar)
        return lambda path: parse_yahoo(
            path,
            symbol=args.symbol,
            venue=venue,
            calendar=calendar,
            currency=args.currency or "USD",
            price_digits=args.price_digits,
        )
    if kind in _TICK_PARSERS:
        return _tick_parser(args)
    if kind == "hikyuu-day":
        return lambda path: parse_hikyuu_day(path, price_digits=args.price_digits)
    if kind == "hikyuu-minute":
        digits = 2 if args.price_digits is None else args.price_digits  # --price-digits 0 was taken as 2
        return lambda path: parse_hikyuu_minute(path, price_digits=digits)
    if kind == "hikyuu-actions":
        return parse_hikyuu_actions
    if kind == "freqtrade":
        qty = 8 if args.qty_digits is None else args.qty_digits
        return lambda path: parse_freqtrade(
            path, venue=args.venue or "binance", price_digits=args.price_digits, qty_digits=qty
        )
    return _csv_parser(args)


def _yahoo_venue_calendar(venue: str | None, calendar: str | None) -> tuple[str, str]:
    """The venue stored with a Yahoo file's instrument and the calendar its bars are checked
    on, so that both name the same market: neither given is XNYS/XNYS; ``--calendar X`` alone
    stores venue X (``--calendar XEUR`` stored ``XNYS:SYM``, whose calendar is XNYS, while
    the report said XEUR); ``--venue V`` alone checks on V's calendar (XNYS when V has none
    the lake knows). ``--calendar 24x7`` without ``--venue`` is refused: 24x7 is no venue."""
    if venue is None and calendar is None:
        return "XNYS", "XNYS"
    if venue is None:
        assert calendar is not None
        if calendar.lower() == "24x7":
            raise IngestError("yahoo: --calendar 24x7 needs --venue (the venue stored with the instrument)")
        return calendar.upper(), calendar
    return venue, calendar or venue_calendar(venue) or "XNYS"


def _tick_parser(args: argparse.Namespace) -> Callable[[Path], Parsed]:
    """Trades and quotes: digits are declared with ``--price-digits``/``--qty-digits`` or
    inferred from the file; rows off the declared grid are quarantined."""
    parse, venue = _TICK_PARSERS[args.kind]
    options: dict[str, object] = {"symbol": args.symbol, "venue": args.venue or venue}
    options["price_digits"] = args.price_digits
    if args.qty_digits is not None or args.kind != "trades-kraken":
        options["qty_digits"] = args.qty_digits
    return lambda path: parse(path, **options)  # type: ignore[operator]


def _csv_parser(args: argparse.Namespace) -> Callable[[Path], Parsed]:
    if not args.column_map or not args.symbol or not args.venue or not args.calendar:
        raise IngestError("csv ingest needs --map, --symbol, --venue and --calendar")
    daily = args.frequency == "1d"
    mapping = ColumnMap.parse(
        args.column_map, ts_format=args.ts_format, timezone=args.tz, daily=daily, label=args.label
    )
    return lambda path: parse_generic_csv(
        path,
        mapping,
        symbol=args.symbol,
        venue=args.venue,
        calendar=args.calendar,
        frequency=args.frequency,
        currency=args.currency or "USD",
        price_digits=args.price_digits,
        qty_digits=args.qty_digits or 0,
    )


def _ingest_metadata(args: argparse.Namespace) -> int:
    """``tape ingest metadata FILE... --out LAKE``: each file validated whole, then stored; a
    refused file leaves the lake as the files before it left it."""
    reports = []
    for path in args.paths:
        try:
            report = apply_metadata(Path(args.out), Path(path))
        except MetadataError as error:
            console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
            console.print("[red]the lake is unchanged by this file[/]")
            return 2
        reports.append(report)
        with results_on_stderr(_on_stdout(args)):  # stdout carries the data alone
            print_metadata(report)
    if args.csv:
        write_output(args.csv, metadata_csv(reports), option="--csv")
    if args.json:
        text = json.dumps([asdict(report) for report in reports], sort_keys=True, indent=1)
        write_output(args.json, text + "\n", option="--json")
    _said_written(args)
    return 0


def _on_stdout(args: argparse.Namespace) -> bool:
    return "-" in (args.json, args.csv)


def _said_written(args: argparse.Namespace) -> None:
    """A ``wrote PATH`` line for each of ``--json`` / ``--csv`` written to a file."""
    with results_on_stderr(_on_stdout(args)):
        for path in dict.fromkeys(path for path in (args.json, args.csv) if path and path != "-"):
            console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)


METADATA_CSV_COLUMNS = ("source", "instrument", "changed", "changes", "delisting_date")


def metadata_csv(reports: list[MetadataReport]) -> str:
    """One row per instrument a metadata file names: ``changed`` 1 or 0, ``changes`` the
    ``field: old -> new`` pairs joined by ``;``, ``delisting_date`` YYYYMMDD or empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METADATA_CSV_COLUMNS)
    for report in reports:
        for name in sorted(report.changed) + list(report.unchanged):
            changes = report.changed.get(name, [])
            writer.writerow([report.source, name, int(name in report.changed), ";".join(changes),
                             report.delisting.get(name, "")])  # fmt: skip
    return buffer.getvalue()


METADATA_COLUMNS = (Column("instrument", 9), Column("changes", 8, wraps=True, breaks="_"))


def print_metadata(report: MetadataReport) -> None:
    rows = []
    for name, changes in sorted(report.changed.items()):
        delisted = f"; delisting {report.delisting[name]}" if name in report.delisting else ""
        rows.append((name, "; ".join(changes) + delisted))
    rows += [(name, "unchanged") for name in report.unchanged]
    title = f"metadata {Path(report.source).name} -> {report.lake}"
    print_fitted(title, METADATA_COLUMNS, rows, left=1, elsewhere="--json / --csv have every change")
    console.print(
        f"rows {report.rows_in:,} = changed {len(report.changed):,} + unchanged {len(report.unchanged):,}; "
        f"content hash {report.content_hash[:16]}..."
    )


INGEST_HOLIDAYS = holidays_hint("tape ingest ... --holidays FILE")
"""What a past-the-calendar refusal of ``tape ingest`` says to do (its own option, not export's)."""

HEALTH_HOLIDAYS = holidays_hint("tape health LAKE --holidays FILE")
"""What a past-the-calendar refusal of ``tape health`` says to do."""


def add_holidays_option(parser: argparse.ArgumentParser, use: str) -> None:
    parser.add_argument(
        "--holidays",
        metavar="FILE",
        help="XSHG holidays for whole years past exchange_calendars' last (CSV year,date[,name]; weekday "
        f"closures only, the file tape export --holidays reads): {use}; nothing is kept in the lake "
        '(docs/markets.md, "Calendar years past exchange_calendars")',
    )


def holidays_option(args: argparse.Namespace) -> HolidayYears | None:
    """The ``--holidays`` file's years (XSHG's: the one calendar that has years to extend), read
    and checked whole before the verb reads the lake; ``HolidayFileError`` names every problem."""
    return None if not args.holidays else read_holidays(Path(args.holidays), "XSHG")


def _refused(error: Exception, *, unchanged: bool = False) -> int:
    console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
    if unchanged:
        console.print("[red]the lake is unchanged[/]")
    return 2


def cmd_ingest(args: argparse.Namespace) -> int:
    one_stdout(json=args.json, csv=args.csv)
    if args.kind == "metadata":
        return _ingest_metadata(args)
    paths = [Path(p) for p in args.paths]
    try:
        holidays = holidays_option(args)
    except HolidayFileError as error:
        return _refused(error, unchanged=True)
    try:
        parser = _parser_for(args)
        with progress_bar(f"ingest {args.kind} -> {args.out}", len(paths)) as update:
            done = [0]

            def advance(_source: str, _rows: int) -> None:
                done[0] += 1
                update(done[0])

            report = ingest(Path(args.out), paths, parser, progress=advance, holidays=holidays)
    except (IngestError, LakeError) as error:
        return _refused(error, unchanged=True)
    except CalendarNotCovered as error:  # its hint names this verb's option, not tape export's
        return _refused(error.pointing(INGEST_HOLIDAYS), unchanged=True)
    if args.csv:
        write_output(args.csv, ingest_csv(report), option="--csv")
    if args.json:
        write_output(args.json, report.to_json() + "\n", option="--json")
    with results_on_stderr(_on_stdout(args)):  # stdout carries the data alone
        print_report(report)
        _print_lake_health(Lake(Path(args.out)), holidays)
    _said_written(args)
    return 0


def _print_lake_health(lake: Lake, holidays: HolidayYears | None) -> None:
    """The lake's health after an ingest, or (the ingest is committed) why it is not shown: an
    earlier ingest's report is damaged, or other bars of the lake run past the calendar."""
    try:
        health = dataset_health(lake, holidays=holidays)
        ticks = tick_health(lake, holidays=holidays)
    except (LakeError, CalendarNotCovered) as error:
        said = error.pointing(INGEST_HOLIDAYS) if isinstance(error, CalendarNotCovered) else error
        console.print(
            f"[yellow]data health not shown:[/] {escape(str(said))}", soft_wrap=True, highlight=False
        )
        return
    if health or not ticks:
        print_health(health)
    print_tick_health(ticks)


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "export", help="write a backtest data set (content-hashed) from a lake's bars"
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("out", help="data set folder to write")
    parser.add_argument("--frequency", default="1d", help="bar frequency in the lake (1d, 1m, ...)")
    parser.add_argument(
        "--calendar",
        required=True,
        help="the data set's calendar (XSHG, XNYS, 24x7, or mixed for several markets: each instrument "
        "checked on its own calendar); every bar "
        "must lie in its sessions, else nothing is written",
    )
    parser.add_argument("--symbols", help="comma-separated symbols (default: every instrument)")
    parser.add_argument("--start", help="first UTC date to keep, YYYY-MM-DD (inclusive)")
    parser.add_argument("--end", help="last UTC date to keep, YYYY-MM-DD (inclusive)")
    parser.add_argument(
        "--actions",
        action="store_true",
        help="also write actions.parquet from the lake's corporate actions (dividends, splits, rights)",
    )
    parser.add_argument(
        "--reform",
        choices=("carry", "skip"),
        default="carry",
        help="share-structure reform rows (SPDB 2006-05-12): carry them flagged into actions.parquet "
        "(default; the run's [corporate_actions] reform decides) or leave them out",
    )
    parser.add_argument(
        "--margins",
        metavar="FILE",
        help="also write margins.parquet from a CSV of futures margin rows "
        "(symbol,since,initial,maintenance,initial_e8,maintenance_e8; docs/data_contracts/dataset.md)",
    )
    parser.add_argument(
        "--fx",
        metavar="FILE",
        help="also write fx.parquet from a CSV of exchange rates for a book of several currencies "
        "(date,currency,base,rate; docs/data_contracts/dataset.md)",
    )
    parser.add_argument(
        "--settlements",
        metavar="FILE",
        help="also write settlements.parquet from a CSV of futures settlement prices "
        '(symbol,date,settle; what [futures] settlement = "dataset", the default, settles on; '
        "docs/data_contracts/dataset.md)",
    )
    parser.add_argument(
        "--holidays",
        metavar="FILE",
        help="XSHG holidays for whole years past exchange_calendars' last (CSV year,date[,name]; "
        "weekday closures only): the bars are checked on the extended calendar and the holidays "
        "carried in the data set (holidays.parquet), so runs and replays use them "
        '(docs/markets.md, "Calendar years past exchange_calendars")',
    )
    parser.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write the data set's folder, content hash, frequency, calendar, rows and the files "
        "written with their row counts as JSON (alone or '-': stdout)",
    )
    return parser


def _utc_day_ns(text: str, *, end: bool) -> int:
    import numpy as np

    try:
        day = np.datetime64(text, "D")
    except ValueError:
        raise LakeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    start_ns = int(day.astype("datetime64[ns]").astype(np.int64))
    return start_ns + 86_400_000_000_000 - 1 if end else start_ns


def cmd_export(args: argparse.Namespace) -> int:
    to_stdout = one_stdout(json=args.json)
    lake = Lake(Path(args.lake))
    try:
        if not (Path(args.lake) / "lake.json").exists():
            raise LakeError(f"{args.lake} is not a lake (no lake.json)")
        ids = None
        if args.symbols:
            by_symbol = {inst.symbol: inst.instrument_id for inst in lake.instruments()}
            wanted = [symbol.strip() for symbol in args.symbols.split(",") if symbol.strip()]
            unknown = [symbol for symbol in wanted if symbol not in by_symbol]
            if unknown:
                raise LakeError(
                    f"{args.lake}: no instrument {', '.join(unknown)}; known: {', '.join(sorted(by_symbol))}"
                )
            ids = [by_symbol[symbol] for symbol in wanted]
        ref = lake.export(
            Path(args.out),
            args.frequency,
            calendar=args.calendar,
            instrument_ids=ids,
            start_ns=_utc_day_ns(args.start, end=False) if args.start else None,
            end_ns=_utc_day_ns(args.end, end=True) if args.end else None,
            actions=args.actions,
            reform=args.reform,
            margins=Path(args.margins) if args.margins else None,
            fx=Path(args.fx) if args.fx else None,
            settlements=Path(args.settlements) if args.settlements else None,
            holidays=Path(args.holidays) if args.holidays else None,
        )
    except LakeError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return 2
    summary = export_summary(ref)
    files: dict[str, int] = summary["files"]  # type: ignore[assignment]
    optional = "".join(
        f"; {name.removesuffix('.parquet')} {plural(rows, 'row')}"
        + (_funding_marks_note(summary) if name == "funding.parquet" else "")
        for name, rows in files.items()
        if name not in ("instruments.parquet", "bars.parquet")
    )
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        console.print(
            f"wrote {ref.uri} ({ref.frequency}, calendar {ref.calendar}, "
            f"{plural(files['instruments.parquet'], 'instrument')}, {plural(files['bars.parquet'], 'bar')}"
            f"{optional}; content hash {ref.content_hash[:16]}...)",
            soft_wrap=True,
            highlight=False,
        )
        if args.actions:
            for note in _actions_notes(lake, Path(ref.uri), "actions.parquet" in files):
                console.print(f"note: {note}", soft_wrap=True, highlight=False)
    if args.json:
        write_output(args.json, json.dumps(summary, indent=1) + "\n", option="--json")
    return 0


def _actions_notes(lake: Lake, folder: Path, written: bool) -> list[str]:
    """What ``--actions`` could not carry: none in the window, and the lake's corporate actions
    ending before the data set does (the hikyuu 权息 table stops in 2011-11 while its TDX bars
    run to 2025), where the raw prices gap on ex-dates that no action row books."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    span = pc.min_max(pq.read_table(folder / "bars.parquet", columns=["day"]).column("day"))
    first, last = int(span["min"].as_py()), int(span["max"].as_py())
    stored = lake.read(Kind.CORPORATE_ACTIONS, columns=["ex_date"]).column("ex_date")
    notes = []
    if not written:
        notes.append(
            f"--actions: no corporate action of the exported instruments has its ex-date in "
            f"{first}..{last}, so the data set has no actions.parquet"
        )
    if len(stored) == 0:
        notes.append("the lake holds no corporate actions (tape ingest hikyuu-actions FILE --out LAKE)")
    elif (end := int(pc.max(stored).as_py())) < last:
        notes.append(
            f"the lake's corporate actions end on {end} (the last ex-date it holds), before the "
            f"data set's last session {last}: dividends, bonus shares and rights after {end} are "
            "not in the data set, and the raw prices drop on their ex-dates with nothing booked"
        )
    return notes


def _funding_marks_note(summary: dict[str, object]) -> str:
    marked = summary["funding_at_mark"]
    return f" ({marked} at the mark price)" if marked else " (at the bar's close: no mark price)"


def export_summary(ref: DatasetRef) -> dict[str, object]:
    """What ``tape export`` wrote: the folder, the whole content hash, frequency, calendar,
    instruments, bar rows and steps (from the manifest), and each data file with its rows."""
    import pyarrow.parquet as pq

    manifest = read_manifest(Path(ref.uri))
    folder = Path(ref.uri)
    files = {path.name: pq.ParquetFile(path).metadata.num_rows for path in sorted(folder.glob("*.parquet"))}
    summary: dict[str, object] = {
        "dataset": str(folder.resolve()),
        "name": manifest["name"],
        "content_hash": ref.content_hash,
        "frequency": ref.frequency,
        "calendar": ref.calendar,
        "instruments": manifest["instruments"],
        "rows": manifest["rows"],
        "steps": manifest["steps"],
        "files": files,
    }
    if "funding.parquet" in files:  # the rows booked at a mark price (the rest: the bar's close)
        funding = pq.read_table(folder / "funding.parquet")
        marked = funding.column("mark").to_numpy() > 0 if "mark" in funding.column_names else []
        summary["funding_at_mark"] = int(sum(marked))
    return summary


def add_health_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "health", help="data-health summary of a lake (coverage, gaps, quarantine; bars, trades, quotes)"
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write every data set's health as JSON (alone or '-': stdout, the "
                        "tables on stderr)")  # fmt: skip
    parser.add_argument(
        "--csv", type=output_file, metavar="PATH", help="write one row per data set as CSV ('-': stdout)"
    )
    parser.add_argument(
        "--gap-minutes",
        type=float,
        default=GAP_NS / 60e9,
        help="trades and quotes: count the gaps between consecutive rows longer than this inside a "
        "session (default %(default)g, i.e. 1 hour)",
    )
    add_holidays_option(parser, "bars and trades are checked on the extended calendar")
    return parser


def cmd_health(args: argparse.Namespace) -> int:
    one_stdout(json=args.json, csv=args.csv)
    root = Path(args.lake)
    if not (root / "lake.json").exists():
        console.print(f"[red]error:[/] {escape(str(root))} is not a lake (no lake.json)", highlight=False)
        return 2
    gap_ns = args.gap_minutes * 60e9
    if not (math.isfinite(gap_ns) and 1 <= round(gap_ns) < 2**62):  # nan, inf: no int64 of ns
        console.print(
            f"[red]error:[/] --gap-minutes must be a positive number of minutes (at most "
            f"{2**62 / 60e9:,.0f}), not {args.gap_minutes:g}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    lake = Lake(root)
    try:
        holidays = holidays_option(args)
        health = dataset_health(lake, holidays=holidays)
        ticks = tick_health(lake, gap_ns=round(gap_ns), holidays=holidays)
    except (LakeError, HolidayFileError) as error:
        return _refused(error)
    except CalendarNotCovered as error:  # its hint names this verb's option, not tape export's
        return _refused(error.pointing(HEALTH_HOLIDAYS))
    if args.csv:
        write_output(args.csv, health_csv(health, ticks), option="--csv")
    if args.json:
        items = [h.to_dict() for h in health] + [t.to_dict() for t in ticks]
        write_output(args.json, json.dumps(items, default=list, indent=2) + "\n", option="--json")
    with results_on_stderr(_on_stdout(args)):  # stdout carries the data alone
        if health or not ticks:
            print_health(health)
        print_tick_health(ticks)
    _said_written(args)
    return 0


CSV_COLUMNS = (
    "dataset",
    "instruments",
    "rows",
    "first_ts_ns",
    "last_ts_ns",
    "coverage",
    "suspension_sessions",
    "missing_bars",
    "missing_end_bars",
    "missing_end_sessions",
    "days_with_data",
    "gap_ns",
    "gaps",
    "largest_gap_ns",
    "sessions_without_data",
    "outside_sessions",
    "ingested",
    "already_stored",
    "quarantined_rows",
    "quarantined",
    "reconciled",
)


def health_csv(health: list[DatasetHealth], ticks: list[TickHealth]) -> str:
    """One row per data set: bars (coverage, suspensions, missing bars, and those missing at
    the end: after a series' last bar up to its end, ``lake.health.find_end_gap``) and trades / quotes
    (days, gaps, sessions without data, ingested); a column that does not apply is empty.
    ``quarantined`` is ``reason=count`` pairs joined by ``;``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in health:
        bars = item.dataset.startswith("bars/")  # corporate actions, funding rates: no gap check
        row: dict[str, object] = {
            "dataset": item.dataset,
            "instruments": item.instruments,
            "rows": item.rows,
            "first_ts_ns": item.first_ts_ns,
            "last_ts_ns": item.last_ts_ns,
            "coverage": f"{item.coverage:.6f}" if item.gaps.bars_expected else None,
            "suspension_sessions": item.gaps.suspension_sessions if bars else None,
            "missing_bars": item.gaps.missing_bars if bars else None,
            "missing_end_bars": item.gaps.missing_end_bars if bars else None,
            "missing_end_sessions": item.gaps.missing_end_sessions if bars else None,
            "quarantined_rows": item.quarantined_rows,
            "quarantined": ";".join(f"{r}={c}" for r, c in item.quarantined.items()),
        }
        writer.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    for tick in ticks:
        row = {c: getattr(tick, c) for c in CSV_COLUMNS if hasattr(tick, c) and c != "quarantined"}
        row["quarantined"] = ";".join(f"{r}={c}" for r, c in tick.quarantined.items())
        writer.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


# A file name wider than its column breaks after a path separator, "_", "-" or "."; a data set
# after "/" or "_"; a quarantine reason after "_"; a count never.
NAME_BREAKS = "/\\_-."
_HEALTH_ELSEWHERE = "tape health --json / --csv have every figure"
HEALTH_COLUMNS = (
    Column("data set", 9, wraps=True, breaks="/_"),
    Column("instr.", 5),
    Column("rows", 8),
    Column("coverage", 7),
    Column("suspension sessions", 4),
    Column("missing bars", 3),
    Column("missing at end", 3),
    Column("quarantined", 6, wraps=True, breaks="_"),
)


def print_health(health: list[DatasetHealth]) -> None:
    """Bars, fitted to the terminal (``print_fitted``): numbers are never cut; the data set
    and the quarantine reasons wrap between words and at underscores."""
    rows = []
    for item in health:
        reasons = ", ".join(f"{reason} {count}" for reason, count in item.quarantined.items())
        unchecked = (
            f" ({len(item.unchecked_instruments)} unchecked: no calendar)"
            if item.unchecked_instruments
            else ""
        )
        rows.append(
            (
                item.dataset + unchecked,
                f"{item.instruments:,}",
                f"{item.rows:,}",
                f"{item.coverage:.2%}" if item.gaps.bars_expected else "-",
                f"{item.gaps.suspension_sessions:,}" if item.dataset.startswith("bars/") else "-",
                f"{item.gaps.missing_bars:,}" if item.dataset.startswith("bars/") else "-",
                f"{item.gaps.missing_end_bars:,}" if item.dataset.startswith("bars/") else "-",
                reasons or "-",
            )
        )
    print_fitted("data health", HEALTH_COLUMNS, rows, elsewhere=_HEALTH_ELSEWHERE)


def format_span(ns: int) -> str:
    """A duration to the second (to the millisecond under a minute), zero parts left out:
    ``1h``, ``1h 45m 27s``, ``2d 3h``, ``0.622s``."""
    if ns < 60_000_000_000:
        return f"{ns / 1e9:.3f}s"
    seconds = ns // 1_000_000_000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = zip((days, hours, minutes, seconds), "dhms", strict=True)
    return " ".join(f"{value}{unit}" for value, unit in parts if value)


def _utc(ts_ns: int | None) -> str:
    import numpy as np

    return "-" if ts_ns is None else str(np.datetime64(ts_ns, "ns").astype("datetime64[s]")).replace("T", " ")


def tick_health_line(item: TickHealth) -> str:
    """One data set's tick health in a line (the cockpit's data tab)."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in item.quarantined.items()) or "none"
    unchecked = len(item.unchecked_instruments)
    unchecked_text = f" ({unchecked} without a calendar: sessions not checked)" if unchecked else ""
    added = "" if item.reconciled else " [does not add up: stored rows not all from the ingest reports]"
    already = f" + {item.already_stored:,} already stored" if item.already_stored else ""
    return (
        f"{item.dataset}: {plural(item.instruments, 'instrument')}, {plural(item.rows, 'row')}, "
        f"{_utc(item.first_ts_ns)} to "
        f"{_utc(item.last_ts_ns)} UTC, {item.days_with_data:,} instrument-days with data, "
        f"{item.gaps:,} gaps over {format_span(item.gap_ns)} (largest {format_span(item.largest_gap_ns)}), "
        f"{item.sessions_without_data:,} sessions without data{unchecked_text}; ingested {item.ingested:,} = "
        f"{item.rows:,} stored + {item.quarantined_rows:,} quarantined{already}: {reasons}{added}"
    )


def print_tick_health(ticks: list[TickHealth]) -> None:
    """Trades and quotes: a table fitted to the terminal (``print_fitted``: numbers are never
    cut, the data set and its span wrap between words), then the quarantine reasons per data
    set below it."""
    if not ticks:
        return
    gap = format_span(ticks[0].gap_ns)
    rows = []
    for item in ticks:
        unchecked = f" ({len(item.unchecked_instruments)} no calendar)" if item.unchecked_instruments else ""
        rows.append(
            (
                f"{item.dataset}{unchecked} {_utc(item.first_ts_ns)} to {_utc(item.last_ts_ns)}",
                f"{item.instruments:,}",
                f"{item.rows:,}",
                f"{item.days_with_data:,}",
                f"{item.gaps:,}",
                format_span(item.largest_gap_ns),
                f"{item.sessions_without_data:,}",
                f"{item.quarantined_rows:,}" + ("" if item.reconciled else " !"),
            )
        )
    columns = (
        Column("data set, span (UTC)", 9, wraps=True),
        Column("instr", 5),
        Column("rows", 8),
        Column("days", 4),
        Column(f">{gap}", 6),
        Column("max gap", 3),
        Column("empty", 2),
        Column("quar.", 7),
    )
    print_fitted("data health: trades and quotes", columns, rows, elsewhere=_HEALTH_ELSEWHERE)
    for item in ticks:
        reasons = ", ".join(f"{reason} {count}" for reason, count in item.quarantined.items()) or "none"
        added = "" if item.reconciled else " (does not add up: ! above)"
        already = f" + {item.already_stored:,} already stored" if item.already_stored else ""
        console.print(
            f"{item.dataset}: ingested {item.ingested:,} = {item.rows:,} stored + {item.quarantined_rows:,} "
            f"quarantined ({reasons}){already}{added}",
            highlight=False,
        )
    console.print(
        f"days: instrument-days with data; >{gap}: gaps between consecutive rows inside one session "
        f"(24x7: any) longer than {gap} (tape health --gap-minutes); empty: sessions without a row",
        highlight=False,
    )


INGEST_CSV_COLUMNS = ("source", "kind", "frequency", "symbols", "rows_in", "accepted", "quarantined",
                      "already_stored", "already_quarantined", "reasons", "snapped",
                      "suspension_sessions", "missing_bars", "first_ts_ns", "last_ts_ns")  # fmt: skip


def ingest_csv(report: IngestReport) -> str:
    """One row per file, its full path and every count (``rows_in = accepted + quarantined +
    already_stored``; ``already_quarantined`` of those already stored were rejections the lake's
    quarantine held): ``symbols`` joined by ``;``,
    ``reasons`` as ``reason=count`` pairs joined by ``;`` (as ``tape health --csv``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INGEST_CSV_COLUMNS)
    for file in report.files:
        row = {**asdict(file), "symbols": ";".join(file.symbols),
               "reasons": ";".join(f"{r}={c}" for r, c in file.reasons.items())}  # fmt: skip
        writer.writerow(["" if row[c] is None else row[c] for c in INGEST_CSV_COLUMNS])
    return buffer.getvalue()


INGEST_COLUMNS = (
    Column("file: kind, symbols", 9, wraps=True, breaks=NAME_BREAKS),
    Column("in", 8),
    Column("accepted", 7),
    Column("quarantined", 6),
    Column("reasons", 5, wraps=True, breaks="_"),
    Column("suspended sessions", 4),
    Column("missing bars", 3),
)
ALREADY_COLUMN = Column("already stored", 6)
"""Shown after "quarantined" when a file held rows the lake already had (a re-ingest)."""


def print_report(report: IngestReport) -> None:
    """One row a file: its name over its kind and symbols, the counts (in = accepted +
    quarantined, + already stored where the lake held some rows already), the reasons, and the
    health counts, fitted to the terminal (``print_fitted``): the name and the reasons wrap
    between words and at their break points, counts never. An ingest of nothing new says the
    lake is unchanged."""
    already = any(file.already_stored for file in report.files)
    rows = []
    for file in report.files:
        reasons = ", ".join(f"{reason} {count}" for reason, count in file.reasons.items())
        if file.snapped:
            snapped = f"(accepted: {file.snapped:,} prices snapped to the grid)"
            reasons = f"{reasons}, {snapped}" if reasons else snapped
        kind = file.kind + (f" {file.frequency}" if file.frequency else "")
        row = (
            f"{Path(file.source).name}\n{kind} {', '.join(file.symbols)}",
            f"{file.rows_in:,}",
            f"{file.accepted:,}",
            f"{file.quarantined:,}",
            *([f"{file.already_stored:,}"] if already else []),
            reasons or "-",
            f"{file.suspension_sessions:,}",
            f"{file.missing_bars:,}",
        )
        rows.append(row)
    columns = INGEST_COLUMNS[:4] + ((ALREADY_COLUMN,) if already else ()) + INGEST_COLUMNS[4:]
    title = f"ingest into {report.lake} (content hash {report.content_hash[:16]}...)"
    print_fitted(title, columns, rows, elsewhere="--json / --csv have every figure")
    line = f"in {report.rows_in:,} = accepted {report.accepted:,} + quarantined {report.quarantined:,}"
    if already:
        rejected = sum(file.already_quarantined for file in report.files)
        rejections = f" (of which {rejected:,} rejections already quarantined)" if rejected else ""
        line += f" + already stored {report.already_stored:,}{rejections}"
    console.print(line, highlight=False)
    if report.unchanged:
        console.print("nothing new: the lake is unchanged (no new version, the same content hash)")
