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
* ``venue_latency``: source → samples (cumulative count), latency_ms (the largest sample whose
  record has this point's time). Source ``venue``: an asynchronous venue's first ack or reject
  of an order (``venue.message_received``: the venue's time minus the order's submission, or
  minus its ``sent`` message's time where the edge journals one: the round trip from the send);
  source ``bars``: a live feed's bar arrival lag (``market.bars_received``: ``received_ns``
  minus the bars' close; records without an arrival stamp are skipped); source ``heartbeat``: a
  session's timed round trip to its venue (``venue.heartbeat.v1``, ``paper.heartbeat_s``).
* ``projection``: projection → last_seq, head_seq, journal_lag_records, lag_s (wall clock
  minus the last applied event time), stamped with the wall clock at write time.
* ``ohlcv_{tf}`` (``write_bars``, from a lake data set's ``Panel``, not from the journal):
  exchange, symbol, asset_class, instrument_id → open, high, low, close, volume (floats in
  price / quantity units), one point per valid bar at the bar's time.

``SERIES`` (and ``series_of`` for ``ohlcv_{tf}``) names every measurement, tag and field
written here; the Grafana dashboards are checked against it.

Every event-timed series is a snapshot or a cumulative value, so two points with the same
series and timestamp (two fills in the same nanosecond) overwrite each other correctly, and
re-writing a batch after a crash writes identical points: at-least-once delivery plus
idempotent points is exactly-once content. The checkpoint (last seq and the fold's state as
JSON) is one point of ``tape_checkpoint`` at time 0, written only after a batch's points were
accepted; an Influx outage (``TargetUnavailable``) leaves it where it was, and the runner
resumes from it.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, NamedTuple, Protocol

import msgspec

from domain.events import (
    BarsReceived,
    DayClosed,
    InstrumentsDefined,
    OrderFilled,
    OrderSubmitted,
    RiskVerdict,
    VenueHeartbeat,
    VenueMessageReceived,
)
from domain.market import Panel
from domain.orders import OrderEvent
from kernel.journal import Journal, Record
from projections.base import TargetUnavailable

__all__ = [
    "CHECKPOINT_MEASUREMENT",
    "SERIES",
    "InfluxError",
    "InfluxMetrics",
    "InfluxTransport",
    "InfluxV1",
    "InfluxV2",
    "MetricsState",
    "Series",
    "bar_lines",
    "fold_record",
    "line",
    "ohlcv_measurement",
    "series_of",
    "write_bars",
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
        "risk.verdict.v2",
        "risk.verdict.v1",
        "venue.message_received.v1",
        "venue.heartbeat.v1",
        "market.bars_received.v1",
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


# --- what is written: the registry the dashboards are checked against -----------------------


class Series(NamedTuple):
    """The tag keys and field keys one measurement is written with."""

    tags: frozenset[str]
    fields: frozenset[str]


def _series(tags: str, fields: str) -> Series:
    return Series(frozenset(tags.split()), frozenset(fields.split()))


_FUNNEL_COUNTS = ("submitted", "accepted", "rejected", "partially_filled", "filled", "cancelled", "expired")
SERIES: Mapping[str, Series] = {
    "nav": _series("currency", "nav_minor cash_minor gross_exposure_minor pnl_minor drawdown_e8 exposure_e8"),
    "order_funnel": _series(
        "strategy",
        " ".join(_FUNNEL_COUNTS) + " qty_submitted_raw qty_filled_raw reject_rate fill_ratio",
    ),
    "fills": _series(
        "instrument_id symbol",
        "fill_count fill_qty_raw notional_minor commission_minor shortfall_minor slippage_bps",
    ),
    "risk_events": _series("rule action", "count"),
    "venue_latency": _series("source", "samples latency_ms"),
    "projection": _series("projection", "last_seq head_seq journal_lag_records lag_s"),
    "host": _series(  # projections.host_metrics, written by `tape projections host-metrics`
        "host disk",
        "cpu_pct load_1m mem_used_pct mem_available_bytes swap_used_pct disk_used_pct disk_free_bytes "
        "processes",
    ),
    CHECKPOINT_MEASUREMENT: _series("projection", "seq state"),
}
"""Every fixed measurement this module writes: name -> tags and fields."""

OHLCV_SERIES = _series("exchange symbol asset_class instrument_id", "open high low close volume")
_TIMEFRAME = re.compile(r"^[1-9][0-9]{0,3}(s|m|h|d|w|M|y)$")


def ohlcv_measurement(timeframe: str) -> str:
    """``ohlcv_{tf}`` for a bar timeframe such as ``1m``, ``1h``, ``1d``."""
    if not _TIMEFRAME.match(timeframe):
        raise ValueError(f"not a bar timeframe (e.g. 1m, 15m, 1h, 1d): {timeframe!r}")
    return f"ohlcv_{timeframe}"


def series_of(measurement: str) -> Series | None:
    """The tags and fields written to ``measurement``; None for a measurement never written."""
    if measurement.startswith("ohlcv_"):
        return OHLCV_SERIES if _TIMEFRAME.match(measurement[len("ohlcv_") :]) else None
    return SERIES.get(measurement)


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


def _series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """Measurement and tags of a point, tags sorted by key (Influx's canonical order)."""
    head = _escape(measurement, ", ")
    for key in sorted(tags):
        if tags[key] != "":
            head += f",{_escape(key, ',= ')}={_escape(tags[key], ',= ')}"
    return head


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, int | float | str | bool], ts_ns: int
) -> str:
    """One point in line protocol; tags sorted by key (Influx's canonical order)."""
    if not fields:
        raise ValueError(f"a point of {measurement} needs at least one field")
    body = ",".join(f"{_escape(key, ',= ')}={_field_value(value)}" for key, value in sorted(fields.items()))
    return f"{_series_key(measurement, tags)} {body} {ts_ns}"


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
    submitted_ns: dict[str, int] = {}  # order id -> submission time, until its first answer
    latency: dict[str, list[int]] = {}  # source -> samples, time of the last point, its max (ns)


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


def _latency_line(state: MetricsState, source: str, ts_ns: int, latency_ns: int) -> str:
    """A cumulative count and the largest sample at this time: a second sample at the same
    time rewrites the point with both in it (idempotent, like every event-timed series)."""
    samples, at_ns, largest = state.latency.get(source, (0, -1, 0))
    largest = max(largest, latency_ns) if at_ns == ts_ns else latency_ns
    state.latency[source] = [samples + 1, ts_ns, largest]
    return line(
        "venue_latency", {"source": source}, {"samples": samples + 1, "latency_ms": largest / 1e6}, ts_ns
    )


def _on_latency(state: MetricsState, record: Record, event: VenueMessageReceived | BarsReceived) -> list[str]:
    if isinstance(event, BarsReceived):
        if event.received_ns <= 0:
            return []
        return [_latency_line(state, "bars", record.ts_ns, event.received_ns - event.ts_ns)]
    message = event.message
    if message.kind == "sent":  # the edge sent it then: the round trip is measured from here
        if message.order_id in state.submitted_ns:
            state.submitted_ns[message.order_id] = message.ts_ns
        return []
    sent_ns = state.submitted_ns.pop(message.order_id, None) if message.kind in ("ack", "reject") else None
    if sent_ns is None:
        return []  # not an answer, a duplicate, or an order this journal never sent
    return [_latency_line(state, "venue", record.ts_ns, message.ts_ns - sent_ns)]


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
    if isinstance(event, VenueMessageReceived | BarsReceived):
        return _on_latency(state, record, event)
    if isinstance(event, VenueHeartbeat):  # a session's timed round trip to its venue
        return [_latency_line(state, "heartbeat", record.ts_ns, event.rtt_ns)] if event.ok else []
    assert isinstance(event, OrderSubmitted | OrderEvent)
    if isinstance(event, OrderSubmitted):
        state.submitted_ns[event.order_id] = event.ts_ns
    else:
        state.submitted_ns.pop(event.order_id, None)  # answered: a synchronous venue has no latency
    return _on_order(state, record, event)


# --- transports -------------------------------------------------------------------------------


class InfluxTransport(Protocol):
    """Where the points go. ``write`` raises ``TargetUnavailable`` when the server cannot be
    reached or answers 5xx / 429 (retry later) and ``InfluxError`` when it refuses the data."""

    def create_database(self) -> None: ...
    def write(self, lines: list[str]) -> None: ...
    def read_checkpoint(self, projection: str) -> tuple[int, str] | None: ...
    def close(self) -> None: ...


def split_credentials(url: str) -> tuple[str, str, str]:
    """(the URL without ``user:password@``, user, password); percent-escapes in them decoded."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, "", ""
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    bare = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = urllib.parse.unquote(parts.username or "")
    return bare, user, urllib.parse.unquote(parts.password or "")


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth ("" without a user)."""
    if not user and not password:
        return ""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class InfluxV1:
    """InfluxDB 1.x HTTP API (``/write``, ``/query``); also served by 2.x's v1 compatibility."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        timeout_s: float = 10.0,
        username: str = "",
        password: str = "",
    ) -> None:
        """``url`` may carry ``user:password@``: the credentials are taken out of it (sent as
        HTTP basic auth, never in a URL, a log line or a message); given ``username`` /
        ``password`` win."""
        self.url, url_user, url_password = split_credentials(url.rstrip("/"))
        self._auth = basic_auth(username or url_user, password or url_password)
        self.database = database
        self.timeout_s = timeout_s

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> bytes:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(address, data=body, method="POST" if body is not None else "GET")
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code >= 500 or error.code == 429:
                raise TargetUnavailable(f"influx {path}: HTTP {error.code} {detail}") from error
            raise InfluxError(f"influx {path}: HTTP {error.code} {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise TargetUnavailable(f"influx at {self.url}: {error}") from error

    def create_database(self) -> None:
        self._request("/query", {"q": f'CREATE DATABASE "{self.database}"'}, body=b"")

    def execute(self, statement: str) -> None:
        """One InfluxQL statement that changes something (POST), its error raised."""
        answer = json.loads(self._request("/query", {"db": self.database, "q": statement}, body=b""))
        for result in answer.get("results", []):
            if "error" in result:
                raise InfluxError(f"influx {statement!r}: {result['error']}")

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

    def read_checkpoint(self, projection: str) -> tuple[int, str] | None:
        series = self.query(
            f'SELECT "seq", "state" FROM "{CHECKPOINT_MEASUREMENT}" '
            f"WHERE \"projection\" = '{_escape(projection, chr(39))}'"
        )
        if not series:
            return None
        row = dict(zip(series[0]["columns"], series[0]["values"][-1], strict=True))
        return int(row["seq"]), str(row["state"])

    def close(self) -> None:
        """Nothing to release: every request opens its own HTTP connection."""


class InfluxV2:
    """InfluxDB 2.x / 3.x through ``influxdb-client`` (the ``live`` extra): ``/api/v2/write``
    with nanosecond precision into ``bucket`` of ``org``, the checkpoint read back with Flux.

    The client's own retries are off: the runner's backoff and the checkpoint handle outages.
    """

    def __init__(self, url: str, org: str, bucket: str, token: str = "", *, timeout_s: float = 10.0) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient  # live extra, imported on use

        self.url, _, _ = split_credentials(url.rstrip("/"))  # v2 authenticates with the token
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=self.url, token=token, org=org, timeout=int(timeout_s * 1000), retries=False
        )

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return function(*args, **kwargs)
        except ApiException as error:
            status = int(error.status or 0)
            detail = f"influx v2 {what}: HTTP {status} {error.body or error.reason}"
            if status >= 500 or status == 429:
                raise TargetUnavailable(detail) from error
            raise InfluxError(detail) from error
        except (HTTPError, OSError) as error:
            raise TargetUnavailable(f"influx v2 at {self.url}: {error}") from error

    def create_database(self) -> None:
        """Create the bucket when the token may see none of that name."""
        buckets = self._client.buckets_api()
        if self._call("find bucket", buckets.find_bucket_by_name, self.bucket) is None:
            self._call("create bucket", buckets.create_bucket, bucket_name=self.bucket, org=self.org)

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._call(
            "write",
            write_api.write,
            bucket=self.bucket,
            org=self.org,
            record="\n".join(lines),
            write_precision=WritePrecision.NS,
        )

    def read_checkpoint(self, projection: str) -> tuple[int, str] | None:
        name = json.dumps(projection)  # a Flux string literal
        flux = (
            f"from(bucket: {json.dumps(self.bucket)}) |> range(start: 0) "
            f'|> filter(fn: (r) => r._measurement == "{CHECKPOINT_MEASUREMENT}" and r.projection == {name})'
            " |> last()"
        )
        tables = self._call("query", self._client.query_api().query, flux, org=self.org)
        values = {record.get_field(): record.get_value() for table in tables for record in table.records}
        if "seq" not in values or "state" not in values:
            return None
        return int(values["seq"]), str(values["state"])

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


# --- bars from the lake -------------------------------------------------------------------------


def bar_lines(panel: Panel, timeframe: str) -> Iterator[str]:
    """``ohlcv_{tf}`` points of every valid bar, instrument by instrument, in time order."""
    measurement = ohlcv_measurement(timeframe)
    for column, instrument in enumerate(panel.instruments):
        price_scale = 10.0**instrument.price_digits
        qty_scale = 10.0**instrument.qty_digits
        head = _series_key(
            measurement,
            {
                "exchange": instrument.venue,
                "symbol": instrument.symbol,
                "asset_class": instrument.asset_class,
                "instrument_id": str(instrument.instrument_id),
            },
        )
        rows = panel.valid[:, column].nonzero()[0]
        bars = zip(
            panel.ts_ns[rows].tolist(),
            panel.open[rows, column].tolist(),
            panel.high[rows, column].tolist(),
            panel.low[rows, column].tolist(),
            panel.close[rows, column].tolist(),
            panel.volume[rows, column].tolist(),
            strict=True,
        )
        for ts_ns, open_, high, low, close, volume in bars:
            yield (
                f"{head} close={close / price_scale!r},high={high / price_scale!r},"
                f"low={low / price_scale!r},open={open_ / price_scale!r},"
                f"volume={volume / qty_scale!r} {ts_ns}"
            )


def write_bars(
    transport: InfluxTransport,
    panel: Panel,
    timeframe: str,
    *,
    lines_per_write: int = LINES_PER_WRITE_MAX,
    attempts: int = 5,
    initial_backoff_s: float = 0.5,
) -> int:
    """Write a data set's bars as ``ohlcv_{tf}``; returns how many points were written.

    Points are keyed by series and bar time, so writing a data set again (after an outage,
    or to resume) overwrites identical points. A batch the server cannot take now
    (``TargetUnavailable``) is retried with exponential backoff, ``attempts`` times in all.
    """
    if lines_per_write <= 0 or attempts <= 0:
        raise ValueError("lines_per_write and attempts must be positive")
    transport.create_database()
    lines = bar_lines(panel, timeframe)
    written = 0
    while batch := list(islice(lines, lines_per_write)):
        for attempt in range(attempts):
            try:
                transport.write(batch)
                break
            except TargetUnavailable:
                if attempt == attempts - 1:
                    raise
                time.sleep(initial_backoff_s * 2**attempt)
        written += len(batch)
    return written


# --- the projection -----------------------------------------------------------------------------

_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(MetricsState)


class InfluxMetrics:
    """The metrics projection into one Influx database (``InfluxMetrics.open``)."""

    def __init__(self, transport: InfluxTransport, name: str = "metrics") -> None:
        self.transport = transport
        self.name = name
        self._checkpoint_seq = -1
        self._state = MetricsState()

    @classmethod
    def open(cls, transport: InfluxTransport, name: str = "metrics") -> InfluxMetrics:
        """Create the database if needed and load the checkpoint and fold state."""
        metrics = cls(transport, name)
        transport.create_database()
        found = transport.read_checkpoint(name)
        if found is not None:
            metrics._checkpoint_seq, state = found
            metrics._state = _state_decoder.decode(state)
        return metrics

    @property
    def checkpoint_seq(self) -> int:
        return self._checkpoint_seq

    def close(self) -> None:
        self.transport.close()

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
