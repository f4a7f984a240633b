"""``tape qlib export|import``: the lake in Qlib's binary layout, and Qlib's predictions back as
a content-hashed signal that ``models.qlib_bridge:QlibSignalRanker`` trades.

    tape qlib export LAKE OUT [--start D] [--end D] [--symbols A,B]
    qrun alpha158_lightgbm.yaml          # in an environment with the qlib extra (docs/models.md)
    tape qlib import PRED.pkl|MLRUNS_DIR --export OUT --signal SIGNAL.parquet [--json PATH]

Neither verb imports pyqlib: the export writes the format directly, the import reads Qlib's
``pred.pkl`` (a pandas pickle: import only predictions you made — unpickling runs code) or a
CSV/parquet of ``datetime, instrument, score``.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from cli.arguments import output_file
from cli.progress import console, not_stdout, one_stdout, results_on_stderr, write_output
from cli.wiring import ConfigError
from lake.partitioned import Lake
from models.qlib_bridge import QlibBridgeError, export_qlib, import_qlib_predictions, read_export

__all__ = ["add_qlib_parser", "cmd_qlib"]


def _ns(day: str | None, *, end: bool = False) -> int | None:
    if day is None:
        return None
    try:
        stamp = datetime.fromisoformat(day).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{day!r} is not a date YYYY-MM-DD") from None
    ns = int(stamp.timestamp()) * 1_000_000_000
    return ns + 86_400 * 1_000_000_000 - 1 if end else ns  # --end includes its whole day


def _export(args: argparse.Namespace) -> int:
    to_stdout = one_stdout(json=args.json)
    lake = Lake(Path(args.lake))
    if not lake.content_hash:
        raise ConfigError(f"no lake at {args.lake} (no manifest)")
    ids = None
    if args.symbols:
        by_symbol = {i.symbol: i.instrument_id for i in lake.instruments()}
        wanted = [s.strip() for s in args.symbols.split(",") if s.strip()]
        missing = [s for s in wanted if s not in by_symbol]
        if missing:
            raise ConfigError(f"{args.lake}: no instrument(s) {missing} in the lake")
        ids = [by_symbol[s] for s in wanted]
    try:
        export = export_qlib(lake, Path(args.out), start_ns=_ns(args.start), end_ns=_ns(args.end, end=True),
                             instrument_ids=ids)  # fmt: skip
    except QlibBridgeError as error:
        raise ConfigError(str(error)) from None
    first, last = export.calendar[0], export.calendar[-1]
    sessions = f"{len(export.calendar)} sessions {first}..{last}"
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        console.print(
            f"wrote Qlib data {args.out}: {len(export.instruments)} instruments, {sessions} "
            f"(lake {export.lake_content_hash[:16]}...); qlib.init(provider_uri=...) reads it",
            soft_wrap=True,
            highlight=False,
        )
    if args.json:
        report = {
            "qlib_data": str(Path(args.out).resolve()),
            "lake_content_hash": export.lake_content_hash,
            "sessions": len(export.calendar),
            "first_day": first,
            "last_day": last,
            "instruments": export.instruments,
        }
        _write_json(args.json, report)
    return 0


def _write_json(path: str, report: dict[str, object]) -> None:
    write_output(path, json.dumps(report, indent=1) + "\n", option="--json")
    if path != "-":
        console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)


def _prediction_file(source: Path) -> Path:
    """``source`` itself, or the one ``pred.pkl`` under a folder (an MLflow artifact store)."""
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"no predictions at {source}")
    found = sorted(source.rglob("pred.pkl"))
    if len(found) != 1:
        raise ConfigError(
            f"{source}: {len(found)} pred.pkl files under it (want exactly one; name the file): "
            f"{[str(p) for p in found[:5]]}"
        )
    return found[0]


def _import(args: argparse.Namespace) -> int:
    not_stdout(args.signal, option="--signal", holds="the parquet file the strategy reads by its path")
    to_stdout = one_stdout(json=args.json)
    source = _prediction_file(Path(args.predictions))
    try:
        digest = import_qlib_predictions(source, Path(args.export), Path(args.signal))
        export = read_export(Path(args.export))
    except QlibBridgeError as error:
        raise ConfigError(str(error)) from None
    signal = pl.read_parquet(args.signal)
    days = signal.get_column("day")
    report = {
        "predictions": str(source),
        "signal": str(Path(args.signal).resolve()),
        "signal_hash": digest,
        "rows": signal.height,
        "instruments": signal.get_column("instrument_id").n_unique(),
        "first_day": int(days.min()),  # type: ignore[arg-type]
        "last_day": int(days.max()),  # type: ignore[arg-type]
        "lake_content_hash": export.lake_content_hash,
    }
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        console.print(
            f"signal {report['signal']}: {report['rows']:,} scores, {report['instruments']} instruments, "
            f"{report['first_day']}..{report['last_day']}, content hash {digest}",
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            f'trade it: [strategy] entry = "models.qlib_bridge:QlibSignalRanker", params = {{ signal = '
            f'"{report["signal"]}", signal_hash = "{digest}", top_k = 2 }}',
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    if args.json:
        _write_json(args.json, report)
    return 0


def cmd_qlib(args: argparse.Namespace) -> int:
    return _export(args) if args.qlib_verb == "export" else _import(args)


def add_qlib_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "qlib", help="export the lake to Qlib's binary layout; import Qlib's predictions"
    )
    sub = parser.add_subparsers(dest="qlib_verb", required=True)
    export = sub.add_parser("export", help="write the lake's daily bars in Qlib's layout")
    export.add_argument("lake", help="lake root")
    export.add_argument("out", help="Qlib data folder to write (new or empty)")
    export.add_argument("--start", help="first UTC date, YYYY-MM-DD (inclusive)")
    export.add_argument("--end", help="last UTC date, YYYY-MM-DD (inclusive)")
    export.add_argument("--symbols", help="comma-separated symbols (default: every instrument)")
    export.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write the folder, the lake's hash, the sessions and every instrument "
                        "as JSON (alone or '-': stdout)")  # fmt: skip
    imp = sub.add_parser("import", help="Qlib's predictions (pred.pkl) as a Tape signal")
    imp.add_argument("predictions", help="pred.pkl, a CSV/parquet of datetime,instrument,score, or a folder")
    imp.add_argument("--export", required=True, help="the folder tape qlib export wrote")
    imp.add_argument(
        "--signal", type=output_file, metavar="PATH", required=True, help="signal parquet file to write"
    )
    imp.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                     help="write the summary as JSON (alone or '-': stdout)")  # fmt: skip
