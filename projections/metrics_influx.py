"""Metrics to InfluxDB: the journal folded into line-protocol points, checkpointed in Influx.

Series (measurement: tags → fields; integers keep their fixed-point units):

* ``nav``: currency → nav_minor, cash_minor, gross_exposure_minor, pnl_minor (NAV minus the
  first NAV), drawdown_e8 (below the running peak, 1e-8), exposure_e8 (gross / NAV, 1e-8);
  one point per ``day.closed``.
* ``order_funnel``: strategy → submitted, accepted, rejected, partially_filled, filled,
  cancelled, expired (cumulative counts), reject_rate, fill_ratio (filled / submitted qty).
* ``fills``: instrument_id, symbol → fill_count, fill_qty_raw, notional_minor,
  commission_minor (cumulative), slippage_bps (this fill against the order's decision price,
  positive = worse), shortfall_minor (cumulative implementation shortfall).
* ``risk_events``: rule, action → count (cumulative).
* ``projection``: projection → last_seq, head_seq, journal_lag_records, lag_s (wall clock
  minus the last applied event time), stamped with the wall clock at write time.

Every event-timed series is a snapshot or a cumulative value, so two points with the same
series and timestamp (two fills in the same nanosecond) overwrite each other correctly, and
re-writing a batch after a crash writes identical points: at-least-once delivery plus
idempotent points is exactly-once content. The checkpoint (last seq and the fold's state as
JSON) is one point of ``tape_checkpoint`` at time 0, written only after a batch's points were
accepted; an Influx outage (``TargetUnavailable``) leaves it where it was, and the runner
resumes from it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

import msgspec

from domain.events import DayClosed, InstrumentsDefined, OrderFilled, OrderSubmitted, RiskVerdict
from domain.orders import OrderEvent
from kernel.journal import Journal, Record
from projections.base import TargetUnavailable

__all__ = [
    "CHECKPOINT_MEASUREMENT",
    "InfluxError",
    "InfluxMetrics",
    "InfluxV1",
    "MetricsState",
    "fold_record",
    "line",
]

CHECKPOINT_MEASUREMENT = "tape_checkpoint"
LINES_PER_WRITE_MAX = 5_000
_E8 = 100_000_000
_FOLDED_KINDS = frozenset(
    {
        "instruments.defined.v1",
        "order.submitted.v1",
        "order.accepted.v1",
        "order.rejected.v1",
        "order.filled.v1",
        "order.cancelled.v1",
        "order.expired.v1",
        "day.closed.v1",
        "risk.verdict.v1",
    }
)
_TRIGGER_FIELD = {
    "order.accepted.v1": "accepted",
    "order.rejected.v1": "rejected",
    "order.cancelled.v1": "cancelled",
    "order.expired.v1": "expired",
}


class InfluxError(Exception):
    """Influx refused a request (bad data or query): not retried."""


# --- line protocol ---------------------------------------------------------------------------


def _escape(text: str, specials: str) -> str:
    for char in "\\" + specials:
        text = text.replace(char, "\\" + char)
    return text


def _field_value(value: int | float | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, int | float | str | bool], ts_ns: int
) -> str:
    """One point in line protocol; tags sorted by key (Influx's canonical order)."""
    if not fields:
        raise ValueError(f"a point of {measurement} needs at least one field")
    head = _escape(measurement, ", ")
    for key in sorted(tags):
        if tags[key] != "":
            head += f",{_escape(key, ',= ')}={_escape(tags[key], ',= ')}"
    body = ",".join(f"{_escape(key, ',= ')}={_field_value(value)}" for key, value in sorted(fields.items()))
    return f"{head} {body} {ts_ns}"


# --- the fold ----------------------------------------------------------------------------------


class MetricsState(msgspec.Struct, kw_only=True):
    """What the fold carries from one batch to the next (saved with the checkpoint)."""

    first_nav_minor: int | None = None
    peak_nav_minor: int = 0
    funnel: dict[str, dict[str, int]] = {}
    fills: dict[str, list[int]] = {}  # instrument id -> count, qty, notional, commission, shortfall
    open_orders: dict[str, tuple[str, int, int]] = {}  # order id -> strategy, decision px, side
    risk: dict[str, int] = {}  # "rule|action" -> count
    symbols: dict[str, str] = {}


def _funnel_fields(counts: dict[str, int]) -> dict[str, int | float]:
    submitted = counts.get("submitted", 0)
    fields: dict[str, int | float] = dict(counts)
    fields["reject_rate"] = counts.get("rejected", 0) / submitted if submitted else 0.0
    qty = counts.get("qty_submitted_raw", 0)
    fields["fill_ratio"] = counts.get("qty_filled_raw", 0) / qty if qty else 0.0
    return fields


def _on_order(state: MetricsState, record: Record, event: OrderEvent | OrderSubmitted) -> list[str]:
    if isinstance(event, OrderSubmitted):
        state.open_orders[event.order_id] = (event.strategy_id, event.decision_px_raw, event.side)
        strategy = event.strategy_id
        counts = state.funnel.setdefault(strategy, {})
        counts["submitted"] = counts.get("submitted", 0) + 1
        counts["qty_submitted_raw"] = counts.get("qty_submitted_raw", 0) + event.qty_raw
        return [line("order_funnel", {"strategy": strategy}, _funnel_fields(counts), record.ts_ns)]
    known = state.open_orders.get(event.order_id)
    if known is None:
        return []  # the ledger projection reports unknown orders; metrics skip them
    strategy, decision_px_raw, side = known
    counts = state.funnel.setdefault(strategy, {})
    lines: list[str] = []
    if isinstance(event, OrderFilled):
        field_name = "filled" if event.leaves_qty_raw == 0 else "partially_filled"
        counts["qty_filled_raw"] = counts.get("qty_filled_raw", 0) + event.fill_qty_raw
        lines.append(_fill_line(state, record, event, decision_px_raw, side))
    else:
        field_name = _TRIGGER_FIELD[record.kind]
    counts[field_name] = counts.get(field_name, 0) + 1
    if field_name != "partially_filled" and field_name != "accepted":
        del state.open_orders[event.order_id]
    lines.append(line("order_funnel", {"strategy": strategy}, _funnel_fields(counts), record.ts_ns))
    return lines


def _fill_line(
    state: MetricsState, record: Record, fill: OrderFilled, decision_px_raw: int, side: int
) -> str:
    key = str(fill.instrument_id)
    totals = state.fills.setdefault(key, [0, 0, 0, 0, 0])
    slippage_px = (fill.fill_px_raw - decision_px_raw) * side  # positive = paid more / got less
    shortfall_minor = fill.notional_minor * slippage_px // fill.fill_px_raw if fill.fill_px_raw else 0
    totals[0] += 1
    totals[1] += fill.fill_qty_raw
    totals[2] += fill.notional_minor
    totals[3] += fill.commission_minor
    totals[4] += shortfall_minor + fill.commission_minor
    fields: dict[str, int | float] = {
        "fill_count": totals[0],
        "fill_qty_raw": totals[1],
        "notional_minor": totals[2],
        "commission_minor": totals[3],
        "shortfall_minor": totals[4],
        "slippage_bps": slippage_px * 10_000 / decision_px_raw if decision_px_raw else 0.0,
    }
    tags = {"instrument_id": key, "symbol": state.symbols.get(key, "")}
    return line("fills", tags, fields, record.ts_ns)


def _on_day_closed(state: MetricsState, record: Record, event: DayClosed) -> list[str]:
    if state.first_nav_minor is None:
        state.first_nav_minor = event.nav_minor
    state.peak_nav_minor = max(state.peak_nav_minor, event.nav_minor)
    peak = state.peak_nav_minor
    fields = {
        "nav_minor": event.nav_minor,
        "cash_minor": event.cash_minor,
        "gross_exposure_minor": event.gross_exposure_minor,
        "pnl_minor": event.nav_minor - state.first_nav_minor,
        "drawdown_e8": (peak - event.nav_minor) * _E8 // peak if peak > 0 else 0,
        "exposure_e8": event.gross_exposure_minor * _E8 // event.nav_minor if event.nav_minor > 0 else 0,
    }
    return [line("nav", {"currency": event.currency}, fields, record.ts_ns)]


def fold_record(state: MetricsState, record: Record) -> list[str]:
    """The points one record contributes; ``state`` is updated in place."""
    if record.kind not in _FOLDED_KINDS:
        return []
    event = record.event()
    if isinstance(event, InstrumentsDefined):
        for instrument in event.instruments:
            state.symbols[str(instrument.instrument_id)] = instrument.symbol
        return []
    if isinstance(event, DayClosed):
        return _on_day_closed(state, record, event)
    if isinstance(event, RiskVerdict):
        key = f"{event.rule}|{event.action}"
        state.risk[key] = state.risk.get(key, 0) + 1
        tags = {"rule": event.rule, "action": event.action}
        return [line("risk_events", tags, {"count": state.risk[key]}, record.ts_ns)]
    assert isinstance(event, OrderSubmitted | OrderEvent)
    return _on_order(state, record, event)


# --- transport: the v1 HTTP API --------------------------------------------------------------


class InfluxV1:
    """InfluxDB 1.x HTTP API (``/write``, ``/query``); also served by 2.x's v1 compatibility."""

    def __init__(self, url: str, database: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> bytes:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(address, data=body, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code >= 500:
                raise TargetUnavailable(f"influx {path}: HTTP {error.code} {detail}") from error
            raise InfluxError(f"influx {path}: HTTP {error.code} {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise TargetUnavailable(f"influx at {self.url}: {error}") from error

    def create_database(self) -> None:
        self._request("/query", {"q": f'CREATE DATABASE "{self.database}"'}, body=b"")

    def write(self, lines: list[str]) -> None:
        if lines:
            body = ("\n".join(lines) + "\n").encode()
            self._request("/write", {"db": self.database, "precision": "ns"}, body=body)

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """The ``series`` of the first statement's result (``[]`` when none)."""
        answer = json.loads(self._request("/query", {"db": self.database, "q": influxql, "epoch": "ns"}))
        result = answer["results"][0]
        if "error" in result:
            raise InfluxError(f"influx query {influxql!r}: {result['error']}")
        return list(result.get("series", []))


# --- the projection -----------------------------------------------------------------------------

_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(MetricsState)


class InfluxMetrics:
    """The metrics projection into one Influx database (``InfluxMetrics.open``)."""

    def __init__(self, transport: InfluxV1, name: str = "metrics") -> None:
        self.transport = transport
        self.name = name
        self._checkpoint_seq = -1
        self._state = MetricsState()

    @classmethod
    def open(cls, transport: InfluxV1, name: str = "metrics") -> InfluxMetrics:
        """Create the database if needed and load the checkpoint and fold state."""
        metrics = cls(transport, name)
        transport.create_database()
        series = transport.query(
            f'SELECT "seq", "state" FROM "{CHECKPOINT_MEASUREMENT}" WHERE "projection" = \'{name}\''
        )
        if series:
            columns, values = series[0]["columns"], series[0]["values"][-1]
            row = dict(zip(columns, values, strict=True))
            metrics._checkpoint_seq = int(row["seq"])
            metrics._state = _state_decoder.decode(row["state"])
        return metrics

    @property
    def checkpoint_seq(self) -> int:
        return self._checkpoint_seq

    def close(self) -> None:
        """Nothing to release: every request opens its own HTTP connection."""

    def apply(self, records: Iterable[Record], head_seq: int | None = None) -> int:
        """Write a batch's points, then its checkpoint; the in-memory state advances only
        when both were accepted."""
        state = _state_decoder.decode(_state_encoder.encode(self._state))  # a copy to roll back to
        next_seq = self._checkpoint_seq + 1
        lines: list[str] = []
        last_ts_ns = 0
        for record in records:
            if record.seq < next_seq:
                continue
            if record.seq != next_seq:
                raise ValueError(f"metrics: gap in the records at seq {record.seq}; expected {next_seq}")
            lines.extend(fold_record(state, record))
            last_ts_ns = record.ts_ns
            next_seq += 1
        applied = next_seq - 1 - self._checkpoint_seq
        if applied == 0:
            return 0
        for start in range(0, len(lines), LINES_PER_WRITE_MAX):
            self.transport.write(lines[start : start + LINES_PER_WRITE_MAX])
        now_ns = time.time_ns()  # clock-edge: projection lag is wall clock by definition
        head = next_seq - 1 if head_seq is None else head_seq
        lag: dict[str, int | float] = {
            "last_seq": next_seq - 1,
            "head_seq": head,
            "journal_lag_records": head - (next_seq - 1),
            "lag_s": (now_ns - last_ts_ns) / 1e9,
        }
        checkpoint: dict[str, int | str] = {
            "seq": next_seq - 1,
            "state": _state_encoder.encode(state).decode(),
        }
        self.transport.write(
            [
                line("projection", {"projection": self.name}, lag, now_ns),
                line(CHECKPOINT_MEASUREMENT, {"projection": self.name}, checkpoint, 0),
            ]
        )
        self._state = state
        self._checkpoint_seq = next_seq - 1
        return applied

    def run(self, journal: Journal, batch_records_max: int = 10_000) -> int:
        """Catch up from the checkpoint to the journal's head, one checkpoint per batch."""
        if batch_records_max <= 0:
            raise ValueError(f"batch_records_max must be positive, got {batch_records_max}")
        records = journal.records(self._checkpoint_seq + 1)
        head_seq = len(journal) - 1
        applied = 0
        while batch := list(islice(records, batch_records_max)):
            applied += self.apply(batch, head_seq)
        return applied
