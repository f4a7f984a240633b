"""The partitioned lake: a hive tree of Parquet files, an instrument master and a manifest.

Layout (chosen from ``bench/bench_lake.py``; see ``docs/data_contracts/lake.md``)::

    LAKE/lake.json                                   manifest: every file's blake2b, content_hash
    LAKE/instruments.parquet                         the instrument master
    LAKE/bars/freq=1d/year=2014/part-0.parquet       daily: all instruments of a year, sorted (ts, id)
    LAKE/bars/freq=1m/instrument_id=7/year=2019/part-0.parquet   intraday: one symbol-year, sorted ts
    LAKE/trades/instrument_id=7/year=2019/part-0.parquet
    LAKE/quotes/instrument_id=7/year=2019/part-0.parquet
    LAKE/funding_rates/instrument_id=7/part-0.parquet
    LAKE/corporate_actions/part-0.parquet
    LAKE/quarantine/part-<n>.parquet                 rejected rows with their reasons, one file per ingest

Daily bars are small per symbol (252 rows a year), so one file per symbol (let alone per
symbol-day) is the small-files anti-pattern: a year file holding the whole universe, sorted
by time with row groups of ``DAILY_ROW_GROUP`` rows, serves the cross-section with one row
group and the one-symbol history with one column scan per year. Intraday bars are large per
symbol (98k to 525k rows a year), so they are partitioned by symbol and year.

Commits are staged: every new file is written under ``LAKE/.staging`` first, then moved into
place with ``os.replace`` and the manifest replaced last. A failed ingest writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from numbers import Integral
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from domain.fixed import Rounding, rescale
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import CalendarNotCovered, HolidayYears
from lake.adjust import dataset_actions
from lake.fx_rates import FxFileError, read_fx_rows
from lake.health import calendar_for, declared_calendars, venue_calendar
from lake.holidays import HolidayFileError, read_holidays
from lake.margins import MarginFileError, read_margin_rows
from lake.schema import INSTRUMENTS, MARK_SUFFIX, QUARANTINE, SCHEMAS, Kind, conform, frequency_ns
from lake.sessions import DAY_NS, known_calendar, outside_sessions, yyyymmdd
from lake.settlements import SettlementFileError, read_settlement_rows
from lake.store import (
    DatasetError,
    DatasetRef,
    actions_table,
    delistings_table,
    fx_table,
    margins_table,
    pivot_bars,
    settlements_table,
    write_dataset,
)

__all__ = ["DAILY_ROW_GROUP", "Lake", "LakeError", "partition_paths"]

IntArray = npt.NDArray[np.int64]
DAILY_ROW_GROUP = 16_384
INTRADAY_ROW_GROUP = 1 << 17
COMPRESSION = "lz4"
_NO_DICTIONARY = frozenset({"ts_ns", "volume", "turnover", "trade_id", "qty", "bid_qty", "ask_qty"})
"""Near-unique columns: dictionary encoding only costs time there (it falls back to plain after
filling a page); prices, ids and days repeat and keep it (measured: 1M 1m bars write in
150 ms instead of 270 ms, same file size)."""
# Funding times go to the data set at the nearest whole second (``Lake._dataset_funding``).
FUNDING_SNAP_NS = 1_000_000_000
_MANIFEST = "lake.json"
_STAGING = ".staging"


class LakeError(DatasetError):
    """A lake that is missing, inconsistent with its manifest, or asked for the impossible."""


def _years(ts_ns: IntArray) -> IntArray:
    """Calendar year (UTC) of the instant just before each bar close."""
    return yyyymmdd(np.floor_divide(np.asarray(ts_ns, dtype=np.int64) - 1, DAY_NS)) // 10_000


def partition_paths(kind: Kind, table: pa.Table, frequency: str | None = None) -> dict[str, pa.Table]:
    """Split a contract table into its partition files (relative path -> rows)."""
    if kind is Kind.BARS:
        assert frequency is not None, "bars need a frequency"
        frequency_ns(frequency)
        if frequency == "1d":
            return _split(table, f"bars/freq={frequency}", by_instrument=False, by_year=True)
        return _split(table, f"bars/freq={frequency}", by_instrument=True, by_year=True)
    if kind in (Kind.TRADES, Kind.QUOTES):
        return _split(table, str(kind), by_instrument=True, by_year=True)
    if kind is Kind.FUNDING_RATES:
        return _split(table, str(kind), by_instrument=True, by_year=False)
    if kind is Kind.CORPORATE_ACTIONS:
        return {f"{kind}/part-0.parquet": table}
    raise LakeError(f"no partitioning for {kind}")


def _split(table: pa.Table, prefix: str, *, by_instrument: bool, by_year: bool) -> dict[str, pa.Table]:
    if table.num_rows == 0:
        return {}
    instrument = table.column("instrument_id").to_numpy().astype(np.int64) if by_instrument else 0
    year = _years(table.column("ts_ns").to_numpy()) if by_year else 0
    key = np.asarray(instrument * 100_000 + year, dtype=np.int64)
    key = np.broadcast_to(key, (table.num_rows,))
    ordered = bool(np.all(key[1:] >= key[:-1]))
    order = np.arange(len(key)) if ordered else np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    stops = np.r_[starts[1:], len(key)]
    names = (["instrument_id"] if by_instrument else []) + (["year"] if by_year else [])
    parts = {}
    for begin, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        value = int(sorted_key[begin])
        values = ([value // 100_000] if by_instrument else []) + ([value % 100_000] if by_year else [])
        folder = "/".join(f"{name}={part}" for name, part in zip(names, values, strict=True))
        rows = table.slice(begin, stop - begin) if ordered else table.take(pa.array(order[begin:stop]))
        parts[f"{prefix}/{folder}/part-0.parquet"] = rows
    return parts


def _sort_keys(kind: Kind) -> list[tuple[str, str]]:
    if kind is Kind.CORPORATE_ACTIONS:
        return [("instrument_id", "ascending"), ("ex_date", "ascending")]
    return [("ts_ns", "ascending"), ("instrument_id", "ascending")]


def _unique_keys(kind: Kind) -> list[str]:
    if kind is Kind.CORPORATE_ACTIONS:
        return ["instrument_id", "ex_date"]
    if kind is Kind.TRADES:
        return ["instrument_id", "ts_ns", "trade_id"]
    return ["instrument_id", "ts_ns"]


def _is_sorted(rows: pa.Table, keys: list[tuple[str, str]]) -> bool:
    """Is ``rows`` already in (ascending) ``keys`` order? (Lexicographic, vectorised.)"""
    if rows.num_rows < 2:
        return True
    undecided = np.ones(rows.num_rows - 1, dtype=np.bool_)
    for name, _ in keys:
        values = rows.column(name).to_numpy(zero_copy_only=False)
        if bool(np.any(undecided & (values[1:] < values[:-1]))):
            return False
        undecided &= values[1:] == values[:-1]
        if not undecided.any():
            return True
    return True


def _has_adjacent_duplicates(rows: pa.Table, keys: list[str]) -> bool:
    """In a table sorted so that equal keys are adjacent: is any key repeated?"""
    if rows.num_rows < 2:
        return False
    same = np.ones(rows.num_rows - 1, dtype=np.bool_)
    for name in keys:
        values = rows.column(name).to_numpy(zero_copy_only=False)
        same &= values[1:] == values[:-1]
    return bool(same.any())


def _file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Lake:
    """A lake rooted at ``root``. Readers verify nothing by default (speed); ``verify`` and
    ``export`` check every file against the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---- manifest and identity -------------------------------------------------------------

    def manifest(self) -> dict[str, object]:
        file = self.root / _MANIFEST
        if not file.exists():
            return {"version": 0, "files": {}, "content_hash": ""}
        manifest: dict[str, object] = json.loads(file.read_text())
        return manifest

    @property
    def files(self) -> dict[str, str]:
        return dict(self.manifest()["files"])  # type: ignore[call-overload]

    @property
    def content_hash(self) -> str:
        return str(self.manifest()["content_hash"])

    def verify(self) -> list[str]:
        """Files whose bytes differ from the manifest (empty = the lake is its manifest)."""
        problems = []
        for relpath, digest in sorted(self.files.items()):
            path = self.root / relpath
            if not path.exists():
                problems.append(f"{relpath}: missing")
            elif _file_hash(path) != digest:
                problems.append(f"{relpath}: content differs from the manifest")
        return problems

    # ---- instruments -------------------------------------------------------------------------

    def instruments(self) -> list[Instrument]:
        path = self.root / "instruments.parquet"
        if not path.exists():
            return []
        return [msgspec.convert(row, Instrument) for row in pq.read_table(path).to_pylist()]

    def resolve(
        self,
        template: Instrument,
        known: list[Instrument],
        *,
        prices: bool = True,
        staged_prices: frozenset[int] | set[int] = frozenset(),
    ) -> tuple[Instrument, list[Instrument]]:
        """The stored instrument with ``template``'s (venue, symbol), or ``template`` under a new
        id appended to ``known``. New data finer than the stored precision is an error (rows on
        a coarser grid are fine: they are exact at the stored precision).

        ``prices``: the new data holds prices at ``template.price_digits`` (bars, trades, quotes,
        rights prices); funding rates hold none (``rate_e8`` has its own scale), so they neither
        need nor decide the digits. An instrument that holds no prices yet (in the lake, or among
        ``staged_prices``: the ids an ingest in progress has staged prices for) takes the
        digits (and tick) of the first data that does: an instrument made by its funding rates
        had the rates' 8 digits, which its bars then inherited or were refused against."""
        for index, instrument in enumerate(known):
            if (instrument.venue, instrument.symbol) == (template.venue, template.symbol):
                if not prices or template.price_digits == instrument.price_digits:
                    return instrument, known
                unpriced = instrument.instrument_id not in staged_prices and not self.holds_prices(
                    instrument.instrument_id
                )
                if unpriced:
                    adopted = msgspec.structs.replace(
                        instrument, price_digits=template.price_digits, tick_raw=template.tick_raw
                    )
                    return adopted, [*known[:index], adopted, *known[index + 1 :]]
                if template.price_digits > instrument.price_digits:
                    name = f"{template.venue}:{template.symbol}"
                    if instrument.instrument_id in staged_prices and not self.holds_prices(
                        instrument.instrument_id
                    ):  # an earlier file of this ingest, not the lake, decided the digits
                        raise LakeError(
                            f"{name}: an earlier file of this ingest holds it at price_digits "
                            f"{instrument.price_digits}, this one needs {template.price_digits} "
                            "(ingest the finer file first, or on its own before the others)"
                        )
                    raise LakeError(
                        f"{name} is stored at price_digits {instrument.price_digits}, "
                        f"the new data needs {template.price_digits}"
                    )
                return instrument, known
        next_id = max((instrument.instrument_id for instrument in known), default=0) + 1
        fresh = msgspec.structs.replace(template, instrument_id=next_id)
        return fresh, [*known, fresh]

    def holds_prices(self, instrument_id: int) -> bool:
        """Does the lake hold any row priced at the instrument's digits (bars, trades, quotes,
        corporate actions: their rights price) of ``instrument_id``?"""
        token = f"/instrument_id={instrument_id}/"
        for relpath in sorted(self.files):
            if not relpath.startswith(("bars/", "trades/", "quotes/", "corporate_actions/")):
                continue
            if token in relpath:
                return True
            if "/instrument_id=" not in relpath:  # daily bars and actions: every instrument in a file
                ids = pq.read_table(self.root / relpath, columns=["instrument_id"]).column(0)
                if pc.any(pc.equal(ids, instrument_id)).as_py():
                    return True
        return False

    # ---- writing -----------------------------------------------------------------------------

    def commit(
        self,
        changes: Iterable[tuple[Kind, str | None, pa.Table]],
        *,
        instruments: list[Instrument] | None = None,
        quarantine: pa.Table | None = None,
    ) -> str:
        """Merge each (kind, frequency, rows) into its partitions, stage, then move into place.
        Rows whose unique key is already stored are not merged (the caller quarantines them
        beforehand with ``stored_keys``). Returns the new content hash."""
        staging = self.root / _STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            written = self._stage(changes, staging, instruments, quarantine)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._publish(written, staging)

    def _stage(
        self,
        changes: Iterable[tuple[Kind, str | None, pa.Table]],
        staging: Path,
        instruments: list[Instrument] | None,
        quarantine: pa.Table | None,
    ) -> dict[str, Path]:
        written: dict[str, Path] = {}
        for kind, frequency, table in changes:
            for relpath, rows in partition_paths(kind, conform(table, kind), frequency).items():
                merged = self._merge(kind, relpath, rows, written.get(relpath))
                target = staging / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                row_group = DAILY_ROW_GROUP if relpath.startswith("bars/freq=1d") else INTRADAY_ROW_GROUP
                pq.write_table(
                    merged,
                    target,
                    compression=COMPRESSION,
                    row_group_size=row_group,
                    use_dictionary=[name for name in merged.column_names if name not in _NO_DICTIONARY],
                )
                written[relpath] = target
        if instruments is not None:
            rows = [msgspec.structs.asdict(instrument) for instrument in instruments]
            table = pa.Table.from_pylist(rows, schema=INSTRUMENTS)
            pq.write_table(table, staging / "instruments.parquet")
            written["instruments.parquet"] = staging / "instruments.parquet"
        if quarantine is not None and quarantine.num_rows:
            relpath = f"quarantine/part-{int(self.manifest()['version']) + 1:06d}.parquet"
            (staging / relpath).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(quarantine.cast(QUARANTINE), staging / relpath)
            written[relpath] = staging / relpath
        return written

    def _merge(self, kind: Kind, relpath: str, rows: pa.Table, staged: Path | None) -> pa.Table:
        existing = staged if staged is not None else self.root / relpath
        if existing.exists():
            rows = pa.concat_tables([pq.read_table(existing).cast(SCHEMAS[kind]), rows])
            rows = rows.sort_by(_sort_keys(kind))
        elif not _is_sorted(rows, _sort_keys(kind)):
            rows = rows.sort_by(_sort_keys(kind))
        if _has_adjacent_duplicates(rows, _unique_keys(kind)):
            raise LakeError(f"{relpath}: merge would store a duplicate key; quarantine it before commit")
        return rows

    def _publish(self, written: dict[str, Path], staging: Path) -> str:
        files = self.files
        for relpath, path in sorted(written.items()):
            files[relpath] = _file_hash(path)
        for relpath, path in sorted(written.items()):
            (self.root / relpath).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.root / relpath)
        digest = hashlib.blake2b(digest_size=32)
        for relpath, file_digest in sorted(files.items()):
            digest.update(f"{relpath}\0{file_digest}\n".encode())
        manifest = {
            "version": int(self.manifest()["version"]) + 1,
            "files": dict(sorted(files.items())),
            "content_hash": digest.hexdigest(),
        }
        temp = self.root / (_MANIFEST + ".tmp")
        temp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(temp, self.root / _MANIFEST)
        shutil.rmtree(staging, ignore_errors=True)
        return digest.hexdigest()

    def stored_keys(self, kind: Kind, frequency: str | None, instrument_id: int, ts_ns: IntArray) -> IntArray:
        """The timestamps among ``ts_ns`` already stored for this instrument."""
        if len(ts_ns) == 0:
            return np.zeros(0, dtype=np.int64)
        stored = self.read(kind, frequency, instrument_ids=[instrument_id], columns=["ts_ns"])
        if stored.num_rows == 0:
            return np.zeros(0, dtype=np.int64)
        return np.intersect1d(stored.column("ts_ns").to_numpy(), ts_ns)

    # ---- reading -----------------------------------------------------------------------------

    def _prefix(self, kind: Kind, frequency: str | None) -> str:
        return f"bars/freq={frequency}" if kind is Kind.BARS else str(kind)

    def partitions(
        self, kind: Kind, frequency: str | None = None, instrument_ids: Iterable[int] | None = None
    ) -> list[str]:
        """Partition files of a kind, pruned by instrument where the layout allows."""
        prefix = self._prefix(kind, frequency) + "/"
        wanted = None if instrument_ids is None else {f"instrument_id={i}/" for i in instrument_ids}
        chosen = []
        for relpath in sorted(self.files):
            if not relpath.startswith(prefix):
                continue
            pruned = wanted is not None and "instrument_id=" in relpath
            if pruned and not any(f"/{token}" in relpath for token in wanted or ()):
                continue
            chosen.append(relpath)
        return chosen

    def read(
        self,
        kind: Kind,
        frequency: str | None = None,
        *,
        instrument_ids: list[int] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of a kind, pruned by partition, then by row-group statistics, then filtered.
        ``start_ns <= ts_ns <= end_ns`` (None: no bound); a bound is an integer of nanoseconds
        that ``ts_ns`` (int64) can hold, anything else a ``ValueError`` naming it."""
        _check_bound("start_ns", start_ns)
        _check_bound("end_ns", end_ns)
        schema = SCHEMAS[kind]
        names = columns or schema.names
        filter_names = sorted({*names, *(["instrument_id"] if instrument_ids else [])} & set(schema.names))
        bounded = start_ns is not None or end_ns is not None  # a bound of 0 filters too
        filter_names = sorted(set(filter_names) | ({"ts_ns"} if bounded else set()))
        tables = [
            self._read_file(relpath, filter_names, start_ns, end_ns)
            for relpath in self.partitions(kind, frequency, instrument_ids)
        ]
        if not tables:
            return schema.empty_table().select(names)
        table = pa.concat_tables(tables)
        mask = None
        if instrument_ids is not None:
            mask = pc.is_in(table.column("instrument_id"), pa.array(instrument_ids, pa.int32()))
        if start_ns is not None:
            mask = _and(mask, pc.greater_equal(table.column("ts_ns"), start_ns))
        if end_ns is not None:
            mask = _and(mask, pc.less_equal(table.column("ts_ns"), end_ns))
        if mask is not None:
            table = table.filter(mask)
        return table.select(names)

    def _read_file(
        self, relpath: str, columns: list[str], start_ns: int | None, end_ns: int | None
    ) -> pa.Table:
        handle = pq.ParquetFile(self.root / relpath)
        if start_ns is None and end_ns is None:
            return handle.read(columns=columns)
        groups = _row_groups(handle.metadata, start_ns, end_ns)
        return handle.read_row_groups(groups, columns=columns)

    def cross_section(self, frequency: str, ts_ns: int) -> pa.Table:
        """All instruments' bars at one timestamp, sorted by instrument id."""
        table = self.read(Kind.BARS, frequency, start_ns=ts_ns, end_ns=ts_ns)
        return table.sort_by("instrument_id")

    def cross_sections(
        self, frequency: str, *, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[tuple[int, pa.Table]]:
        """Per-step cross-sections (one table per distinct timestamp), in time order."""
        table = self.read(Kind.BARS, frequency, start_ns=start_ns, end_ns=end_ns)
        table = table.sort_by([("ts_ns", "ascending"), ("instrument_id", "ascending")])
        ts = table.column("ts_ns").to_numpy()
        starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        stops = np.r_[starts[1:], len(ts)]
        for begin, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            yield int(ts[begin]), table.slice(begin, stop - begin)

    def panel(
        self,
        frequency: str,
        *,
        instrument_ids: list[int] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Panel:
        """Bars as the kernel's (step x instrument) panel."""
        bars = self.read(
            Kind.BARS, frequency, instrument_ids=instrument_ids, start_ns=start_ns, end_ns=end_ns
        )
        wanted = set(instrument_ids) if instrument_ids is not None else None
        chosen = tuple(i for i in self.instruments() if wanted is None or i.instrument_id in wanted)
        return pivot_bars(bars, chosen)

    def scan(self, kind: Kind, frequency: str | None = None) -> object:
        """A Polars LazyFrame over the kind's hive tree (partition pruning and projection
        happen when the query filters on ``instrument_id``/``year`` and selects columns)."""
        import polars as pl

        prefix = self._prefix(kind, frequency)
        files = [str(self.root / relpath) for relpath in self.partitions(kind, frequency)]
        if not files:
            raise LakeError(f"{self.root}: no {prefix} data")
        return pl.scan_parquet(files, hive_partitioning=True, hive_schema=_hive_schema(prefix, files))

    def _traded(self, instrument_ids: list[int] | None) -> list[int] | None:
        """The instruments a data set may hold: a perpetual's mark-price candles (``SYMBOL#mark``)
        are a reference series, carried as the funding rows' marks, never an instrument a
        strategy would weight and the simulated venue fill like the perpetual itself."""
        every = self.instruments()
        marks = {i.instrument_id for i in every if i.symbol.endswith(MARK_SUFFIX)}
        if not marks:
            return instrument_ids
        chosen = instrument_ids if instrument_ids is not None else [i.instrument_id for i in every]
        return [iid for iid in chosen if iid not in marks]

    def export(
        self,
        out: Path,
        frequency: str,
        *,
        calendar: str,
        instrument_ids: list[int] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        name: str | None = None,
        actions: bool = False,
        reform: str = "carry",
        margins: Path | None = None,
        fx: Path | None = None,
        settlements: Path | None = None,
        holidays: Path | None = None,
    ) -> DatasetRef:
        """Write the kernel's data set (``lake.store`` format, content-hashed) from the lake;
        with ``actions`` also its ``actions.parquet`` from the lake's corporate actions
        (``lake.adjust.dataset_actions``; rights columns only when there is a rights issue).
        Share-structure reform rows are carried flagged ``reform`` (the run's
        ``[corporate_actions] reform`` decides) or, with ``reform="skip"``, left out. With
        ``margins`` (a CSV file, ``lake.margins``) also its ``margins.parquet``; with ``fx`` (a
        CSV file of exchange rates, ``lake.fx_rates``) its ``fx.parquet``. The lake's funding
        rates of the exported instruments within the bars' span always go to ``funding.parquet``
        (a perpetual's run books them from there). With ``settlements`` (a CSV file of futures
        settlement prices, ``lake.settlements``) its ``settlements.parquet``. With ``holidays``
        (a CSV file of an exchange's holidays for whole years past ``exchange_calendars``',
        ``domain.markets.parse_holidays``) the bars are checked on the extended calendar and the
        holidays go to ``holidays.parquet``, so a run and its replay use the same ones."""
        target, root = Path(out).resolve(), self.root.resolve()
        if target == root or root in target.parents:  # its instruments.parquet was the lake's
            raise LakeError(f"{out}: the data set would be written inside the lake {self.root}")
        problems = self.verify()
        if problems:
            raise LakeError(f"{self.root}: refusing to export: {'; '.join(problems[:5])}")
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise LakeError(f"{self.root}: the export's start is after its end")
        traded = self._traded(instrument_ids)
        bars = self.read(Kind.BARS, frequency, instrument_ids=traded, start_ns=start_ns, end_ns=end_ns)
        if bars.num_rows == 0:  # an empty data set: a run of no steps, or a typo'd frequency
            stored = sorted(path.name.removeprefix("freq=") for path in (self.root / "bars").glob("freq=*"))
            window = "" if start_ns is None and end_ns is None else " from --start to --end"
            raise LakeError(
                f"{self.root}: no {frequency} bars{window} to export "
                f"(bar frequencies stored: {', '.join(stored) or 'none'})"
            )
        wanted = set(bars.column("instrument_id").to_pylist())
        chosen = [i for i in self.instruments() if i.instrument_id in wanted]
        supplied = self._checked_calendar(bars, frequency, calendar, chosen, holidays)
        table = self._dataset_actions(chosen, reform, _day_span(bars)) if actions else None
        margin_table = None
        if margins is not None:
            try:
                read = read_margin_rows(margins, self.instruments(), chosen)
            except MarginFileError as error:
                raise LakeError(str(error)) from None
            margin_table = margins_table(read.rows) if read.rows else None
        fx_rows = None
        if fx is not None:
            try:
                fx_rows = fx_table(read_fx_rows(fx))
            except FxFileError as error:
                raise LakeError(str(error)) from None
        settle_table = None if settlements is None else self._dataset_settlements(settlements, chosen, bars)
        delisted = self.delistings(chosen)
        funding = self._dataset_funding(bars, frequency)
        return write_dataset(
            out,
            name=name or f"lake-{self.content_hash[:12]}-{frequency}",
            frequency=frequency,
            calendar=calendar,
            instruments=chosen,
            bars=bars.drop_columns(["turnover"]),
            funding=funding,
            actions=table,
            settlements=settle_table,
            margins=margin_table,
            fx=fx_rows,
            delistings=delistings_table(delisted) if delisted else None,
            holidays=supplied,
        )

    def _checked_calendar(
        self, bars: pa.Table, frequency: str, calendar: str, chosen: list[Instrument], holidays: Path | None
    ) -> HolidayYears | None:
        """The holidays of the ``holidays`` file (None: none given), with every bar checked on
        ``calendar`` extended by them; a ``LakeError`` naming what to do otherwise."""
        try:
            supplied = None if holidays is None else read_holidays(holidays, calendar)
        except HolidayFileError as error:
            raise LakeError(f"{error}; nothing written") from None
        try:
            self._check_sessions(bars, frequency, calendar, chosen, supplied)
        except CalendarNotCovered as error:
            raise LakeError(f"{self.root}: refusing to export: {error}; nothing written") from None
        return supplied

    def _check_sessions(
        self,
        bars: pa.Table,
        frequency: str,
        calendar: str,
        chosen: list[Instrument],
        holidays: HolidayYears | None = None,
    ) -> None:
        """Refuse bars outside the sessions of the calendar the data set declares: a run steps,
        annualises (252 or 365 days) and grids its live steps by that calendar, so 24x7 crypto
        bars declared XNYS kept their weekend bars and annualised over 252. The message names
        the count, the first such bar and the calendar the instruments were ingested on.
        ``mixed`` (a set of several markets) checks each instrument's bars against its own
        calendar (``own_calendars``) and refuses an instrument whose calendar is not known; a
        name that is neither that, ``24x7`` nor an ``exchange_calendars`` code is refused."""
        if calendar != "mixed" and not known_calendar(calendar):
            venue = venue_calendar(calendar)  # XSHE: Shenzhen trades on XSHG's sessions
            raise LakeError(
                f"unknown calendar {calendar!r} "
                + (
                    f"(venue {calendar} trades on {venue}: --calendar {venue})"
                    if venue
                    else "(an exchange_calendars code such as XNYS or XSHG, 24x7, or mixed for a set "
                    "of several markets)"
                )
            )
        ts = bars.column("ts_ns").to_numpy().astype(np.int64)
        day = bars.column("day").to_numpy().astype(np.int64)
        ids = bars.column("instrument_id").to_numpy().astype(np.int64)
        daily = frequency.endswith("d")
        own = self.own_calendars(chosen) if calendar == "mixed" else None
        if own is None:
            outside = outside_sessions(calendar, ts, day, daily=daily, holidays=holidays)
        else:
            outside = self._outside_own_sessions(ts, day, ids, daily, own, chosen, holidays)
        if not outside.any():
            return
        first = int(np.flatnonzero(outside)[0])
        by_id = {inst.instrument_id: inst for inst in chosen}
        inst = by_id[int(ids[first])]
        checked = calendar if own is None else own[inst.instrument_id][0]
        if daily:
            where = f"on {_iso_day(int(day[first]))}, not a {checked} session day"
        else:
            where = f"at {_utc_text(int(ts[first]))}, outside {checked} trading hours"
        count = f"{int(outside.sum()):,} of {len(ts):,} {frequency} bars"
        if own is None:
            fits = self._fitting_calendar(bars, frequency, calendar, chosen, holidays)
            raise LakeError(
                f"{self.root}: refusing to export: {count} fall outside {calendar} sessions, the first "
                f"{inst.venue}:{inst.symbol} {where}{fits}; nothing written"
            )
        names = len(set(ids[outside].tolist()))
        mine = ids == inst.instrument_id
        fits = _mixed_hint(inst, ts[mine], day[mine], daily, own, holidays)
        raise LakeError(
            f"{self.root}: refusing to export --calendar mixed: {count} ({_plural(names, 'instrument')}) "
            f"fall outside the sessions of their instrument's own calendar, the first "
            f"{inst.venue}:{inst.symbol} {where} ({own[inst.instrument_id][1]}){fits}; nothing written"
        )

    def own_calendars(self, chosen: list[Instrument]) -> dict[int, tuple[str, str]]:
        """Each instrument's own calendar for a ``mixed`` data set, by id, with where it comes
        from: the one its ingest declared and checked its bars on (``declared_calendars``),
        else its venue's (``calendar_for``: crypto 24x7, SSE/SZSE XSHG, US venues XNYS). An
        instrument with neither is refused (``LakeError`` naming them): a mixed set is checked
        bar by bar, and such bars could not be."""
        declared = declared_calendars(self)
        found: dict[int, tuple[str, str]] = {}
        unknown = []
        for inst in chosen:
            if inst.instrument_id in declared:
                name = declared[inst.instrument_id]
                found[inst.instrument_id] = (name, f"its calendar: {name}, declared by its ingest")
            elif (venue := calendar_for(inst)) is not None:
                source = "crypto" if inst.asset_class.startswith("crypto") else f"venue {inst.venue}"
                found[inst.instrument_id] = (venue, f"its calendar: {venue}, from its {source}")
            else:
                unknown.append(f"{inst.venue}:{inst.symbol}")
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else "")
            raise LakeError(
                f"{self.root}: refusing to export --calendar mixed: no calendar known for "
                f"{_plural(len(unknown), 'instrument')} ({shown}): a mixed set checks each "
                "instrument's bars on its own calendar (the one its ingest declared with --calendar, "
                "else its venue's: crypto 24x7, SSE/SZSE XSHG, US venues XNYS, a venue that is a "
                "calendar code such as XEUR); export them on one calendar (--calendar CODE) or leave "
                "them out (--symbols); nothing written"
            )
        return found

    @staticmethod
    def _outside_own_sessions(
        ts: npt.NDArray[np.int64],
        day: npt.NDArray[np.int64],
        ids: npt.NDArray[np.int64],
        daily: bool,
        own: dict[int, tuple[str, str]],
        chosen: list[Instrument],
        holidays: HolidayYears | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Which bars fall outside their own instrument's calendar (one pass per calendar;
        ``holidays`` extend the calendar they name)."""
        outside = np.zeros(len(ts), dtype=np.bool_)
        for name in sorted({own[inst.instrument_id][0] for inst in chosen}):
            members = [iid for iid, (calendar, _) in own.items() if calendar == name]
            rows = np.isin(ids, np.array(members, dtype=np.int64))
            outside[rows] = outside_sessions(name, ts[rows], day[rows], daily=daily, holidays=holidays)
        return outside

    def _fitting_calendar(
        self,
        bars: pa.Table,
        frequency: str,
        calendar: str,
        chosen: list[Instrument],
        holidays: HolidayYears | None = None,
    ) -> str:
        """The hint of a refused export: the calendar the instruments were ingested on (or their
        venue's) when it holds every bar, or ``mixed`` when they trade on several."""
        declared = declared_calendars(self)
        found = {declared.get(inst.instrument_id) or calendar_for(inst) for inst in chosen}
        known = sorted(name for name in found if name is not None and name != calendar)
        if len(found) > 1 and None not in found:
            names = ", ".join(sorted(name for name in found if name))
            return f"; they trade on several calendars ({names}): --calendar mixed"
        if len(known) != 1:
            return ""
        ts = bars.column("ts_ns").to_numpy().astype(np.int64)
        day = bars.column("day").to_numpy().astype(np.int64)
        try:
            if outside_sessions(known[0], ts, day, daily=frequency.endswith("d"), holidays=holidays).any():
                return ""
        except CalendarNotCovered:
            return ""
        return f"; their calendar, {known[0]}, holds every bar: --calendar {known[0]}"

    def _dataset_settlements(self, file: Path, chosen: list[Instrument], bars: pa.Table) -> pa.Table | None:
        """The settlement prices of ``file`` (``lake.settlements``) for the exported futures on
        the exported bars' session days (None: no row applies)."""
        days = _day_span(bars)
        assert days is not None  # the export refused empty bars
        try:
            settled = read_settlement_rows(file, self.instruments(), chosen, days)
        except SettlementFileError as error:
            raise LakeError(str(error)) from None
        return settlements_table(settled.rows) if settled.rows else None

    def _dataset_funding(self, bars: pa.Table, frequency: str) -> pa.Table | None:
        """The funding rates of the exported bars' instruments that the run books: from the
        first bar's open to the last bar's close (``kernel.carry`` books a row at the first step
        at or after its time and drops later ones; one before the first bar would be charged to
        the first step's fills). A window's data set holds the fundings it trades through, and
        its content hash does not depend on the rest. None: the lake has none of them.

        Each time is taken to the nearest whole second (``FUNDING_SNAP_NS``): a venue settles
        on the hour (Binance 00:00, 08:00, 16:00 UTC) and records it some ms late (freqtrade's
        XRP/USDT:USDT rates at 00:00:00.017, 16:00:00.005, ...); kept raw, such a funding was
        booked a whole bar late, at that bar's close as the mark and on the position after its
        fills, while one stamped on the second was booked at the bar ending on the hour."""
        ids = sorted(set(bars.column("instrument_id").to_pylist()))
        if not self.partitions(Kind.FUNDING_RATES, instrument_ids=ids):
            return None
        ts = pc.min_max(bars.column("ts_ns"))
        first_open = int(ts["min"].as_py()) - frequency_ns(frequency)
        last_close = int(ts["max"].as_py())
        half = FUNDING_SNAP_NS // 2
        funding = self.read(
            Kind.FUNDING_RATES,
            instrument_ids=ids,
            start_ns=first_open + 1 - half,
            end_ns=last_close + half,
        )
        stamps = funding.column("ts_ns").to_numpy().astype(np.int64)
        snapped = (stamps + half) // FUNDING_SNAP_NS * FUNDING_SNAP_NS
        keep = (snapped > first_open) & (snapped <= last_close)
        funding = funding.set_column(
            funding.schema.get_field_index("ts_ns"), "ts_ns", pa.array(snapped, pa.int64())
        ).filter(pa.array(keep))
        keys = list(
            zip(funding.column("instrument_id").to_pylist(), funding.column("ts_ns").to_pylist(), strict=True)
        )
        if len(set(keys)) != len(keys):
            iid, stamp = next(key for key in keys if keys.count(key) > 1)
            raise LakeError(f"funding rates: instrument {iid} has two rates within a second of {stamp} ns")
        if not funding.num_rows:
            return None
        marks = self._funding_marks(funding)
        return funding if marks is None else funding.append_column("mark", pa.array(marks, pa.int64()))

    def _funding_marks(self, funding: pa.Table) -> npt.NDArray[np.int64] | None:
        """The mark price at each funding row's time, from the perpetual's mark-price candles in
        the lake (``SYMBOL#mark`` at the same venue, ``tape ingest freqtrade ...-mark.feather``),
        raw at the perpetual's ``price_digits`` (half-even, as a venue's mark is journaled).

        Stamp rule: the close of the mark candle that closes at or just before the funding time
        ``t`` (the last one completed at ``t``: close time in ``(t - its length, t]``; bars are
        stamped at their close). Of the stored mark frequencies the candle closing latest wins,
        at a tie the shortest (a 1h candle over an 8h one both closing at ``t``). No such candle
        (a gap, the series starts later): 0, and that funding is booked at the bar's close as
        the mark, as for a data set without marks. None: no funding row has a mark."""
        by_name = {(inst.venue, inst.symbol): inst for inst in self.instruments()}
        by_id = {inst.instrument_id: inst for inst in by_name.values()}
        stamps = funding.column("ts_ns").to_numpy().astype(np.int64)
        iids = funding.column("instrument_id").to_numpy().astype(np.int64)
        marks = np.zeros(len(stamps), dtype=np.int64)
        frequencies = sorted(
            (path.name.removeprefix("freq=") for path in (self.root / "bars").glob("freq=*")),
            key=frequency_ns,
        )
        for iid in sorted(set(iids.tolist())):
            perp = by_id[iid]
            mark = by_name.get((perp.venue, f"{perp.symbol}{MARK_SUFFIX}"))
            if mark is None:
                continue
            rows = np.flatnonzero(iids == iid)
            times = stamps[rows]
            best_close = np.full(len(rows), -1, dtype=np.int64)
            best_mark = np.zeros(len(rows), dtype=np.int64)
            for frequency in frequencies:  # shortest first: a later tie keeps the shorter one
                length = frequency_ns(frequency)
                candles = self.read(
                    Kind.BARS,
                    frequency,
                    instrument_ids=[mark.instrument_id],
                    start_ns=int(times.min()) - length + 1,
                    end_ns=int(times.max()),
                    columns=["ts_ns", "close"],
                )
                if not candles.num_rows:
                    continue
                order = np.argsort(candles.column("ts_ns").to_numpy(), kind="stable")
                close_ts = candles.column("ts_ns").to_numpy().astype(np.int64)[order]
                close_px = candles.column("close").to_numpy().astype(np.int64)[order]
                at = np.searchsorted(close_ts, times, side="right") - 1  # last close <= t
                found = at >= 0
                candle_ts = np.where(found, close_ts[np.maximum(at, 0)], -1)
                fresh = found & (candle_ts > times - length) & (candle_ts > best_close)
                best_close = np.where(fresh, candle_ts, best_close)
                best_mark = np.where(fresh, close_px[np.maximum(at, 0)], best_mark)
            marks[rows] = [
                rescale(int(raw), mark.price_digits, perp.price_digits, Rounding.HALF_EVEN) if raw > 0 else 0
                for raw in best_mark.tolist()
            ]
        return marks if bool((marks > 0).any()) else None

    def delistings(self, chosen: list[Instrument]) -> dict[int, int]:
        """The delisting day of each of ``chosen`` that the lake's metadata reports give one
        (``tape ingest metadata``; ``reports/metadata-NNNNNN.json``, a later report's day wins)."""
        by_name = {f"{inst.venue}:{inst.symbol}": inst.instrument_id for inst in chosen}
        found: dict[int, int] = {}
        for report in sorted((self.root / "reports").glob("metadata-*.json")):
            try:
                days = json.loads(report.read_text()).get("delisting", {})
            except (OSError, ValueError) as error:
                raise LakeError(f"{report}: unreadable metadata report: {error}") from None
            for name, day in sorted(days.items()):
                if name in by_name:
                    found[by_name[name]] = int(day)
        return found

    def _dataset_actions(
        self, chosen: list[Instrument], reform: str, days: tuple[int, int] | None
    ) -> pa.Table | None:
        """The actions of ``chosen`` whose ex-date falls within ``days`` (the exported bars'
        first and last session): the kernel takes no other (one before the first session is
        already in the prices, one after the last never comes), so a window's data set holds
        the actions it trades through and its content hash does not depend on the rest."""
        if reform not in ("carry", "skip"):
            raise LakeError(f"reform must be 'carry' or 'skip', got {reform!r}")
        rows = []
        for inst in chosen:
            stored = self.read(Kind.CORPORATE_ACTIONS, instrument_ids=[inst.instrument_id])
            try:
                rows.extend(dataset_actions(stored, inst, reform=reform))
            except ValueError as error:  # e.g. a rights ratio without a price in the source table
                raise LakeError(f"{self.root}: corporate actions of {inst.symbol}: {error}") from None
        if days is not None:
            rows = [row for row in rows if days[0] <= row.ex_day <= days[1]]
        return actions_table(rows) if rows else None


def _mixed_hint(
    inst: Instrument,
    ts: npt.NDArray[np.int64],
    day: npt.NDArray[np.int64],
    daily: bool,
    own: dict[int, tuple[str, str]],
    holidays: HolidayYears | None = None,
) -> str:
    """The hint of a refused ``mixed`` export: an exchange calendar of the set (or the
    instrument's venue's) that holds every bar of the first instrument refused, and what to do.
    24x7 holds every bar of anything, so it is named only for a crypto instrument."""
    mine = own[inst.instrument_id][0]
    candidates = {calendar for calendar, _ in own.values()} | {calendar_for(inst)}
    venue = calendar_for(inst)
    fitting = [
        name
        for name in sorted(c for c in candidates if c is not None and c != mine)
        if (name != "24x7" or venue == "24x7") and not _outside_or_uncovered(name, ts, day, daily, holidays)
    ]
    leave = f"leave it out (--symbols) or export it alone (--symbols {inst.symbol} --calendar CODE)"
    if not fitting:
        return f"; {leave}"
    return f"; {inst.symbol}'s bars all lie in {fitting[0]} sessions: {leave.replace('CODE', fitting[0])}"


def _outside_or_uncovered(
    name: str,
    ts: npt.NDArray[np.int64],
    day: npt.NDArray[np.int64],
    daily: bool,
    holidays: HolidayYears | None,
) -> bool:
    """Whether some bar lies outside ``name``'s sessions, or past what the calendar covers (a
    hint never names a calendar that cannot say)."""
    try:
        return bool(outside_sessions(name, ts, day, daily=daily, holidays=holidays).any())
    except CalendarNotCovered:
        return True


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _iso_day(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _utc_text(ts_ns: int) -> str:
    """A bar close as ``2018-01-13 00:05 UTC (Saturday)``."""
    import datetime as dt

    moment = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC ({moment:%A})"


def _day_span(bars: pa.Table) -> tuple[int, int] | None:
    """The first and last session day of ``bars`` (None: no bars)."""
    if bars.num_rows == 0:
        return None
    span = pc.min_max(bars.column("day"))
    return int(span["min"].as_py()), int(span["max"].as_py())


def _and(mask: pa.ChunkedArray | None, other: pa.ChunkedArray) -> pa.ChunkedArray:
    return other if mask is None else pc.and_(mask, other)


_INT64 = np.iinfo(np.int64)


def _check_bound(name: str, bound: int | None) -> None:
    """A read's time bound: None, or whole nanoseconds inside int64 (``ts_ns``'s type), else a
    ``ValueError`` naming it (it was pyarrow's TypeError, or an OverflowError)."""
    if bound is None:
        return
    if isinstance(bound, bool) or not isinstance(bound, Integral):
        raise ValueError(f"{name} must be whole nanoseconds since the epoch (an int), got {bound!r}")
    if not _INT64.min <= int(bound) <= _INT64.max:
        raise ValueError(
            f"{name} = {bound} is outside the nanosecond timestamps a lake holds "
            f"({_INT64.min} .. {_INT64.max}, int64: about 1677 to 2262); None reads without a bound"
        )


def _row_groups(metadata: pq.FileMetaData, start_ns: int | None, end_ns: int | None) -> list[int]:
    column = metadata.schema.names.index("ts_ns")
    groups = []
    for index in range(metadata.num_row_groups):
        stats = metadata.row_group(index).column(column).statistics
        if stats is None or not stats.has_min_max:
            groups.append(index)
            continue
        if (start_ns is None or stats.max >= start_ns) and (end_ns is None or stats.min <= end_ns):
            groups.append(index)
    return groups


def _hive_schema(prefix: str, files: list[str]) -> dict[str, object]:
    import polars as pl

    schema: dict[str, object] = {}
    for token in ("instrument_id", "year", "freq"):
        if any(f"/{token}=" in file for file in files):
            schema[token] = pl.String if token == "freq" else pl.Int32
    return schema
