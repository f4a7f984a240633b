"""``tape ingest KIND PATH... --out LAKE``: files into the lake, with a report per file.

Wired into ``cli.main`` with ``add_ingest_parser(verbs)`` and ``VERBS["ingest"] = cmd_ingest``;
``tape health LAKE`` with ``add_health_parser(verbs)`` and ``VERBS["health"] = cmd_health``.
Exit status: 0 when every file was ingested (rows may be quarantined; the report says which
and why), 2 when a file cannot be parsed at all (the lake is left unchanged).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cli.progress import console, progress_bar
from lake.health import DatasetHealth, dataset_health
from lake.ingest import IngestReport, ingest
from lake.metadata import MetadataError, MetadataReport, apply_metadata
from lake.partitioned import Lake, LakeError
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
    "add_ingest_parser",
    "cmd_export",
    "cmd_health",
    "cmd_ingest",
    "print_health",
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
    parser.add_argument("--symbol", help="symbol (default: from the file name)")
    parser.add_argument("--venue", help="venue (yahoo: XNYS, freqtrade/nautilus: binance, kraken: kraken)")
    parser.add_argument("--calendar", help="exchange_calendars code or 24x7 (yahoo: XNYS)")
    parser.add_argument("--currency", default=None, help="quote currency (yahoo/csv: USD)")
    parser.add_argument("--price-digits", type=int, help="price precision (default: inferred)")
    parser.add_argument(
        "--qty-digits",
        type=int,
        default=None,
        help="volume/size precision (trades, quotes: inferred; kraken: 8)",
    )
    parser.add_argument("--frequency", default="1d", help="bar frequency for csv (1m, 5m, ..., 1d)")
    parser.add_argument("--map", dest="column_map", help="csv: ts=COL,open=COL,...,volume=COL[,turnover=COL]")
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
        return lambda path: parse_yahoo(
            path,
            symbol=args.symbol,
            venue=args.venue or "XNYS",
            calendar=args.calendar or "XNYS",
            currency=args.currency or "USD",
            price_digits=args.price_digits,
        )
    if kind in _TICK_PARSERS:
        return _tick_parser(args)
    if kind == "hikyuu-day":
        return lambda path: parse_hikyuu_day(path, price_digits=args.price_digits)
    if kind == "hikyuu-minute":
        return lambda path: parse_hikyuu_minute(path, price_digits=args.price_digits or 2)
    if kind == "hikyuu-actions":
        return parse_hikyuu_actions
    if kind == "freqtrade":
        qty = 8 if args.qty_digits is None else args.qty_digits
        return lambda path: parse_freqtrade(
            path, venue=args.venue or "binance", price_digits=args.price_digits, qty_digits=qty
        )
    return _csv_parser(args)


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
    """``tape ingest metadata FILE... --out LAKE``: each file validated whole, then stored."""
    for path in args.paths:
        try:
            report = apply_metadata(Path(args.out), Path(path))
        except MetadataError as error:
            console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
            console.print("[red]the lake is unchanged by this file[/]")
            return 2
        print_metadata(report)
    return 0


def print_metadata(report: MetadataReport) -> None:
    table = Table(title=f"metadata {Path(report.source).name} -> {report.lake}")
    table.add_column("instrument")
    table.add_column("changes", overflow="fold")
    for name, changes in sorted(report.changed.items()):
        delisted = f"; delisting {report.delisting[name]}" if name in report.delisting else ""
        table.add_row(name, "; ".join(changes) + delisted)
    for name in report.unchanged:
        table.add_row(name, "unchanged")
    console.print(table)
    console.print(
        f"rows {report.rows_in:,} = changed {len(report.changed):,} + unchanged {len(report.unchanged):,}; "
        f"content hash {report.content_hash[:16]}..."
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.kind == "metadata":
        return _ingest_metadata(args)
    paths = [Path(p) for p in args.paths]
    try:
        parser = _parser_for(args)
        with progress_bar(f"ingest {args.kind} -> {args.out}", len(paths)) as update:
            done = [0]

            def advance(_source: str, _rows: int) -> None:
                done[0] += 1
                update(done[0])

            report = ingest(Path(args.out), paths, parser, progress=advance)
    except (IngestError, LakeError) as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        console.print("[red]the lake is unchanged[/]")
        return 2
    print_report(report)
    print_health(dataset_health(Lake(Path(args.out))))
    return 0


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "export", help="write a backtest data set (content-hashed) from a lake's bars"
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("out", help="data set folder to write")
    parser.add_argument("--frequency", default="1d", help="bar frequency in the lake (1d, 1m, ...)")
    parser.add_argument("--calendar", required=True, help="the data set's calendar (XSHG, XNYS, 24x7)")
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
        )
    except LakeError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return 2
    console.print(
        f"wrote {ref.uri} ({ref.frequency}, calendar {ref.calendar}, content hash {ref.content_hash[:16]}...)"
    )
    return 0


def add_health_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "health", help="data-health summary of a lake (coverage, gaps, quarantine)"
    )
    parser.add_argument("lake", help="lake root")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def cmd_health(args: argparse.Namespace) -> int:
    root = Path(args.lake)
    if not (root / "lake.json").exists():
        console.print(f"[red]error:[/] {escape(str(root))} is not a lake (no lake.json)", highlight=False)
        return 2
    health = dataset_health(Lake(root))
    if args.json:
        import json

        console.print_json(json.dumps([h.to_dict() for h in health], default=list))
    else:
        print_health(health)
    return 0


def print_health(health: list[DatasetHealth]) -> None:
    table = Table(title="data health")
    columns = (
        "data set",
        "instruments",
        "rows",
        "coverage",
        "suspension sessions",
        "missing bars",
        "quarantined",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("data set", "quarantined") else "right")
    for item in health:
        reasons = ", ".join(f"{reason} {count}" for reason, count in item.quarantined.items())
        unchecked = (
            f" ({len(item.unchecked_instruments)} unchecked: no calendar)"
            if item.unchecked_instruments
            else ""
        )
        table.add_row(
            item.dataset + unchecked,
            f"{item.instruments:,}",
            f"{item.rows:,}",
            f"{item.coverage:.2%}" if item.gaps.bars_expected else "-",
            f"{item.gaps.suspension_sessions:,}",
            f"{item.gaps.missing_bars:,}",
            reasons or "-",
        )
    console.print(table)


def print_report(report: IngestReport) -> None:
    table = Table(title=f"ingest into {report.lake} (content hash {report.content_hash[:16]}...)")
    numbers = ("in", "accepted", "quarantined", "suspensions", "missing bars")
    for column in ("file", "kind", "symbols", *numbers[:3], "reasons", *numbers[3:]):
        table.add_column(column, justify="right" if column in numbers else "left")
    for file in report.files:
        reasons = ", ".join(f"{reason} {count}" for reason, count in file.reasons.items())
        if file.snapped:
            snapped = f"(accepted: {file.snapped:,} prices snapped to the grid)"
            reasons = f"{reasons}, {snapped}" if reasons else snapped
        table.add_row(
            Path(file.source).name,
            file.kind + (f" {file.frequency}" if file.frequency else ""),
            ", ".join(file.symbols),
            f"{file.rows_in:,}",
            f"{file.accepted:,}",
            f"{file.quarantined:,}",
            reasons or "-",
            f"{file.suspension_sessions:,}",
            f"{file.missing_bars:,}",
        )
    console.print(table)
    console.print(
        f"in {report.rows_in:,} = accepted {report.accepted:,} + quarantined {report.quarantined:,}"
    )
