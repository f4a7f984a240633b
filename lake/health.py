"""Gaps against the market calendar and a data-health summary per data set.

A *gap* is judged against the calendar's sessions between an instrument's first and last bar:

* a session with **no bar at all** is a *suspension candidate* (A-share 停牌, a halted listing,
  or a whole day the source lacks: the lake cannot tell which, so it says "candidate");
* a session with **some** bars but fewer than its expected count has *missing bars* (missing
  data inside a trading session).

Expected bars per session: 1 for ``1d``; for intraday frequencies the number of buckets in
the session's segments (``lake.resample`` buckets: an A-share session has 240 one-minute and
4 one-hour bars). The first and last sessions count only from the first bar / up to the last
bar, so data that starts mid-session is not reported as missing. Bars are assumed validated
(inside sessions, unique, on the frequency grid).

*Missing at the end* (``find_end_gap``): a series that stops before **its end** lacks the bars
after its last one. Its end is the data set's last bar on the same calendar (the latest bar of
any instrument of that frequency on that calendar: a US name that stops in 2013 beside others
running to 2014 lacks a year; a crypto series running to 2017 does not make a US name miss
anything), capped at the instrument's delisting day from the lake's metadata reports
(``Lake.delistings``: a delisted name is not missing the sessions after it, only those between
its last bar and its delisting day). Counted apart from the gaps between the first and last
bar (``missing_end_bars``, ``missing_end_sessions``: whole sessions after the last bar's), and
part of the expected bars, so coverage is present / expected bars through the end.

``dataset_health(lake)`` summarises each stored bar data set (one per frequency): instruments,
rows, span, coverage = present / expected bars, suspension candidates, missing bars, and the
quarantined rows by reason from every ingest report. Instruments on a venue without a known
calendar are counted but not gap-checked (``unchecked``). Trades and quotes: ``lake.tick_health``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from domain.instruments import Instrument
from lake.schema import Kind, frequency_ns
from lake.sessions import NO_BREAK, Sessions

if TYPE_CHECKING:
    from domain.markets import HolidayYears

__all__ = [
    "DatasetHealth",
    "GapReport",
    "calendar_for",
    "declared_calendars",
    "dataset_health",
    "find_end_gap",
    "find_gaps",
    "ingest_reports",
    "quarantined_by_dataset",
    "shift_day",
    "venue_calendar",
]

IntArray = npt.NDArray[np.int64]
_CALENDARS = {"SSE": "XSHG", "SZSE": "XSHG", "BSE": "XSHG", "XSHG": "XSHG", "XSHE": "XSHG"}
_CALENDARS |= {name: "XNYS" for name in ("XNYS", "NYSE", "NASDAQ", "XNAS", "ARCA", "BATS", "AMEX")}
LISTED = 10
"""How many suspension days / short sessions a report lists (the counts are complete)."""


def calendar_for(instrument: Instrument) -> str | None:
    """The calendar an instrument trades on, or None when the lake does not know it: crypto
    trades 24x7, a known venue its exchange's calendar, and a venue that is itself a calendar
    code (``XEUR``, ``XLON``) that calendar. (The calendar an ingest declared, ``--calendar``,
    comes first: ``declared_calendars``.)"""
    if instrument.asset_class.startswith("crypto"):
        return "24x7"
    return venue_calendar(instrument.venue)


def venue_calendar(venue: str) -> str | None:
    """The calendar of a venue name: a known venue's exchange calendar (SSE -> XSHG, NASDAQ ->
    XNYS), a venue that is itself a calendar code (``XEUR``) that code, else None."""
    from lake.sessions import known_calendar

    venue = venue.upper()
    if venue in _CALENDARS:
        return _CALENDARS[venue]
    return venue if known_calendar(venue) else None


def declared_calendars(lake: object) -> dict[int, str]:
    """The calendar each instrument's data was ingested on (the file's ``--calendar`` or its
    format's own), by instrument id, from the lake's ingest reports (a later report wins;
    reports written before they recorded it name none). ``tape ingest yahoo --calendar XEUR``
    checked the bars against XEUR, and the data health checks them against it too, not
    "unchecked: no calendar" (or XNYS, the default venue's)."""
    from lake.partitioned import Lake

    assert isinstance(lake, Lake)
    by_name = {f"{inst.venue}:{inst.symbol}": inst.instrument_id for inst in lake.instruments()}
    found: dict[int, str] = {}
    for report in ingest_reports(lake):
        for file in report["files"]:  # type: ignore[attr-defined]
            calendar = file.get("calendar")
            for name in file.get("symbols", []) if calendar else []:
                if name in by_name:
                    found[by_name[name]] = str(calendar)
    return found


@dataclass
class GapReport:
    sessions_expected: int = 0
    sessions_present: int = 0
    bars_expected: int = 0
    bars_present: int = 0
    suspension_sessions: int = 0
    missing_bars: int = 0
    sessions_with_missing_bars: int = 0
    suspension_days: list[int] = field(default_factory=list)  # the first LISTED
    short_sessions: list[tuple[int, int]] = field(default_factory=list)  # (day, bars missing), first LISTED
    missing_end_bars: int = 0  # bars after the last bar up to the series' end (find_end_gap)
    missing_end_sessions: int = 0  # whole sessions after the last bar's, up to the end
    end_day: int = 0  # per instrument: the session the series should reach (0 in a data set's total)
    delisting_day: int = 0  # per instrument: its delisting day from the metadata (0: none)

    @property
    def coverage(self) -> float:
        return self.bars_present / self.bars_expected if self.bars_expected else 1.0

    def add(self, other: GapReport) -> None:
        for name in (
            "sessions_expected",
            "sessions_present",
            "bars_expected",
            "bars_present",
            "suspension_sessions",
            "missing_bars",
            "sessions_with_missing_bars",
            "missing_end_bars",
            "missing_end_sessions",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.suspension_days = (self.suspension_days + other.suspension_days)[:LISTED]
        self.short_sessions = (self.short_sessions + other.short_sessions)[:LISTED]


def _segments(sessions: Sessions) -> tuple[IntArray, IntArray, IntArray]:
    """(session index, segment open, segment close) of every trading segment."""
    index = np.arange(len(sessions.day), dtype=np.int64)
    has_break = sessions.break_start_ns != NO_BREAK
    morning_close = np.where(has_break, sessions.break_start_ns, sessions.close_ns)
    owner = np.r_[index, index[has_break]]
    opens = np.r_[sessions.open_ns, sessions.break_end_ns[has_break]]
    closes = np.r_[morning_close, sessions.close_ns[has_break]]
    return owner, opens, closes


def _grid(open_ns: int, close_ns: int, step: int) -> IntArray:
    closes = open_ns + np.arange(1, -(-(close_ns - open_ns) // step) + 1, dtype=np.int64) * step
    return np.minimum(closes, close_ns)


def find_gaps(ts_ns: IntArray, sessions: Sessions, frequency: str) -> GapReport:
    """Gaps of one instrument's sorted, validated bar closes against ``sessions``."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) == 0:
        return GapReport()
    first = int(np.searchsorted(sessions.close_ns, ts[0], side="left"))
    last = int(np.searchsorted(sessions.close_ns, ts[-1], side="left"))
    last = min(last, len(sessions.day) - 1)
    chosen = slice(first, last + 1)
    open_ns, close_ns = sessions.open_ns[chosen], sessions.close_ns[chosen]
    present = np.searchsorted(ts, close_ns, side="right") - np.searchsorted(ts, open_ns, side="right")
    if frequency == "1d":
        expected = np.ones(len(open_ns), dtype=np.int64)
    else:
        step = frequency_ns(frequency)
        owner, seg_open, seg_close = _segments(sessions)
        inside = (owner >= first) & (owner <= last)
        counts = -(-(seg_close[inside] - seg_open[inside]) // step)
        expected = np.bincount(owner[inside] - first, weights=counts, minlength=len(open_ns)).astype(np.int64)
        for position, keep in ((0, lambda g: g >= ts[0]), (len(open_ns) - 1, lambda g: g <= ts[-1])):
            session_segments = np.flatnonzero(owner == first + position)
            grid = np.concatenate(
                [_grid(int(seg_open[s]), int(seg_close[s]), step) for s in session_segments]
            )
            edge = grid[keep(grid)]
            if position == len(open_ns) - 1 and len(open_ns) == 1:
                edge = grid[(grid >= ts[0]) & (grid <= ts[-1])]
            expected[position] = len(edge)
    present = np.minimum(present, expected)
    days = sessions.day[chosen]
    empty = (present == 0) & (expected > 0)
    short = (present > 0) & (present < expected)
    return GapReport(
        sessions_expected=len(days),
        sessions_present=int((present > 0).sum()),
        bars_expected=int(expected.sum()),
        bars_present=int(present.sum()),
        suspension_sessions=int(empty.sum()),
        missing_bars=int((expected - present)[short].sum()),
        sessions_with_missing_bars=int(short.sum()),
        suspension_days=[int(d) for d in days[empty][:LISTED]],
        short_sessions=[
            (int(d), int(m))
            for d, m in zip(days[short][:LISTED], (expected - present)[short][:LISTED], strict=True)
        ],
    )


def find_end_gap(
    last_ts_ns: int, end_ts_ns: int, sessions: Sessions, frequency: str, last_day: int = 0
) -> GapReport:
    """The bars and whole sessions a series lacks after its last bar ``last_ts_ns`` up to its
    end ``end_ts_ns`` (the data set's last bar on its calendar), counting only sessions on or
    before ``last_day`` (a delisting day; 0: none). ``1d``: one bar per session; intraday: the
    segment grid points (``lake.resample`` buckets) after the last bar and at or before the end.
    ``end_day`` is the last session counted (the last bar's when nothing is missing)."""
    if len(sessions.day) == 0:
        return GapReport()
    last_index = int(np.searchsorted(sessions.close_ns, last_ts_ns, side="left"))
    end_index = int(np.searchsorted(sessions.close_ns, end_ts_ns, side="left"))
    end_index = min(end_index, len(sessions.day) - 1)
    last_day = last_day or int(sessions.day[-1])
    own_day = int(sessions.day[min(last_index, len(sessions.day) - 1)])
    if end_ts_ns <= last_ts_ns or last_index >= len(sessions.day):
        return GapReport(end_day=own_day)
    after = np.arange(last_index + 1, end_index + 1)
    after = after[sessions.day[after] <= last_day]
    end_day = int(sessions.day[after[-1]]) if len(after) else own_day
    if frequency == "1d":
        return GapReport(
            sessions_expected=len(after),
            bars_expected=len(after),
            missing_end_bars=len(after),
            missing_end_sessions=len(after),
            end_day=end_day,
        )
    step = frequency_ns(frequency)
    owner, seg_open, seg_close = _segments(sessions)
    inside = (owner >= last_index) & (owner <= end_index) & (sessions.day[owner] <= last_day)
    seg_open, seg_close = seg_open[inside], seg_close[inside]
    buckets = -(-(seg_close - seg_open) // step)

    def up_to(ts_ns: int) -> npt.NDArray[np.int64]:  # grid points (open + k x step, clipped) <= ts_ns
        inner = np.clip((ts_ns - seg_open) // step, 0, buckets)
        return np.where(ts_ns >= seg_close, buckets, inner)

    bars = int((up_to(end_ts_ns) - up_to(last_ts_ns)).sum())
    return GapReport(
        sessions_expected=len(after),
        bars_expected=bars,
        missing_end_bars=bars,
        missing_end_sessions=len(after),
        end_day=end_day,
    )


@dataclass
class DatasetHealth:
    """One stored bar data set (``bars`` at one frequency)."""

    dataset: str
    instruments: int
    rows: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    gaps: GapReport
    unchecked_instruments: list[str] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    per_instrument: dict[str, GapReport] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.gaps.coverage

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, object]:
        result = asdict(self)
        result["coverage"] = self.coverage
        return result


def ingest_reports(lake: object) -> list[dict[str, object]]:
    """Every ingest report of ``lake`` (``reports/ingest-VVVVVV.json``), oldest first. One that
    cannot be read (cut short, edited by hand) is a ``LakeError`` naming it, not a JSON
    traceback: the quarantine counts would be wrong without it."""
    from lake.partitioned import Lake, LakeError

    assert isinstance(lake, Lake)
    reports = []
    for path in sorted((lake.root / "reports").glob("ingest-*.json")):
        try:
            report = json.loads(path.read_text())
            files = report["files"]
            assert isinstance(files, list) and all(
                {"kind", "rows_in", "accepted", "reasons"} <= set(file) for file in files
            )
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as error:
            kind = type(error).__name__
            raise LakeError(f"{path}: unreadable ingest report ({kind}: {error or 'not a report'})") from None
        reports.append(report)
    return reports


def quarantined_by_dataset(lake: object) -> dict[str, dict[str, int]]:
    """Quarantined rows by reason per data set, from every ingest report in the lake."""
    totals: dict[str, dict[str, int]] = {}
    for report in ingest_reports(lake):
        for file in report["files"]:  # type: ignore[attr-defined]
            name = file["kind"] + (f"/{file['frequency']}" if file.get("frequency") else "")
            bucket = totals.setdefault(name, {})
            for reason, count in file.get("reasons", {}).items():
                bucket[reason] = bucket.get(reason, 0) + int(count)
    return totals


def dataset_health(
    lake: object, *, calendars: dict[int, str] | None = None, holidays: HolidayYears | None = None
) -> list[DatasetHealth]:
    """Health of every stored bar data set in ``lake`` (a ``lake.partitioned.Lake``), plus
    the stored rows, instruments and quarantine counts of the kinds other than trades and
    quotes (``lake.tick_health`` has those): corporate actions and funding rates.
    ``calendars`` overrides, by id, the calendar the ingest declared (``declared_calendars``),
    which overrides ``calendar_for``. ``holidays``: XSHG's years past exchange_calendars' (an
    operator's file, ``tape health --holidays``)."""
    from lake.partitioned import Lake
    from lake.sessions import sessions_around, utc_days

    assert isinstance(lake, Lake)
    quarantined = quarantined_by_dataset(lake)
    instruments = {i.instrument_id: i for i in lake.instruments()}
    calendars = {**declared_calendars(lake), **(calendars or {})}
    delisted = lake.delistings(list(instruments.values()))
    frequencies = sorted({p.split("/")[1].split("=")[1] for p in lake.files if p.startswith("bars/freq=")})
    results = []
    for frequency in frequencies:
        table = lake.read(Kind.BARS, frequency, columns=["instrument_id", "ts_ns"])
        ids, ts = table.column("instrument_id").to_numpy(), table.column("ts_ns").to_numpy()
        order = np.lexsort((ts, ids))
        ids, ts = ids[order], ts[order]
        total = GapReport()
        health = DatasetHealth(
            f"bars/{frequency}",
            len(np.unique(ids)),
            len(ts),
            int(ts.min()) if len(ts) else None,
            int(ts.max()) if len(ts) else None,
            total,
            quarantined=dict(sorted(quarantined.get(f"bars/{frequency}", {}).items())),
        )
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, dtype=np.int64)
        series = list(zip(starts.tolist(), np.r_[starts[1:], len(ids)].tolist(), strict=True))
        own: dict[int, str | None] = {}
        ends: dict[str, int] = {}  # per calendar: the data set's last bar on it (a series' end)
        for begin, stop in series:
            instrument = instruments.get(int(ids[begin]))
            calendar = calendars.get(int(ids[begin])) or (calendar_for(instrument) if instrument else None)
            own[begin] = calendar
            if calendar is not None:
                ends[calendar] = max(ends.get(calendar, int(ts[stop - 1])), int(ts[stop - 1]))
        for begin, stop in series:
            instrument = instruments.get(int(ids[begin]))
            name = f"{instrument.venue}:{instrument.symbol}" if instrument else f"id {int(ids[begin])}"
            calendar = own[begin]
            if calendar is None:
                health.unchecked_instruments.append(name)
                continue
            stamps = ts[begin:stop]
            days = utc_days(np.array([stamps[0], ends[calendar]]))
            sessions = sessions_around(calendar, int(days[0]), int(days[1]), holidays)
            report = find_gaps(stamps, sessions, frequency)
            delisting = delisted.get(int(ids[begin]), 0)
            end = find_end_gap(int(stamps[-1]), ends[calendar], sessions, frequency, delisting)
            report.add(end)
            report.end_day, report.delisting_day = end.end_day, delisting
            health.per_instrument[name] = report
            total.add(report)
        results.append(health)
    # corporate actions and funding rates: what is stored (instruments, rows, the funding span)
    # and what was quarantined; no calendar check (an ex-date or a funding time is not a bar)
    stored = {
        str(kind): kind for kind in (Kind.CORPORATE_ACTIONS, Kind.FUNDING_RATES) if lake.partitions(kind)
    }
    for name in sorted(set(stored) | {n for n in quarantined if not n.startswith("bars/")}):
        if name in ("trades", "quotes"):  # lake.tick_health has those
            continue
        reasons = dict(sorted(quarantined.get(name, {}).items()))
        if name not in stored:
            results.append(DatasetHealth(name, 0, 0, None, None, GapReport(), quarantined=reasons))
            continue
        kind = stored[name]
        columns = ["instrument_id", "ts_ns"] if kind is Kind.FUNDING_RATES else ["instrument_id"]
        table = lake.read(kind, columns=columns)
        stamps = table.column("ts_ns").to_numpy() if kind is Kind.FUNDING_RATES else np.zeros(0, np.int64)
        results.append(
            DatasetHealth(
                name,
                len(np.unique(table.column("instrument_id").to_numpy())),
                table.num_rows,
                int(stamps.min()) if len(stamps) else None,
                int(stamps.max()) if len(stamps) else None,
                GapReport(),
                quarantined=reasons,
            )
        )
    return results


def shift_day(day: int, days: int) -> int:
    from lake.sessions import yyyymmdd

    index = np.datetime64(f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}", "D").astype(np.int64)
    return int(yyyymmdd(np.array([index + days]))[0])
