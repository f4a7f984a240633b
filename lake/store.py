"""A data set on disk: Parquet bars + instruments + a manifest with the content hash.

Layout (one folder per data set)::

    DATASET/manifest.json        name, frequency, calendar, row counts, content_hash
    DATASET/instruments.parquet  the instrument master (domain.instruments.Instrument fields)
    DATASET/bars.parquet         ts_ns, day, instrument_id, open, high, low, close, volume
    DATASET/funding.parquet      (optional) ts_ns, instrument_id, rate_e8 [, mark] (mark:
                                 the mark price at the funding time, raw; 0 = none there)
    DATASET/actions.parquet      (optional) instrument_id, ex_date, pay_date, cash_e8,
                                 split_to, split_from [, rights_to, rights_from,
                                 rights_price_e8] [, reform] (corporate actions)
    DATASET/settlements.parquet  (optional) day, instrument_id, settle (futures settlement prices)
    DATASET/fx.parquet           (optional) day, currency, base, rate_e8 (exchange rates: one
                                 unit of currency in base, 1e-8; ``domain.fx``)
    DATASET/margins.parquet      (optional) instrument_id, since, initial_e8, maintenance_e8,
                                 initial_minor, maintenance_minor (futures margin rows)
    DATASET/delistings.parquet   (optional) instrument_id, last_day (delisting dates)
    DATASET/holidays.parquet     (optional) calendar, year, day (exchange holidays the operator
                                 supplied for years past exchange_calendars'; ``HolidayYears``)

Prices are raw integers at each instrument's ``price_digits``. The content hash is a
blake2b over the data files' names and bytes; the kernel journals it and replay refuses
to run on different bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

from domain.futures import is_daily_settled
from domain.fx import FxError, FxRate, FxTable
from domain.instruments import Instrument
from domain.market import ACTION_FIELDS, REFORM_FIELD, RIGHTS_FIELDS, MarginRow, Panel
from domain.markets import CorporateAction, HolidaysInvalid, HolidayYears

__all__ = [
    "DatasetError",
    "DatasetRef",
    "actions_table",
    "content_hash",
    "dataset_ref",
    "fx_table",
    "holidays_table",
    "load_panel",
    "delistings_table",
    "margins_table",
    "pivot_bars",
    "settlements_table",
    "write_dataset",
]

_DATA_FILES = ("instruments.parquet", "bars.parquet")
_BAR_SCHEMA = pa.schema(
    [
        ("ts_ns", pa.int64()),
        ("day", pa.int32()),
        ("instrument_id", pa.int32()),
        ("open", pa.int64()),
        ("high", pa.int64()),
        ("low", pa.int64()),
        ("close", pa.int64()),
        ("volume", pa.int64()),
    ]
)


class DatasetError(ValueError):
    """A data set that is missing, malformed or not the bytes a journal refers to."""


@dataclass(frozen=True)
class DatasetRef:
    uri: str
    content_hash: str
    frequency: str
    calendar: str


# A new optional file goes last: a data set without it hashes as before it existed.
# Hashed in this order after the bars; a new file goes last, so sets without it hash as before.
_OPTIONAL_FILES = (
    "funding.parquet",
    "actions.parquet",
    "settlements.parquet",
    "fx.parquet",
    "margins.parquet",
    "delistings.parquet",
    "holidays.parquet",
)
_FUNDING_SCHEMA = pa.schema([("ts_ns", pa.int64()), ("instrument_id", pa.int32()), ("rate_e8", pa.int64())])
# Optional, last (absent: no row has a mark, the bar's close is booked as the mark; a set
# without it hashes as before it existed). Raw price at the instrument's ``price_digits``.
_FUNDING_MARK = pa.field("mark", pa.int64(), nullable=False)
_ACTION_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.int32(), nullable=False),
        pa.field("ex_date", pa.int32(), nullable=False),  # YYYYMMDD, first session trading ex
        pa.field("pay_date", pa.int32(), nullable=False),  # YYYYMMDD cash arrives; 0 = ex-date
        pa.field("cash_e8", pa.int64(), nullable=False),  # pre-tax cash per share, currency x 1e-8
        pa.field("split_to", pa.int64(), nullable=False),  # shares after ...
        pa.field("split_from", pa.int64(), nullable=False),  # ... per shares before (7/1, 13/10)
    ]
)
# Optional, all three or none (absent: no rights issues; a set without them hashes as before).
_RIGHTS_SCHEMA = pa.schema(
    [
        pa.field("rights_to", pa.int64(), nullable=False),  # rights shares offered ...
        pa.field("rights_from", pa.int64(), nullable=False),  # ... per shares held (10配3: 3/10)
        pa.field("rights_price_e8", pa.int64(), nullable=False),  # subscription price, currency x 1e-8
    ]
)
# Optional, last (absent: no share-structure-reform row; a set without it hashes as before).
_REFORM_SCHEMA = pa.schema([pa.field("reform", pa.bool_(), nullable=False)])

_SETTLEMENT_SCHEMA = pa.schema(
    [
        pa.field("day", pa.int32(), nullable=False),  # YYYYMMDD session day
        pa.field("instrument_id", pa.int32(), nullable=False),
        pa.field("settle", pa.int64(), nullable=False),  # raw price at the instrument's price_digits
    ]
)


_FX_SCHEMA = pa.schema(
    [
        pa.field("day", pa.int32(), nullable=False),  # YYYYMMDD the rate applies to
        pa.field("currency", pa.string(), nullable=False),  # the currency priced ...
        pa.field("base", pa.string(), nullable=False),  # ... in this one
        pa.field("rate_e8", pa.int64(), nullable=False),  # one unit of currency in base, 1e-8
    ]
)


_MARGIN_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.int32(), nullable=False),  # a daily-settled future
        pa.field("since", pa.int32(), nullable=False),  # YYYYMMDD: in force from this session day
        pa.field("initial_e8", pa.int64(), nullable=False),  # a share of notional, 1e-8 ...
        pa.field("maintenance_e8", pa.int64(), nullable=False),
        pa.field("initial_minor", pa.int64(), nullable=False),  # ... or money per contract, minor units
        pa.field("maintenance_minor", pa.int64(), nullable=False),
    ]
)


_DELISTING_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.int32(), nullable=False),
        pa.field("last_day", pa.int32(), nullable=False),  # YYYYMMDD: the last session
    ]
)


def delistings_table(rows: dict[int, int]) -> pa.Table:
    """``{instrument_id: last session day}`` in contract form for ``write_dataset``."""
    ids = sorted(rows)
    return pa.table({"instrument_id": ids, "last_day": [rows[i] for i in ids]}, schema=_DELISTING_SCHEMA)


def settlements_table(rows: list[tuple[int, int, int]]) -> pa.Table:
    """``(day YYYYMMDD, instrument_id, settle raw)`` rows in contract form for ``write_dataset``."""
    return pa.table(
        {name: [row[index] for row in rows] for index, name in enumerate(_SETTLEMENT_SCHEMA.names)},
        schema=_SETTLEMENT_SCHEMA,
    )


def margins_table(rows: list[MarginRow]) -> pa.Table:
    """Rows in contract form for ``write_dataset``."""
    return pa.table(
        {name: [getattr(row, name) for row in rows] for name in _MARGIN_SCHEMA.names}, schema=_MARGIN_SCHEMA
    )


def fx_table(rates: list[FxRate]) -> pa.Table:
    """Rows in contract form for ``write_dataset``."""
    return pa.table(
        {name: [getattr(rate, name) for rate in rates] for name in _FX_SCHEMA.names}, schema=_FX_SCHEMA
    )


_HOLIDAY_SCHEMA = pa.schema(
    [
        pa.field("calendar", pa.string(), nullable=False),  # XSHG
        pa.field("year", pa.int32(), nullable=False),  # a year supplied whole
        pa.field("day", pa.int32(), nullable=False),  # YYYYMMDD weekday closure in that year
    ]
)


def holidays_table(holidays: HolidayYears) -> pa.Table:
    """The supplied holidays as ``holidays.parquet`` rows, one per closure, sorted by day.
    Every year supplied has a row (a year is known from its closures)."""
    years = {day // 10000 for day in holidays.days}
    missing = [year for year in holidays.years if year not in years]
    if missing:
        raise DatasetError(f"holidays: {', '.join(map(str, missing))} supplied with no closure")
    return pa.Table.from_pydict(
        {
            "calendar": [holidays.calendar] * len(holidays.days),
            "year": [day // 10000 for day in holidays.days],
            "day": list(holidays.days),
        },
        schema=_HOLIDAY_SCHEMA,
    )


def _read_holidays(table: pa.Table) -> HolidayYears:
    """``holidays.parquet`` back to ``HolidayYears``, checked as a supplied file is."""
    table = _in_schema(table, _HOLIDAY_SCHEMA, "holidays")
    calendars = sorted(set(table.column("calendar").to_pylist()))
    if len(calendars) != 1:
        raise DatasetError(f"holidays: one calendar per data set, got {calendars or 'no row'}")
    rows = list(zip(table.column("year").to_pylist(), table.column("day").to_pylist(), strict=True))
    bad = [day for year, day in rows if day // 10000 != year]
    if bad:
        raise DatasetError(f"holidays: {bad[0]} is not in its row's year")
    try:
        return HolidayYears(
            calendars[0], tuple(sorted({year for year, _ in rows})), tuple(day for _, day in rows)
        )
    except HolidaysInvalid as error:
        raise DatasetError(str(error)) from None


def content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=32)
    optional = [name for name in _OPTIONAL_FILES if (Path(path) / name).exists()]
    for name in (*_DATA_FILES, *optional):
        file = Path(path) / name
        if not file.exists():
            raise DatasetError(f"{path}: missing {name}")
        digest.update(name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def write_dataset(
    path: Path,
    *,
    name: str,
    frequency: str,
    calendar: str,
    instruments: list[Instrument],
    bars: pa.Table,
    funding: pa.Table | None = None,
    actions: pa.Table | None = None,
    settlements: pa.Table | None = None,
    fx: pa.Table | None = None,
    margins: pa.Table | None = None,
    delistings: pa.Table | None = None,
    holidays: HolidayYears | None = None,
) -> DatasetRef:
    """Write a data set (bars sorted by ts then instrument) and its manifest. Every table is
    checked before a byte is written, and an optional file not given is removed from ``path``:
    a data set rewritten in place without ``actions`` kept the old ``actions.parquet``, which
    the hash covered and a run applied."""
    path = Path(path)
    bars = bars.cast(_BAR_SCHEMA).sort_by([("ts_ns", "ascending"), ("instrument_id", "ascending")])
    inst_rows = [msgspec.structs.asdict(inst) for inst in instruments]
    if funding is not None:
        funding = _checked_funding(funding)
    optional: dict[str, pa.Table | None] = {"funding.parquet": funding}
    optional["actions.parquet"] = None if actions is None else _checked_actions(actions, instruments)
    optional["settlements.parquet"] = (
        None if settlements is None else _checked_settlements(settlements, instruments)
    )
    optional["fx.parquet"] = None if fx is None else _checked_fx(fx)
    optional["margins.parquet"] = None if margins is None else _checked_margins(margins, instruments)
    optional["delistings.parquet"] = (
        None if delistings is None else _checked_delistings(delistings, instruments, bars)
    )
    optional["holidays.parquet"] = None if holidays is None else holidays_table(holidays)
    assert set(optional) == set(_OPTIONAL_FILES)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(inst_rows), path / "instruments.parquet", compression="zstd")
    pq.write_table(bars, path / "bars.parquet", compression="zstd", row_group_size=1 << 20)
    for file_name, table in optional.items():
        if table is None:
            (path / file_name).unlink(missing_ok=True)
        else:
            pq.write_table(table, path / file_name, compression="zstd")
    digest = content_hash(path)
    manifest = {
        "name": name,
        "frequency": frequency,
        "calendar": calendar,
        "instruments": len(instruments),
        "rows": bars.num_rows,
        "steps": len(pa.compute.unique(bars.column("ts_ns"))),
        "content_hash": digest,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return DatasetRef(str(path), digest, frequency, calendar)


def _checked_funding(funding: pa.Table) -> pa.Table:
    """Funding rows sorted by (ts_ns, instrument_id), with their ``mark`` column only where a
    row has a mark (> 0; 0 = none at that time): without one the file's bytes are those of a
    data set written before marks existed, so its content hash keeps its meaning."""
    schema = _FUNDING_SCHEMA
    if _FUNDING_MARK.name in funding.column_names:
        marks = funding.column(_FUNDING_MARK.name).cast(pa.int64())
        if marks.null_count or (len(marks) and int(pa.compute.min(marks).as_py()) < 0):
            raise DatasetError("funding: a mark price is missing or negative (0: no mark at that time)")
        if len(marks) and int(pa.compute.max(marks).as_py()) > 0:
            schema = schema.append(_FUNDING_MARK)
        else:
            funding = funding.drop_columns([_FUNDING_MARK.name])
    return funding.cast(schema).sort_by([("ts_ns", "ascending"), ("instrument_id", "ascending")])


def _with_funding(panel: Panel, path: Path) -> Panel:
    """``panel`` with the data set's funding rows (and their marks, where it has the column)."""
    funding = pq.read_table(path / "funding.parquet")
    marks = np.zeros(0, dtype=np.int64)
    if _FUNDING_MARK.name in funding.column_names:
        marks = funding.column(_FUNDING_MARK.name).to_numpy().astype(np.int64)
        if marks.size and int(marks.min()) < 0:
            raise DatasetError(f"{path}: funding.parquet has a negative mark price")
    return dataclasses.replace(
        panel,
        funding_ts_ns=funding.column("ts_ns").to_numpy().astype(np.int64),
        funding_instrument_id=funding.column("instrument_id").to_numpy().astype(np.int64),
        funding_rate_e8=funding.column("rate_e8").to_numpy().astype(np.int64),
        funding_mark_px_raw=marks,
    )


def read_manifest(path: Path) -> dict[str, object]:
    file = Path(path) / "manifest.json"
    if not file.exists():
        raise DatasetError(f"{path}: not a data set (no manifest.json)")
    manifest: dict[str, object] = json.loads(file.read_text())
    return manifest


def dataset_ref(path: Path) -> DatasetRef:
    """The data set's identity, read from its manifest (``load_panel`` re-checks the bytes)."""
    manifest = read_manifest(path)
    return DatasetRef(
        str(path), str(manifest["content_hash"]), str(manifest["frequency"]), str(manifest["calendar"])
    )


def load_panel(path: Path, *, expected_hash: str | None = None) -> tuple[Panel, DatasetRef]:
    """Read a data set into a (step x instrument) panel, checking its content hash."""
    path = Path(path)
    manifest = read_manifest(path)
    digest = content_hash(path)
    if digest != manifest["content_hash"]:
        raise DatasetError(
            f"{path}: content hash {digest} differs from its manifest's {manifest['content_hash']}"
        )
    if expected_hash is not None and digest != expected_hash:
        raise DatasetError(
            f"{path}: content hash {digest} is not the journaled {expected_hash}: "
            "replay refuses to run on different bytes"
        )
    instruments = tuple(
        msgspec.convert(row, Instrument) for row in pq.read_table(path / "instruments.parquet").to_pylist()
    )
    panel = pivot_bars(pq.read_table(path / "bars.parquet"), instruments)
    if (path / "funding.parquet").exists():
        panel = _with_funding(panel, path)
    if (path / "actions.parquet").exists():
        actions = _checked_actions(pq.read_table(path / "actions.parquet"), list(instruments))
        fields: tuple[str, ...] = ACTION_FIELDS
        if _RIGHTS_SCHEMA.names[0] in actions.column_names:
            fields = (*fields, *RIGHTS_FIELDS)
        if _REFORM_SCHEMA.names[0] in actions.column_names:
            fields = (*fields, REFORM_FIELD)
        panel = dataclasses.replace(
            panel,
            **{
                field: actions.column(column).to_numpy().astype(np.int64)
                for field, column in zip(fields, actions.column_names, strict=True)
            },
        )
    if (path / "settlements.parquet").exists():
        settles = _checked_settlements(pq.read_table(path / "settlements.parquet"), list(instruments))
        panel = dataclasses.replace(
            panel,
            settle_day=settles.column("day").to_numpy().astype(np.int64),
            settle_instrument_id=settles.column("instrument_id").to_numpy().astype(np.int64),
            settle_px_raw=settles.column("settle").to_numpy().astype(np.int64),
        )
    if (path / "fx.parquet").exists():
        rows = _checked_fx(pq.read_table(path / "fx.parquet")).to_pylist()
        panel = dataclasses.replace(panel, fx_rates=tuple(FxRate(**row) for row in rows))
    panel = _later_tables(path, panel, list(instruments))
    ref = DatasetRef(str(path), digest, str(manifest["frequency"]), str(manifest["calendar"]))
    return panel, ref


def _in_schema(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """``table``'s columns of ``schema``, cast to it: every column there, no nulls, castable;
    a ``DatasetError`` naming the table (``what``) and the problem otherwise."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise DatasetError(f"{what}: missing columns {missing}")
    nulls = [name for name in schema.names if table.column(name).null_count]
    if nulls:
        raise DatasetError(f"{what}: null values in {nulls}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DatasetError(f"{what}: {error}") from None


def _checked_fx(fx: pa.Table) -> pa.Table:
    """The fx table in contract form, sorted by (day, currency, base): no nulls, known
    currencies, positive rates, one row per (day, currency, base)."""
    fx = _in_schema(fx, _FX_SCHEMA, "fx")
    fx = fx.sort_by([("day", "ascending"), ("currency", "ascending"), ("base", "ascending")])
    rows = [FxRate(**row) for row in fx.to_pylist()]
    try:
        for base in sorted({row.base for row in rows}):
            FxTable(base, rows, stale_days_max=0)  # checks each row and duplicates
    except (FxError, ValueError) as error:
        raise DatasetError(str(error)) from None
    return fx


def _checked_margins(margins: pa.Table, instruments: list[Instrument]) -> pa.Table:
    """The margins table in contract form, sorted by (instrument_id, since): no nulls, a known
    daily-settled future, a real date, one row per (instrument, since), one pair per row with
    0 < maintenance <= initial (<= 1e8 for a share of notional)."""
    margins = _in_schema(margins, _MARGIN_SCHEMA, "margins")
    margins = margins.sort_by([("instrument_id", "ascending"), ("since", "ascending")])
    by_id = {inst.instrument_id: inst for inst in instruments}
    seen: set[tuple[int, int]] = set()
    for row in margins.to_pylist():
        inst = by_id.get(row["instrument_id"])
        if inst is None:
            raise DatasetError(
                f"margins: instrument_id {row['instrument_id']} is not in the instrument master"
            )
        where = f"margins: {inst.symbol} since {row['since']}"
        if not is_daily_settled(inst):
            raise DatasetError(f"{where}: asset_class {inst.asset_class!r} is not a daily-settled future")
        _real_day(row["since"], where)
        key = (row["instrument_id"], row["since"])
        if key in seen:
            raise DatasetError(f"{where}: two rows on one day")
        seen.add(key)
        _margin_pair(row, where)
    return margins


def _later_tables(path: Path, panel: Panel, instruments: list[Instrument]) -> Panel:
    """The futures margin rows, delisting dates and supplied holidays of a data set that has them."""
    if (path / "margins.parquet").exists():
        rows = _checked_margins(pq.read_table(path / "margins.parquet"), instruments).to_pylist()
        panel = dataclasses.replace(panel, margin_rows=tuple(MarginRow(**row) for row in rows))
    if (path / "delistings.parquet").exists():
        table = _checked_delistings(pq.read_table(path / "delistings.parquet"), instruments, None)
        pairs = zip(
            table.column("instrument_id").to_pylist(), table.column("last_day").to_pylist(), strict=True
        )
        panel = dataclasses.replace(panel, delistings=tuple((int(i), int(d)) for i, d in pairs))
    if (path / "holidays.parquet").exists():
        panel = dataclasses.replace(panel, holidays=_read_holidays(pq.read_table(path / "holidays.parquet")))
    return panel


def _checked_delistings(table: pa.Table, instruments: list[Instrument], bars: pa.Table | None) -> pa.Table:
    """The delistings table in contract form, sorted by instrument: no nulls, a known
    instrument once, a real date, and (when written) no bar of the instrument after it."""
    table = _in_schema(table, _DELISTING_SCHEMA, "delistings")
    table = table.sort_by([("instrument_id", "ascending")])
    by_id = {inst.instrument_id: inst for inst in instruments}
    ids = table.column("instrument_id").to_pylist()
    if len(set(ids)) != len(ids):
        raise DatasetError("delistings: an instrument has two rows")
    for iid, day in zip(ids, table.column("last_day").to_pylist(), strict=True):
        inst = by_id.get(iid)
        if inst is None:
            raise DatasetError(f"delistings: instrument_id {iid} is not in the instrument master")
        _real_day(day, f"delistings: {inst.symbol}")
        if bars is not None:
            own = pa.compute.equal(bars.column("instrument_id"), iid)
            mask = pa.compute.and_(own, pa.compute.greater(bars.column("day"), day))
            after = int(pa.compute.sum(mask).as_py() or 0)
            if after:
                raise DatasetError(f"delistings: {inst.symbol} has {after} bar(s) after its last day {day}")
    return table


def _real_day(day: int, where: str) -> None:
    try:
        date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        raise DatasetError(f"{where}: {day} is not a YYYYMMDD date") from None


def _margin_pair(row: dict[str, int], where: str) -> None:
    share = (row["initial_e8"], row["maintenance_e8"])
    money = (row["initial_minor"], row["maintenance_minor"])
    if any(share) == any(money):
        raise DatasetError(
            f"{where}: give initial_e8 and maintenance_e8 (a share of notional) or initial_minor and "
            "maintenance_minor (per contract), one pair, the other zero"
        )
    initial, maintenance = share if any(share) else money
    if not 0 < maintenance <= initial or (any(share) and initial > 100_000_000):
        raise DatasetError(
            f"{where}: need 0 < maintenance ({maintenance}) <= initial ({initial})"
            + (" <= 1e8" if any(share) else "")
        )


def _checked_settlements(settles: pa.Table, instruments: list[Instrument]) -> pa.Table:
    """The settlements table in contract form, sorted by (day, instrument_id): no nulls, one
    row per (day, instrument), a known daily-settled future, a positive price on its tick."""
    settles = _in_schema(settles, _SETTLEMENT_SCHEMA, "settlements")
    settles = settles.sort_by([("day", "ascending"), ("instrument_id", "ascending")])
    by_id = {inst.instrument_id: inst for inst in instruments}
    seen: set[tuple[int, int]] = set()
    for row in settles.to_pylist():
        key = (row["day"], row["instrument_id"])
        inst = by_id.get(row["instrument_id"])
        if inst is None:
            raise DatasetError(
                f"settlements: instrument_id {row['instrument_id']} is not in the instrument master"
            )
        if not is_daily_settled(inst):
            raise DatasetError(
                f"settlements: {inst.symbol} is asset_class {inst.asset_class!r}, not a daily-settled future"
            )
        if key in seen:
            raise DatasetError(f"settlements: two rows for {inst.symbol} on {key[0]}")
        seen.add(key)
        if row["settle"] <= 0 or row["settle"] % inst.tick_raw:
            raise DatasetError(
                f"settlements: {inst.symbol} on {key[0]}: settle {row['settle']} is not a positive "
                f"multiple of tick_raw {inst.tick_raw}"
            )
    return settles


def actions_table(actions: list[CorporateAction]) -> pa.Table:
    """Rows in contract form for ``write_dataset``; the rights columns only when a row has a
    rights issue, the reform flag only when a row is a share-structure reform (a set without
    them writes, and hashes, as before they existed)."""
    schema = _ACTION_SCHEMA
    if any(action.rights for action in actions):
        schema = pa.schema([*schema, *_RIGHTS_SCHEMA])
    if any(action.reform for action in actions):
        schema = pa.schema([*schema, *_REFORM_SCHEMA])
    names = [name.replace("_date", "_day") for name in schema.names]
    return pa.table(
        {
            column: [getattr(a, name) for a in actions]
            for column, name in zip(schema.names, names, strict=True)
        },
        schema=schema,
    )


def _checked_actions(actions: pa.Table, instruments: list[Instrument]) -> pa.Table:
    """The actions table in contract form, sorted by (ex_date, instrument_id); every row is
    checked as a ``CorporateAction`` and must name a known instrument."""
    schema = _ACTION_SCHEMA
    rights = [name for name in _RIGHTS_SCHEMA.names if name in actions.column_names]
    if rights:
        schema = pa.schema([*schema, *_RIGHTS_SCHEMA])
    if _REFORM_SCHEMA.names[0] in actions.column_names:
        schema = pa.schema([*schema, *_REFORM_SCHEMA])
    missing = [name for name in schema.names if name not in actions.column_names]
    if missing:
        hint = " (the rights columns go together)" if rights and len(rights) < len(_RIGHTS_SCHEMA) else ""
        raise DatasetError(f"actions: missing columns {missing}{hint}")
    nulls = [name for name in schema.names if actions.column(name).null_count]
    if nulls:
        raise DatasetError(
            f"actions: null values in {nulls} (use pay_date 0 for 'cash on the ex-date', "
            "rights_to 0 / rights_from 1 / rights_price_e8 0 for 'no rights')"
        )
    try:
        actions = actions.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DatasetError(f"actions: {error}") from None
    actions = actions.sort_by([("ex_date", "ascending"), ("instrument_id", "ascending")])
    known = {inst.instrument_id for inst in instruments}
    seen: set[tuple[int, int]] = set()
    for row in actions.to_pylist():
        key = (row["instrument_id"], row["ex_date"])
        if row["instrument_id"] not in known:
            raise DatasetError(
                f"actions: instrument_id {row['instrument_id']} is not in the instrument master"
            )
        if key in seen:
            raise DatasetError(f"actions: two rows for instrument {key[0]} on {key[1]}; merge them into one")
        seen.add(key)
        try:
            CorporateAction(
                instrument_id=row["instrument_id"],
                ex_day=row["ex_date"],
                pay_day=row["pay_date"],
                cash_e8=row["cash_e8"],
                split_to=row["split_to"],
                split_from=row["split_from"],
                rights_to=row.get("rights_to", 0),
                rights_from=row.get("rights_from", 1),
                rights_price_e8=row.get("rights_price_e8", 0),
                reform=row.get("reform", False),
            )
        except ValueError as error:
            raise DatasetError(f"actions: {error}") from None
    return actions


def pivot_bars(bars: pa.Table, instruments: tuple[Instrument, ...]) -> Panel:
    """Long bars (one row per instrument and step) as a panel over ``instruments``."""
    ts = bars.column("ts_ns").to_numpy()
    steps, row_step = np.unique(ts, return_inverse=True)
    ids = np.array([inst.instrument_id for inst in instruments], dtype=np.int64)
    order = np.argsort(ids)
    bar_ids = bars.column("instrument_id").to_numpy().astype(np.int64)
    position = np.searchsorted(ids[order], bar_ids)
    if np.any(position >= len(ids)) or np.any(ids[order][np.minimum(position, len(ids) - 1)] != bar_ids):
        raise DatasetError("bars reference instruments missing from the instrument master")
    row_col = order[position]
    shape = (len(steps), len(instruments))
    fields = {}
    for name in ("open", "high", "low", "close", "volume"):
        array = np.zeros(shape, dtype=np.int64)
        array[row_step, row_col] = bars.column(name).to_numpy()
        fields[name] = array
    valid = np.zeros(shape, dtype=np.bool_)
    valid[row_step, row_col] = True
    day = np.zeros(len(steps), dtype=np.int64)
    day[row_step] = bars.column("day").to_numpy()
    return Panel(
        ts_ns=steps.astype(np.int64),
        day=day,
        instruments=instruments,
        open=fields["open"],
        high=fields["high"],
        low=fields["low"],
        close=fields["close"],
        volume=fields["volume"],
        valid=valid,
        last_close=Panel.carry_forward(fields["close"], valid),
    )
