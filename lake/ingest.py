"""Ingest: parse every file, validate, quarantine, then commit the lot in one staged write.

Each file's report states ``rows_in = accepted + quarantined + already_stored`` (asserted). If
any file cannot be parsed at all, ``IngestError`` names it and the line, and the lake is left
unchanged: nothing is written until every file has parsed.

Re-ingesting what the lake holds is a no-op: a row identical to a stored row (or to one an
earlier file of the same ingest stages), and a rejection the lake's quarantine already holds
(same instrument, timestamp, reason and input record), count as ``already_stored``, neither
stored again nor quarantined again. An ingest that adds no row, no rejection and no instrument
writes nothing: no new version, no report, the same content hash (``IngestReport.unchanged``).
A row with a stored key but other values is still quarantined as ``duplicate`` (the stored row
stays the truth), which is a change: a new version whose quarantine file records it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from domain.instruments import Instrument
from lake.health import GapReport, declared_calendars, find_gaps
from lake.partitioned import Lake, LakeError
from lake.schema import BAR_FREQUENCIES, QUARANTINE, SCHEMAS, Kind
from lake.sessions import known_calendar, sessions_around, sessions_for, utc_days
from lake.sources import DIGITS_MAX, IngestError, Parsed
from lake.validate import (
    BarInput,
    Reason,
    Validated,
    validate_bars,
    validate_funding,
    validate_quotes,
    validate_trades,
)

if TYPE_CHECKING:
    from domain.markets import HolidayYears

__all__ = ["FileReport", "IngestReport", "IngestError", "ingest"]

Parser = Callable[[Path], Parsed]


@dataclass
class FileReport:
    source: str
    kind: str
    frequency: str | None
    symbols: list[str]
    rows_in: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    ignored_columns: list[str] = field(default_factory=list)
    suspension_sessions: int = 0  # calendar sessions with no bar between the file's first and last bar
    missing_bars: int = 0  # bars missing inside sessions that have some bars
    suspension_days: list[int] = field(default_factory=list)  # the first few, per lake.health.LISTED
    snapped: int = 0  # prices snapped onto the grid in accepted rows (Parsed.snap_within)
    # Rows the lake already held as they are: stored identically, or the same rejection in its
    # quarantine (``already_quarantined`` of them). Neither stored nor quarantined again.
    already_stored: int = 0
    already_quarantined: int = 0
    calendar: str | None = None  # the calendar the file was checked against (lake.health reads it)

    def __post_init__(self) -> None:
        if self.rows_in != self.accepted + self.quarantined + self.already_stored:
            raise AssertionError(
                f"{self.source}: in {self.rows_in} != {self.accepted} + {self.quarantined} "
                f"+ {self.already_stored} already stored"
            )
        if not 0 <= self.already_quarantined <= self.already_stored:
            raise AssertionError(f"{self.source}: {self.already_quarantined} already quarantined of "
                                 f"{self.already_stored} already stored")  # fmt: skip


@dataclass
class IngestReport:
    lake: str
    content_hash: str
    files: list[FileReport]
    unchanged: bool = False  # nothing new: no version, no report written, the same content hash

    @property
    def rows_in(self) -> int:
        return sum(report.rows_in for report in self.files)

    @property
    def accepted(self) -> int:
        return sum(report.accepted for report in self.files)

    @property
    def quarantined(self) -> int:
        return sum(report.quarantined for report in self.files)

    @property
    def already_stored(self) -> int:
        return sum(report.already_stored for report in self.files)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


Rejection = tuple[int, int | None, str, str]
"""A quarantined row's identity: (instrument_id, ts_ns, reason, record). Not its source file,
line or detail: the same input row rejected for the same reason, from wherever it came."""


@dataclass
class _Staged:
    changes: list[tuple[Kind, str | None, pa.Table]] = field(default_factory=list)
    quarantine: list[pa.Table] = field(default_factory=list)
    reports: list[FileReport] = field(default_factory=list)
    # per (kind, frequency, instrument): the rows earlier files of this ingest stage
    pending: dict[tuple[Kind, str | None, int], list[pa.Table]] = field(default_factory=dict)
    trade_rows: dict[int, dict[object, tuple[object, ...]]] = field(default_factory=dict)  # per instrument
    action_rows: dict[tuple[int, int], tuple[object, ...]] = field(default_factory=dict)  # earlier files
    held: Counter[Rejection] = field(default_factory=Counter)  # rejections held: copies per identity
    held_loaded: set[int] = field(default_factory=set)  # instruments whose stored rejections are in held
    priced: set[int] = field(default_factory=set)  # instruments this ingest stages prices for
    holidays: HolidayYears | None = None  # XSHG's years past exchange_calendars' (--holidays)
    stored_quarantine: pa.Table | None = None  # the lake's quarantine (identity columns), read once


def ingest(
    lake_root: Path,
    paths: Sequence[Path],
    parser: Parser,
    *,
    progress: Callable[[str, int], None] | None = None,
    check_exists: bool = True,
    holidays: HolidayYears | None = None,
) -> IngestReport:
    """Parse, validate and commit ``paths`` into the lake at ``lake_root``; ``holidays``:
    XSHG's years past exchange_calendars' (``tape ingest --holidays``), for the session check
    and the gap report."""
    lake = Lake(lake_root)
    parsed_files = []
    for path in paths:
        if check_exists and not Path(path).exists():
            raise IngestError(f"{path}:0: no such file")
        parsed = parser(Path(path))
        _check_parsed(parsed)
        parsed_files.append(parsed)
    known = before = lake.instruments()
    _check_calendars(lake, known, parsed_files)
    staged = _Staged(holidays=holidays)
    for parsed in parsed_files:
        try:
            known = _stage_file(lake, parsed, known, staged)
        except LakeError as error:  # name the file that could not be staged, once
            if parsed.source in str(error):
                raise
            raise LakeError(f"{parsed.source}: {error}") from None
        if progress is not None:
            progress(parsed.source, staged.reports[-1].rows_in)
    quarantine = pa.concat_tables(staged.quarantine) if staged.quarantine else None
    new_rows = any(table.num_rows for _, _, table in staged.changes)
    rejected = quarantine is not None and quarantine.num_rows > 0
    if (lake_root / "lake.json").exists() and not new_rows and not rejected and known == before:
        return IngestReport(str(lake_root), lake.content_hash, staged.reports, unchanged=True)
    digest = lake.commit(staged.changes, instruments=known, quarantine=quarantine)
    report = IngestReport(str(lake_root), digest, staged.reports)
    _write_report(lake, report)
    return report


def _check_parsed(parsed: Parsed) -> None:
    """What the options of a parse declare, checked before anything is staged: a bar frequency
    the lake stores, a calendar that exists, digits the lake can hold. (An unknown calendar or
    frequency stopped ``tape ingest`` with an internal error; ``--price-digits -1`` or ``99`` and
    ``--qty-digits -3`` were stored in the instrument master.)"""
    if parsed.bars and parsed.frequency not in BAR_FREQUENCIES:
        known = ", ".join(BAR_FREQUENCIES)
        raise IngestError(f"{parsed.source}: unknown bar frequency {parsed.frequency!r}; one of {known}")
    if parsed.calendar and not known_calendar(parsed.calendar):
        raise IngestError(
            f"{parsed.source}: unknown calendar {parsed.calendar!r} (an exchange_calendars code such as "
            "XNYS or XSHG, or 24x7)"
        )
    templates = [item[0] for item in (*parsed.bars, *parsed.funding, *parsed.trades, *parsed.quotes)]
    for template in templates:
        for name in ("price_digits", "qty_digits"):
            digits = getattr(template, name)
            if not 0 <= digits <= DIGITS_MAX:
                raise IngestError(
                    f"{parsed.source}: {template.symbol}: {name} must be 0 to {DIGITS_MAX}, not {digits}"
                )


def _check_calendars(lake: Lake, known: list[Instrument], parsed_files: list[Parsed]) -> None:
    """An instrument's bars are ingested on one calendar. A daily bar is stamped at its
    calendar's session close, so the same days ingested again on another calendar got other
    times, were not found among the stored rows and were stored a second time (YHOO's 1996-2015
    file on XSHG over its XNYS bars: 4,625 days twice); and the later report's calendar became
    the one the instrument is checked on. Refused before anything is staged, naming both."""
    if not (lake.root / "lake.json").exists():
        return
    names = {inst.instrument_id: f"{inst.venue}:{inst.symbol}" for inst in known}
    try:
        earlier = declared_calendars(lake)
    except LakeError:  # a damaged report: the ingest goes on, its health line names the report
        return
    declared = {names[iid]: calendar for iid, calendar in earlier.items() if iid in names}
    for parsed in parsed_files:
        if not parsed.calendar:
            continue
        for template, _bars in parsed.bars:
            name = f"{template.venue}:{template.symbol}"
            held = declared.setdefault(name, parsed.calendar)
            if held.upper() != parsed.calendar.upper():
                raise IngestError(
                    f"{parsed.source}: {name} was ingested on the {held} calendar; its bars on "
                    f"{parsed.calendar} would be stamped at another session close and each day stored "
                    f"twice. Ingest it on {held} (--calendar {held}), or into another lake; nothing ingested"
                )


def _write_report(lake: Lake, report: IngestReport) -> None:
    folder = lake.root / "reports"
    folder.mkdir(exist_ok=True)
    version = int(lake.manifest()["version"])
    target = folder / f"ingest-{version:06d}.json"
    temp = target.with_suffix(".json.tmp")  # whole or absent: an interrupted write left half a report
    temp.write_text(report.to_json() + "\n")
    os.replace(temp, target)


def _stage_file(lake: Lake, parsed: Parsed, known: list[Instrument], staged: _Staged) -> list[Instrument]:
    results: list[tuple[Instrument, Validated]] = []
    gaps: list[GapReport] = []
    kind = Kind.BARS
    for template, bars in parsed.bars:
        instrument, known = lake.resolve(template, known, staged_prices=staged.priced)
        staged.priced.add(instrument.instrument_id)
        validated = _validate_bars(parsed, instrument, bars, staged.holidays)
        gaps.append(_gaps(parsed, validated, staged.holidays))
        results.append((instrument, _dedupe(lake, staged, parsed, Kind.BARS, instrument, validated)))
    for template, funding in parsed.funding:
        kind = Kind.FUNDING_RATES
        instrument, known = lake.resolve(template, known, prices=False)  # rates: no price digits
        validated = validate_funding(replace(funding, instrument_id=instrument.instrument_id))
        results.append((instrument, _dedupe(lake, staged, parsed, kind, instrument, validated)))
    for template, trades in parsed.trades:
        kind = Kind.TRADES
        instrument, known = lake.resolve(template, known, staged_prices=staged.priced)
        staged.priced.add(instrument.instrument_id)
        validated = validate_trades(
            replace(trades, instrument_id=instrument.instrument_id),
            price_digits=instrument.price_digits,
            qty_digits=instrument.qty_digits,
        )
        results.append((instrument, _dedupe_trades(lake, staged, parsed, instrument, validated)))
    for template, quotes in parsed.quotes:
        kind = Kind.QUOTES
        instrument, known = lake.resolve(template, known, staged_prices=staged.priced)
        staged.priced.add(instrument.instrument_id)
        validated = validate_quotes(
            replace(quotes, instrument_id=instrument.instrument_id),
            price_digits=instrument.price_digits,
            qty_digits=instrument.qty_digits,
        )
        results.append((instrument, _dedupe(lake, staged, parsed, kind, instrument, validated)))
    if parsed.actions:
        kind = Kind.CORPORATE_ACTIONS
        known = _stage_actions(lake, parsed, known, staged)
    results = [(instrument, _drop_held(lake, staged, validated)) for instrument, validated in results]
    for _instrument, validated in results:
        staged.changes.append((kind, parsed.frequency if kind is Kind.BARS else None, validated.accepted))
        staged.quarantine.append(validated.quarantine)
        staged.held.update(_rejections(validated.quarantine))
    if results:
        report = _file_report(parsed, kind, results)
        total = GapReport()
        for gap in gaps:
            total.add(gap)
        report.suspension_sessions, report.missing_bars = total.suspension_sessions, total.missing_bars
        report.suspension_days = total.suspension_days
        staged.reports.append(report)
    return known


def _gaps(parsed: Parsed, validated: Validated, holidays: HolidayYears | None) -> GapReport:
    """Gaps of one instrument's accepted bars against the file's calendar."""
    ts = validated.accepted.column("ts_ns").to_numpy()
    if len(ts) == 0 or not parsed.calendar or parsed.frequency is None:
        return GapReport()
    days = utc_days(np.array([ts[0], ts[-1]]))
    sessions = sessions_around(parsed.calendar, int(days[0]), int(days[1]), holidays)
    return find_gaps(ts, sessions, parsed.frequency)


def _validate_bars(
    parsed: Parsed, instrument: Instrument, bars: BarInput, holidays: HolidayYears | None
) -> Validated:
    bars = _with_id(bars, instrument.instrument_id)
    sessions = None
    if parsed.calendar and len(bars):
        days = bars.day[bars.day > 0] if bars.daily else None
        if bars.daily and days is not None and len(days):
            sessions = sessions_for(parsed.calendar, int(days.min()), int(days.max()), holidays)
        elif not bars.daily:
            sessions = _intraday_sessions(parsed.calendar, bars, holidays)
    return validate_bars(
        bars,
        price_digits=instrument.price_digits,
        qty_digits=instrument.qty_digits,
        sessions=sessions,
        snap_within=parsed.snap_within,
    )


def _intraday_sessions(calendar: str, bars: BarInput, holidays: HolidayYears | None) -> object:
    from lake.validate import MISSING_TS

    stamps = bars.ts_ns[bars.ts_ns != MISSING_TS]
    if len(stamps) == 0:
        return None
    days = utc_days(np.array([stamps.min(), stamps.max()]))
    # A day either side, as calendar days: 20140228 + 1 is 20140301, not the date 20140229.
    return sessions_around(calendar, int(days[0]), int(days[1]), holidays)


def _with_id(bars: BarInput, instrument_id: int) -> BarInput:
    return replace(bars, instrument_id=instrument_id)


def _dedupe(
    lake: Lake, staged: _Staged, parsed: Parsed, kind: Kind, instrument: Instrument, validated: Validated
) -> Validated:
    """A row whose timestamp the lake (or an earlier file of this ingest) already holds is
    *already stored* when every column equals the held row, else it moves to quarantine as
    ``duplicate``: the held row stays the truth."""
    accepted = validated.accepted
    frequency = parsed.frequency if kind is Kind.BARS else None
    earlier = staged.pending.setdefault((kind, frequency, instrument.instrument_id), [])
    if accepted.num_rows == 0:
        return validated
    ts = accepted.column("ts_ns").to_numpy()
    stored = lake.read(
        kind,
        frequency,
        instrument_ids=[instrument.instrument_id],
        start_ns=int(ts.min()),
        end_ns=int(ts.max()),
    )
    held = [table.select(accepted.column_names).cast(accepted.schema) for table in (stored, *earlier)]
    identical, conflict = _match_held(accepted, pa.concat_tables(held))
    result = _settle(
        parsed, instrument, validated, identical, conflict, "timestamp already stored in the lake"
    )
    earlier.append(result.accepted)
    return result


def _match_held(rows: pa.Table, held: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``rows``: (a held row has its timestamp and equals it in every column, one has
    its timestamp and differs). ``held`` holds one row per timestamp (the lake's key)."""
    none = np.zeros(rows.num_rows, dtype=np.bool_)
    if held.num_rows == 0:
        return none, none
    held_ts = held.column("ts_ns").to_numpy()
    order = np.argsort(held_ts, kind="stable")
    ts = rows.column("ts_ns").to_numpy()
    at = np.minimum(np.searchsorted(held_ts[order], ts), len(order) - 1)
    clash = held_ts[order][at] == ts
    same = clash.copy()
    take = pa.array(order[at])
    for name in rows.column_names:
        mine, theirs = rows.column(name), held.column(name).take(take)
        equal = pc.or_(
            pc.fill_null(pc.equal(mine, theirs), False), pc.and_(pc.is_null(mine), pc.is_null(theirs))
        )
        same &= equal.to_numpy(zero_copy_only=False).astype(np.bool_)
    return same, clash & ~same


def _trade_keys(table: pa.Table) -> list[object]:
    """A trade's identity: its id, or for a trade without one the whole row."""
    columns = [table.column(name).to_pylist() for name in ("trade_id", "ts_ns", "price", "qty", "side")]
    return [
        trade_id if trade_id is not None else (ts, price, qty, side)
        for trade_id, ts, price, qty, side in zip(*columns, strict=True)
    ]


def _trade_values(table: pa.Table) -> list[tuple[object, ...]]:
    columns = [table.column(name).to_pylist() for name in ("ts_ns", "price", "qty", "side")]
    return list(zip(*columns, strict=True))


def _dedupe_trades(
    lake: Lake, staged: _Staged, parsed: Parsed, instrument: Instrument, validated: Validated
) -> Validated:
    """A trade whose id (or, without an id, whose identical row) the lake or an earlier file of
    this ingest already holds is *already stored* when its time, price, size and side are the
    held trade's too, else it moves to quarantine as ``duplicate``."""
    accepted = validated.accepted
    earlier = staged.trade_rows.setdefault(instrument.instrument_id, {})
    if accepted.num_rows == 0:
        return validated
    ts = accepted.column("ts_ns").to_numpy()
    stored = lake.read(
        Kind.TRADES, instrument_ids=[instrument.instrument_id], start_ns=int(ts.min()), end_ns=int(ts.max())
    )
    known = dict(zip(_trade_keys(stored), _trade_values(stored), strict=True)) | earlier
    keys, values = _trade_keys(accepted), _trade_values(accepted)
    held = [known.get(key) for key in keys]
    identical = np.array(
        [h is not None and h == v for h, v in zip(held, values, strict=True)], dtype=np.bool_
    )
    conflict = np.array([h is not None and h != v for h, v in zip(held, values, strict=True)], dtype=np.bool_)
    for key, value, new in zip(keys, values, ~(identical | conflict), strict=True):
        if new:
            earlier[key] = value
    return _settle(parsed, instrument, validated, identical, conflict, "trade already stored in the lake")


def _settle(
    parsed: Parsed,
    instrument: Instrument,
    validated: Validated,
    identical: np.ndarray,
    conflict: np.ndarray,
    what: str,
) -> Validated:
    """Accepted rows the lake already holds: ``identical`` ones are counted as already stored
    and dropped, ``conflict`` ones move to quarantine as ``duplicate``."""
    if not (identical.any() or conflict.any()):
        return validated
    ts = validated.accepted.column("ts_ns").to_numpy()
    rows = np.flatnonzero(conflict)
    moved = pa.table(
        {
            "source": [parsed.source] * len(rows),
            "line": validated.accepted_line[rows],
            "instrument_id": np.full(len(rows), instrument.instrument_id, dtype=np.int32),
            "ts_ns": ts[rows],
            "reason": [Reason.DUPLICATE.value] * len(rows),
            "detail": [f"{what} (stored row kept)"] * len(rows),
            "record": [json.dumps(row) for row in validated.accepted.take(pa.array(rows)).to_pylist()],
        },
        schema=QUARANTINE,
    )
    kept = ~(identical | conflict)
    return replace(
        validated,
        accepted=validated.accepted.take(pa.array(np.flatnonzero(kept))),
        accepted_line=validated.accepted_line[kept],
        quarantine=pa.concat_tables([validated.quarantine, moved]),
        already_stored=validated.already_stored + int(identical.sum()),
    )


_REJECTION = pa.schema([QUARANTINE.field(name) for name in ("instrument_id", "ts_ns", "reason", "record")])


def _rejections(quarantine: pa.Table) -> list[Rejection]:
    columns = [quarantine.column(name).to_pylist() for name in _REJECTION.names]
    return list(zip(*columns, strict=True))


def _held_mask(lake: Lake, staged: _Staged, quarantine: pa.Table) -> np.ndarray:
    """Rows of ``quarantine`` whose rejection the lake's quarantine (or an earlier file of this
    ingest) already holds: up to as many copies of a rejection as are held."""
    mask = np.zeros(quarantine.num_rows, dtype=np.bool_)
    if quarantine.num_rows == 0:
        return mask
    wanted = set(quarantine.column("instrument_id").to_pylist()) - staged.held_loaded
    if wanted:
        if staged.stored_quarantine is None:
            parts = [pq.read_table(lake.root / relpath, columns=_REJECTION.names).cast(_REJECTION)
                     for relpath in sorted(lake.files) if relpath.startswith("quarantine/")]  # fmt: skip
            staged.stored_quarantine = pa.concat_tables(parts) if parts else _REJECTION.empty_table()
        stored = staged.stored_quarantine
        mine = stored.filter(pc.is_in(stored.column("instrument_id"), pa.array(sorted(wanted), pa.int32())))
        staged.held.update(_rejections(mine))
        staged.held_loaded |= wanted
    left = {key: staged.held[key] for key in set(_rejections(quarantine))}
    for index, key in enumerate(_rejections(quarantine)):
        if left[key] > 0:
            mask[index] = True
            left[key] -= 1
    return mask


def _drop_held(lake: Lake, staged: _Staged, validated: Validated) -> Validated:
    """``validated`` without the rejections the lake already holds, counted as already stored."""
    held = _held_mask(lake, staged, validated.quarantine)
    if not held.any():
        return validated
    count = int(held.sum())
    return replace(
        validated,
        quarantine=validated.quarantine.filter(pa.array(~held)),
        already_stored=validated.already_stored + count,
        already_quarantined=validated.already_quarantined + count,
    )


def _stage_actions(lake: Lake, parsed: Parsed, known: list[Instrument], staged: _Staged) -> list[Instrument]:
    tables = []
    rows_in = 0
    for template, columns in parsed.actions:
        instrument, known = lake.resolve(template, known, staged_prices=staged.priced)
        staged.priced.add(instrument.instrument_id)  # the rights price is at its digits
        rows_in += len(columns["line"])
        table = pa.table({name: values for name, values in columns.items() if name != "line"})
        tables.append(
            table.append_column(
                "instrument_id", pa.array(np.full(table.num_rows, instrument.instrument_id), pa.int32())
            )
        )
    actions = pa.concat_tables(tables) if tables else pa.table({})
    stored = lake.read(Kind.CORPORATE_ACTIONS)
    held = dict(zip(_action_keys(stored), _action_values(stored), strict=True)) | staged.action_rows
    keys, values = _action_keys(actions), _action_values(actions)
    seen: set[tuple[int, int]] = set()
    fresh = np.zeros(len(keys), dtype=np.bool_)
    already = np.zeros(len(keys), dtype=np.bool_)
    for index, key in enumerate(keys):
        new = key[1] > 0 and key not in seen
        already[index] = new and held.get(key) == values[index]
        fresh[index] = new and key not in held
        seen.add(key)
        if fresh[index]:
            staged.action_rows[key] = values[index]
    lines = np.concatenate([columns["line"] for _, columns in parsed.actions])
    bad = np.flatnonzero(~(fresh | already))
    staged.changes.append((Kind.CORPORATE_ACTIONS, None, actions.filter(pa.array(fresh))))
    quarantine = pa.table(
        {
            "source": [parsed.source] * len(bad),
            "line": lines[bad],
            "instrument_id": actions.column("instrument_id").take(pa.array(bad)),
            "ts_ns": pa.nulls(len(bad), pa.int64()),
            "reason": [Reason.DUPLICATE.value if keys[i][1] > 0 else Reason.MISSING_VALUE.value for i in bad],
            "detail": [
                "(instrument, ex_date) already present" if keys[i][1] > 0 else "no ex-date" for i in bad
            ],
            "record": [json.dumps(row) for row in actions.take(pa.array(bad)).to_pylist()],
        },
        schema=QUARANTINE,
    )
    held_rejections = _held_mask(lake, staged, quarantine)
    quarantine = quarantine.filter(pa.array(~held_rejections))
    staged.quarantine.append(quarantine)
    staged.held.update(_rejections(quarantine))
    reasons = Counter(quarantine.column("reason").to_pylist())
    staged.reports.append(
        FileReport(
            parsed.source,
            str(Kind.CORPORATE_ACTIONS),
            None,
            [f"{len(parsed.actions)} instruments"],
            rows_in,
            int(fresh.sum()),
            quarantine.num_rows,
            dict(sorted(reasons.items())),
            already_stored=int(already.sum() + held_rejections.sum()),
            already_quarantined=int(held_rejections.sum()),
        )
    )
    return known


_ACTION_VALUES = [
    name for name in SCHEMAS[Kind.CORPORATE_ACTIONS].names if name not in ("instrument_id", "ex_date")
]


def _action_values(table: pa.Table) -> list[tuple[object, ...]]:
    """A corporate action's values besides its key (instrument, ex_date)."""
    if table.num_rows == 0:
        return []
    return list(zip(*(table.column(name).to_pylist() for name in _ACTION_VALUES), strict=True))


def _action_keys(table: pa.Table) -> list[tuple[int, int]]:
    ids = table.column("instrument_id").to_pylist()
    return list(zip(ids, table.column("ex_date").to_pylist(), strict=True))


def _file_report(parsed: Parsed, kind: Kind, results: list[tuple[Instrument, Validated]]) -> FileReport:
    reasons: dict[str, int] = {}
    stamps: list[int] = []
    for _, validated in results:
        for reason, count in validated.reasons().items():
            reasons[reason] = reasons.get(reason, 0) + count
        ts = validated.accepted.column("ts_ns")
        if len(ts):
            stamps += [int(ts[0].as_py()), int(ts[-1].as_py())]
    return FileReport(
        source=parsed.source,
        kind=str(kind),
        frequency=parsed.frequency,
        symbols=[f"{instrument.venue}:{instrument.symbol}" for instrument, _ in results],
        rows_in=sum(validated.rows_in for _, validated in results),
        accepted=sum(validated.rows_accepted for _, validated in results),
        quarantined=sum(validated.rows_quarantined for _, validated in results),
        reasons=dict(sorted(reasons.items())),
        first_ts_ns=min(stamps) if stamps else None,
        last_ts_ns=max(stamps) if stamps else None,
        ignored_columns=parsed.ignored_columns,
        snapped=sum(validated.snapped for _, validated in results),
        already_stored=sum(validated.already_stored for _, validated in results),
        already_quarantined=sum(validated.already_quarantined for _, validated in results),
        calendar=parsed.calendar or None,
    )
