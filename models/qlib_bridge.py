"""The Qlib bridge: the lake's daily bars in Qlib's binary layout, and Qlib's predictions as a
content-hashed signal that a Tape strategy (``QlibSignalRanker``) trades.

Export (``export_qlib``; pyqlib ships no converter, and none is needed to write the format):

- ``calendars/day.txt``: the sessions, one ``YYYY-MM-DD`` a line (every day on which any
  exported instrument has a bar);
- ``instruments/all.txt``: ``SYMBOL<TAB>first day<TAB>last day``, one line per instrument;
- ``features/<symbol lower-case>/<field>.day.bin``: little-endian float32; element 0 is the
  index of the instrument's first day in the calendar, then one value per calendar day up to
  its last day (NaN where it has no bar: a suspension);
- ``tape_export.json``: what Qlib does not read and the import needs — the lake's content hash
  and each Qlib symbol's Tape instrument id, symbol and digits.

Fields: ``open high low close`` (prices as the lake stores them, in currency units),
``volume`` (in the instrument's quantity units: shares), ``amount`` (the bar's turnover in
currency units; NaN where the lake has none) and ``vwap`` (``amount / volume``; NaN where
either is missing or volume is 0). Nothing is adjusted or invented: no ``factor`` or ``change``
field is written. A-share symbols become Qlib's ``SH600000`` form; other symbols are upper-cased
and must be letters, digits and ``_``.

Import (``import_qlib_predictions``): a Qlib score frame — a pandas DataFrame indexed by
``(datetime, instrument)`` with a ``score`` column as ``pred.pkl`` holds it, or a CSV/parquet
file with ``datetime, instrument, score`` columns — becomes ``day, instrument_id, score`` rows
(mapped through the export's ``tape_export.json``), written to a parquet file whose content hash
(blake2b-128 over the sorted rows) names it. A score dated ``T`` was computed by Qlib from data
up to ``T``'s close; ``QlibSignalRanker`` decides with it at ``T``'s step and its orders fill at
a later bar, as Qlib's own backtest trades a day's prediction on the next day.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from domain.instruments import Instrument
from domain.market import Panel
from kernel.strategy import LoadedModel, MarketView
from lake.partitioned import Lake
from lake.schema import Kind
from models.portfolio import Portfolio, PortfolioSpec

__all__ = [
    "EXPORT_FILE",
    "QLIB_FIELDS",
    "QlibBridgeError",
    "QlibExport",
    "QlibSignalRanker",
    "export_qlib",
    "import_qlib_predictions",
    "qlib_symbol",
    "read_export",
    "read_feature_bin",
    "signal_content_hash",
]

QLIB_FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap")
EXPORT_FILE = "tape_export.json"
_FLOAT = np.dtype("<f4")


class QlibBridgeError(ValueError):
    """An export or import that cannot be done as asked (named in the message)."""


def qlib_symbol(symbol: str) -> str:
    """Qlib's instrument name for a Tape symbol: ``600000.SH`` -> ``SH600000``, ``orcl`` -> ``ORCL``."""
    match = re.fullmatch(r"(\d{6})\.(SH|SZ|BJ)", symbol)
    if match:
        return f"{match.group(2)}{match.group(1)}"
    if re.fullmatch(r"[A-Za-z0-9_]+", symbol):
        return symbol.upper()
    raise QlibBridgeError(
        f"symbol {symbol!r} has no Qlib name: Qlib's instrument names are letters, digits and _ "
        "(A-shares as SH600000)"
    )


@dataclass(frozen=True)
class QlibExport:
    root: Path
    lake_content_hash: str
    calendar: tuple[int, ...]  # YYYYMMDD
    instruments: dict[str, dict[str, Any]]  # Qlib symbol -> instrument_id, symbol, digits, first/last day


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _field_values(bars: pl.DataFrame, inst: Instrument) -> dict[str, npt.NDArray[np.float64]]:
    price = float(10**inst.price_digits)
    qty = float(10**inst.qty_digits)
    out = {
        name: bars.get_column(name).to_numpy().astype(np.float64) / price
        for name in ("open", "high", "low", "close")
    }
    out["volume"] = bars.get_column("volume").to_numpy().astype(np.float64) / qty
    amount = bars.get_column("turnover").cast(pl.Float64).fill_null(np.nan).to_numpy() / price
    out["amount"] = amount
    with np.errstate(divide="ignore", invalid="ignore"):
        out["vwap"] = np.where(out["volume"] > 0, amount / out["volume"], np.nan)
    return out


def export_qlib(
    lake: Lake,
    target: Path,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    instrument_ids: Sequence[int] | None = None,
) -> QlibExport:
    """Write the lake's daily bars under ``target`` in Qlib's layout (module docstring). An
    existing, non-empty ``target`` is refused; so is a lake whose files differ from its manifest."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise QlibBridgeError(f"{target} is not empty: export into a new folder")
    problems = lake.verify()
    if problems:
        raise QlibBridgeError(f"{lake.root}: refusing to export: {'; '.join(problems[:5])}")
    ids = list(instrument_ids) if instrument_ids is not None else None
    table = lake.read(Kind.BARS, "1d", instrument_ids=ids, start_ns=start_ns, end_ns=end_ns)
    bars = pl.from_arrow(table)
    assert isinstance(bars, pl.DataFrame)
    if bars.height == 0:
        raise QlibBridgeError(f"{lake.root}: no daily bars in the chosen range to export")
    bars = bars.sort(["instrument_id", "day"])
    days = np.unique(bars.get_column("day").to_numpy())
    by_id = {i.instrument_id: i for i in lake.instruments()}
    names = {
        iid: qlib_symbol(by_id[iid].symbol) for iid in sorted(set(bars.get_column("instrument_id").to_list()))
    }
    if len(set(names.values())) != len(names):
        raise QlibBridgeError(f"two instruments map to one Qlib name: {sorted(names.values())}")
    (target / "calendars").mkdir(parents=True)
    (target / "instruments").mkdir()
    (target / "calendars" / "day.txt").write_text("".join(f"{_iso(int(d))}\n" for d in days))
    lines, instruments = [], {}
    for iid, name in names.items():
        inst, rows = by_id[iid], bars.filter(pl.col("instrument_id") == iid)
        index = np.searchsorted(days, rows.get_column("day").to_numpy())
        first, last = int(index[0]), int(index[-1])
        folder = target / "features" / name.lower()
        folder.mkdir(parents=True)
        for field, values in _field_values(rows, inst).items():
            column = np.full(last - first + 1, np.nan)
            column[index - first] = values
            (folder / f"{field}.day.bin").write_bytes(np.hstack([[first], column]).astype(_FLOAT).tobytes())
        lines.append(f"{name}\t{_iso(int(days[first]))}\t{_iso(int(days[last]))}\n")
        instruments[name] = {"instrument_id": iid, "symbol": inst.symbol, "price_digits": inst.price_digits,
                             "qty_digits": inst.qty_digits, "first_day": int(days[first]),
                             "last_day": int(days[last])}  # fmt: skip
    (target / "instruments" / "all.txt").write_text("".join(lines))
    manifest = {
        "format": 1,
        "lake_content_hash": lake.content_hash,
        "frequency": "day",
        "fields": list(QLIB_FIELDS),
        "calendar_days": len(days),
        "instruments": instruments,
    }
    (target / EXPORT_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return QlibExport(target, lake.content_hash, tuple(int(d) for d in days), instruments)


def read_export(root: Path) -> QlibExport:
    """An export's calendar and instrument map (from ``tape_export.json``)."""
    root = Path(root)
    try:
        manifest = json.loads((root / EXPORT_FILE).read_text())
        calendar = (root / "calendars" / "day.txt").read_text().split()
    except FileNotFoundError as error:
        raise QlibBridgeError(f"{root} is not a Tape Qlib export: {error.filename} is missing") from None
    days = tuple(int(text.replace("-", "")) for text in calendar)
    return QlibExport(root, str(manifest["lake_content_hash"]), days, dict(manifest["instruments"]))


def read_feature_bin(path: Path) -> tuple[int, npt.NDArray[np.float32]]:
    """A ``.day.bin`` file: its start index into the calendar and its values (float32)."""
    data = np.fromfile(path, dtype=_FLOAT)
    if data.size == 0:
        raise QlibBridgeError(f"{path} is empty: a Qlib feature file starts with its calendar index")
    return int(data[0]), data[1:]


def _score_frame(source: Any) -> pl.DataFrame:
    """``datetime, instrument, score`` from a pandas frame (Qlib's pred.pkl), a CSV or a parquet file."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix == ".csv":
            frame = pl.read_csv(path, try_parse_dates=True)
        elif path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif path.suffix == ".pkl":
            import pandas as pd

            return _score_frame(pd.read_pickle(path))
        else:
            raise QlibBridgeError(f"{path}: predictions must be .csv, .parquet or a pandas .pkl")
    else:
        if hasattr(source, "to_frame") and not hasattr(source, "columns"):  # a pandas Series of scores
            source = source.rename("score").to_frame()
        pandas_frame = source.reset_index() if "datetime" not in getattr(source, "columns", ()) else source
        frame = pl.from_pandas(pandas_frame)
    missing = {"datetime", "instrument", "score"} - set(frame.columns)
    if missing:
        raise QlibBridgeError(
            f"predictions lack the column(s) {sorted(missing)}: want datetime, instrument, score"
        )
    return frame.select("datetime", "instrument", "score")


_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d")


def _checked_scores(frame: pl.DataFrame) -> pl.DataFrame:
    """``datetime`` as dates or times, ``score`` as float64, nothing empty: a value that is not
    one (a CSV's ``2010-13-04`` or ``abc``) or an empty cell is a ``QlibBridgeError`` naming the
    first such row (1 = the first prediction), not Polars' cast error; an empty score is not
    taken as a score."""
    for name in ("datetime", "instrument", "score"):
        empty = frame.get_column(name).is_null()
        if empty.any():
            row = int(empty.arg_true()[0]) + 1
            raise QlibBridgeError(f"prediction {row} has no {name} ({int(empty.sum())} rows lack one)")
    for name, what in (("datetime", "a date (YYYY-MM-DD)"), ("score", "a number")):
        column = frame.get_column(name)
        if column.dtype.is_temporal() if name == "datetime" else column.dtype.is_numeric():
            continue
        text = column.cast(pl.String)
        if name == "datetime":
            tries = [text.str.to_datetime(form, strict=False) for form in _DATE_FORMATS]
            parsed = pl.select(pl.coalesce(tries)).to_series()
        else:
            parsed = text.cast(pl.Float64, strict=False)
        bad = parsed.is_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise QlibBridgeError(
                f"prediction {row + 1}'s {name} {text[row]!r} is not {what} ({int(bad.sum())} rows like it)"
            )
        frame = frame.with_columns(parsed.alias(name))
    return frame


def _refuse_non_finite_and_duplicates(frame: pl.DataFrame) -> None:
    """A score that is NaN or infinite, or two scores for one day and instrument, is a
    ``QlibBridgeError`` naming the first such prediction (1 = the first) and how many there
    are; it named none once."""
    score = frame.get_column("score").cast(pl.Float64)
    bad = ~score.is_finite()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise QlibBridgeError(
            f"prediction {row + 1}'s score {score[row]} is not a finite number ({int(bad.sum())} rows "
            "like it); drop those rows in Qlib first"
        )
    keys = frame.select(pl.col("datetime").cast(pl.Date).alias("day"), pl.col("instrument").cast(pl.String))
    twice = keys.select(pl.struct("day", "instrument").is_duplicated()).to_series()
    if twice.any():
        rows = twice.arg_true()
        day, instrument = keys.row(int(rows[0]))
        same = [int(r) + 1 for r in rows if keys.row(int(r)) == (day, instrument)]
        raise QlibBridgeError(
            f"predictions hold more than one score for one (datetime, instrument): predictions "
            f"{same[0]} and {same[1]} are both {day} {instrument} ({len(rows)} rows share a day and name)"
        )


def signal_content_hash(signal: pl.DataFrame) -> str:
    """blake2b-128 over the sorted ``day, instrument_id, score`` columns (names, dtypes, values)."""
    digest = hashlib.blake2b(digest_size=16)
    ordered = signal.sort(["day", "instrument_id"])
    for name, dtype in (("day", "<i4"), ("instrument_id", "<i8"), ("score", "<f8")):
        digest.update(f"{name}:{dtype}\0".encode())
        digest.update(np.ascontiguousarray(ordered.get_column(name).to_numpy(), dtype=dtype).tobytes())
    return digest.hexdigest()


def import_qlib_predictions(source: Any, export_root: Path, target: Path) -> str:
    """Qlib's scores as a Tape signal at ``target`` (parquet: ``day, instrument_id, score``);
    returns the signal's content hash. An empty cell, a date or score that is not one, an
    instrument the export does not know, a duplicate (datetime, instrument) or a score that is
    not finite is refused."""
    export = read_export(export_root)
    frame = _checked_scores(_score_frame(source))
    _refuse_non_finite_and_duplicates(frame)
    ids = {name: int(info["instrument_id"]) for name, info in export.instruments.items()}
    unknown = sorted(set(frame.get_column("instrument").cast(pl.String).to_list()) - set(ids))
    if unknown:
        raise QlibBridgeError(
            f"predictions name instruments the export {export_root} does not hold: {unknown[:5]}"
        )
    day = pl.col("datetime").cast(pl.Date).dt.strftime("%Y%m%d").cast(pl.Int32)
    signal = frame.select(
        day.alias("day"),
        pl.col("instrument")
        .cast(pl.String)
        .replace_strict(ids, return_dtype=pl.Int64)
        .alias("instrument_id"),
        pl.col("score").cast(pl.Float64),
    ).sort(["day", "instrument_id"])
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    signal.write_parquet(target)
    return signal_content_hash(signal)


class QlibSignalRanker:
    """Trade a Qlib score signal: at each ``every``-th step that has scores (from ``start_day``),
    turn that step's scores into weights with ``models.portfolio`` — by default (``portfolio =
    "topk"``) the ``top_k`` valid names with the highest scores, equally weighted at ``weight``;
    ``topk_dropout`` (with ``n_drop``) and ``score_weighted`` (``cap``, ``long_short``,
    ``demean``) as that module describes.

    ``signal`` names the parquet file ``import_qlib_predictions`` wrote and ``signal_hash`` its
    content hash: other contents are refused when the strategy is built (so also on replay), and
    the kernel journals the signal as a ``model.loaded`` record (kind ``qlib_signal``)."""

    def __init__(
        self,
        *,
        signal: str,
        signal_hash: str,
        top_k: int = 2,
        weight: float = 0.95,
        every: int = 1,
        start_day: int = 0,
        strategy_id: str = "qlib_signal",
        portfolio: str = "topk",
        n_drop: int = 1,
        cap: float = 1.0,
        long_short: bool = False,
        demean: bool = True,
        resize_held: bool = False,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.spec = PortfolioSpec(portfolio, top_k, n_drop, weight, cap, long_short, demean, resize_held)
        self.portfolio = Portfolio(self.spec)
        self.strategy_id, self.top_k, self.weight = strategy_id, top_k, weight
        self.every, self.start_day = every, start_day
        try:
            self.signal = pl.read_parquet(signal)
        except (OSError, pl.exceptions.ComputeError) as error:
            raise QlibBridgeError(f"cannot read the Qlib signal {signal}: {error}") from None
        actual = signal_content_hash(self.signal)
        if actual != signal_hash:
            raise QlibBridgeError(
                f"the Qlib signal {signal} hashes to {actual}, not {signal_hash}: its contents changed"
            )
        self.digest = signal_hash
        self.scores = np.zeros((0, 0))

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
        self.scores = np.full((panel.steps, ids.size), np.nan)
        days = self.signal.get_column("day").to_numpy()
        sig_ids = self.signal.get_column("instrument_id").to_numpy()
        last_step_of_day = np.searchsorted(panel.day, days, side="right") - 1
        known_day = (last_step_of_day >= 0) & (panel.day[np.clip(last_step_of_day, 0, None)] == days)
        order = np.argsort(ids)
        position = np.searchsorted(ids[order], sig_ids)
        known_id = (position < ids.size) & (ids[order][np.clip(position, 0, ids.size - 1)] == sig_ids)
        keep = known_day & known_id
        columns = order[np.clip(position, 0, ids.size - 1)]
        self.scores[last_step_of_day[keep], columns[keep]] = self.signal.get_column("score").to_numpy()[keep]
        scored = np.flatnonzero(np.isfinite(self.scores).any(axis=1) & (panel.day >= self.start_day))
        steps = scored[:: self.every].astype(np.int64)
        self.portfolio.prepare(self.scores, panel.valid, steps, ids)
        return steps

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return self.portfolio.weights(view.step, self.scores[view.step], view.valid())

    def loaded_models(self) -> list[LoadedModel]:
        from models.ml.strategy import predictions_hash

        return [
            LoadedModel(
                self.digest, "qlib_signal", predictions_hash(self.scores), int(np.isfinite(self.scores).sum())
            )
        ]
