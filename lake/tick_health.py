"""Data health of the stored trades (ticks) and quotes: the ``lake.health`` summary for bars,
made for irregular series.

Per data set (``trades``, ``quotes``) and per instrument:

* rows, span (first / last timestamp) and **days with data** (UTC days holding a row);
* **gaps**: the time between consecutive rows of one instrument. A gap counts when it is
  longer than ``gap_ns`` (default ``GAP_NS`` = 1 hour) *inside one session* of the instrument's
  calendar: for a 24x7 (crypto) instrument that is any gap; on an exchange calendar a gap
  across a close is not counted (the closed hours are no gap) and a lunch break's length is
  taken out of a gap spanning it. An instrument without a known calendar (``calendar_for``)
  has every gap counted, and is listed as unchecked for sessions. The largest gaps inside a
  session are kept, above the threshold or not (``LISTED`` of them, longest first, as
  ``(start ts_ns, length ns)``);
* **sessions with no row** between the first and last row's sessions (a 24x7 calendar's
  sessions are UTC days), and the rows outside every session;
* **quarantined rows by reason** summed from the ingest reports, with the reports' ``rows_in``
  and ``already_stored`` (rows a re-ingest found stored, or rejected, as they were):
  ``rows + quarantined + already_stored == ingested`` holds when every stored row came through
  ``ingest`` (the only writer of these kinds), and ``reconciled`` says whether it does.

Crossed (bid > ask) and locked (bid == ask) quotes: ``lake.validate.validate_quotes`` rejects
both, so stored quotes cannot hold them; they are counted in the quarantine as
``crossed_quote`` / ``locked_quote``, nothing more is counted here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lake.health import LISTED, calendar_for, ingest_reports
from lake.schema import Kind

if TYPE_CHECKING:
    from domain.markets import HolidayYears

__all__ = ["GAP_NS", "InstrumentTicks", "TickHealth", "tick_gaps", "tick_health"]

IntArray = npt.NDArray[np.int64]
GAP_NS = 3600 * 1_000_000_000
"""A gap between consecutive ticks / quotes longer than this (inside one session) is counted."""
TICK_KINDS = (Kind.TRADES, Kind.QUOTES)


@dataclass
class InstrumentTicks:
    """One instrument's trades or quotes."""

    rows: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    days_with_data: int = 0
    calendar: str | None = None
    gaps: int = 0  # gaps longer than the threshold inside a session
    largest_gaps: list[tuple[int, int]] = field(
        default_factory=list
    )  # (start ts_ns, length ns), longest first,
    # of every gap inside a session (above the threshold or not)
    sessions_expected: int = 0  # calendar sessions from the first row's to the last row's
    sessions_without_data: int = 0
    days_without_data: list[int] = field(default_factory=list)  # the first LISTED
    outside_sessions: int = 0  # rows outside every session of the calendar


@dataclass
class TickHealth:
    """One stored tick data set (``trades`` or ``quotes``)."""

    dataset: str
    gap_ns: int
    instruments: int = 0
    rows: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    days_with_data: int = 0  # instrument-days: the sum over instruments
    gaps: int = 0
    largest_gap_ns: int = 0
    sessions_expected: int = 0
    sessions_without_data: int = 0
    outside_sessions: int = 0
    unchecked_instruments: list[str] = field(default_factory=list)  # no calendar: sessions not checked
    quarantined: dict[str, int] = field(default_factory=dict)
    ingested: int = 0  # rows_in of every ingest report for this kind
    accepted: int = 0  # accepted rows of those reports
    already_stored: int = (
        0  # rows of those reports the lake already held (neither stored nor quarantined again)
    )
    per_instrument: dict[str, InstrumentTicks] = field(default_factory=dict)

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    @property
    def reconciled(self) -> bool:
        """Every ingested row is stored, quarantined or was already held, and nothing else is
        stored."""
        held = self.rows + self.quarantined_rows + self.already_stored
        return self.rows == self.accepted and held == self.ingested

    def to_dict(self) -> dict[str, object]:
        result = asdict(self)
        result["quarantined_rows"] = self.quarantined_rows
        result["reconciled"] = self.reconciled
        return result


def _session_of(
    ts: IntArray, open_ns: IntArray, close_ns: IntArray
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Each event time's session (``open <= ts < close``) and whether it lies in one."""
    position = np.searchsorted(close_ns, ts, side="right")
    clipped = np.minimum(position, len(close_ns) - 1)
    inside = (position < len(close_ns)) & (ts >= open_ns[clipped])
    return clipped.astype(np.int64), inside


def tick_gaps(
    ts_ns: IntArray, calendar: str | None, *, gap_ns: int = GAP_NS, holidays: HolidayYears | None = None
) -> InstrumentTicks:
    """Health of one instrument's sorted event times (trades or quotes) against ``calendar``
    (``holidays``: XSHG's years past exchange_calendars', an operator's file)."""
    from lake.sessions import NO_BREAK, sessions_around, utc_days

    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) == 0:
        return InstrumentTicks(calendar=calendar)
    days = np.unique(utc_days(ts + 1))  # utc_days takes bar closes (end of interval): +1 ns for an event time
    report = InstrumentTicks(len(ts), int(ts[0]), int(ts[-1]), len(days), calendar)
    length = np.diff(ts)
    counted = np.ones(len(length), dtype=np.bool_)
    if calendar is not None:
        sessions = sessions_around(calendar, int(days[0]), int(days[-1]), holidays)
        session, inside = _session_of(ts, sessions.open_ns, sessions.close_ns)
        report.outside_sessions = int((~inside).sum())
        present = np.unique(session[inside])
        if len(present):
            first, last = int(present[0]), int(present[-1])
            report.sessions_expected = last - first + 1
            empty = np.setdiff1d(np.arange(first, last + 1), present)
            report.sessions_without_data = len(empty)
            report.days_without_data = [int(d) for d in sessions.day[empty[:LISTED]]]
        if calendar != "24x7":  # a 24x7 calendar's sessions are UTC days, with no time closed between
            counted = inside[:-1] & inside[1:] & (session[:-1] == session[1:])
        owner = session[:-1]
        start, stop = sessions.break_start_ns[owner], sessions.break_end_ns[owner]
        overlap = np.minimum(ts[1:], stop) - np.maximum(ts[:-1], start)
        length = length - np.where((start != NO_BREAK) & (overlap > 0), overlap, 0)
    report.gaps = int((counted & (length > gap_ns)).sum())
    candidates = np.flatnonzero(counted)
    longest = candidates[np.argsort(-length[candidates], kind="stable")[:LISTED]]
    report.largest_gaps = [(int(ts[i]), int(length[i])) for i in longest]
    return report


def _ingested_by_kind(lake: object) -> dict[str, tuple[int, int, int]]:
    """(rows_in, accepted, already_stored) per kind, from every ingest report in the lake (a
    report written before ``already_stored`` existed has none)."""
    totals: dict[str, tuple[int, int, int]] = {}
    for report in ingest_reports(lake):
        for file in report["files"]:  # type: ignore[attr-defined]
            rows_in, accepted, already = totals.get(file["kind"], (0, 0, 0))
            totals[file["kind"]] = (
                rows_in + int(file["rows_in"]),
                accepted + int(file["accepted"]),
                already + int(file.get("already_stored", 0)),
            )
    return totals


def tick_health(
    lake: object,
    *,
    gap_ns: int = GAP_NS,
    calendars: dict[int, str] | None = None,
    holidays: HolidayYears | None = None,
) -> list[TickHealth]:
    """Health of every stored trades and quotes data set in ``lake`` (a
    ``lake.partitioned.Lake``), and of a kind that only has quarantined rows. Read one
    instrument at a time. ``calendars`` overrides, by instrument id, the calendar the ingest
    declared (``lake.health.declared_calendars``), which overrides ``calendar_for``."""
    from lake.health import declared_calendars, quarantined_by_dataset
    from lake.partitioned import Lake

    assert isinstance(lake, Lake)
    quarantined = quarantined_by_dataset(lake)
    ingested = _ingested_by_kind(lake)
    instruments = {i.instrument_id: i for i in lake.instruments()}
    calendars = {**declared_calendars(lake), **(calendars or {})}
    results = []
    for kind in TICK_KINDS:
        stored = sorted({int(p.split("/")[1].split("=")[1]) for p in lake.partitions(kind)})
        if not stored and str(kind) not in ingested and str(kind) not in quarantined:
            continue
        rows_in, accepted, already = ingested.get(str(kind), (0, 0, 0))
        health = TickHealth(
            str(kind),
            gap_ns,
            quarantined=dict(sorted(quarantined.get(str(kind), {}).items())),
            ingested=rows_in,
            accepted=accepted,
            already_stored=already,
        )
        for instrument_id in stored:
            ts = np.sort(
                lake.read(kind, instrument_ids=[instrument_id], columns=["ts_ns"]).column("ts_ns").to_numpy()
            )
            if len(ts) == 0:
                continue
            instrument = instruments.get(instrument_id)
            name = f"{instrument.venue}:{instrument.symbol}" if instrument else f"id {instrument_id}"
            calendar = calendars.get(instrument_id) or (calendar_for(instrument) if instrument else None)
            if calendar is None:
                health.unchecked_instruments.append(name)
            report = tick_gaps(ts, calendar, gap_ns=gap_ns, holidays=holidays)
            health.per_instrument[name] = report
            health.instruments += 1
            health.rows += report.rows
            health.days_with_data += report.days_with_data
            health.gaps += report.gaps
            health.largest_gap_ns = max([health.largest_gap_ns, *(g for _, g in report.largest_gaps)])
            health.sessions_expected += report.sessions_expected
            health.sessions_without_data += report.sessions_without_data
            health.outside_sessions += report.outside_sessions
            first, last = int(ts[0]), int(ts[-1])
            health.first_ts_ns = first if health.first_ts_ns is None else min(health.first_ts_ns, first)
            health.last_ts_ns = last if health.last_ts_ns is None else max(health.last_ts_ns, last)
        results.append(health)
    return results
