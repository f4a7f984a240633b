"""``SERIES`` / ``series_of`` (what the dashboards are checked against) must name exactly what
the metrics projection writes, and the fold's trigger table must agree with the domain's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from domain.events import OrderAccepted, OrderCancelled, OrderExpired, OrderRejected
from domain.instruments import Instrument
from domain.market import Panel
from domain.orders import trigger_of
from kernel.store import open_journal
from projections.host_metrics import host_lines
from projections.ledger_sqlite import _TRIGGERS
from projections.metrics_influx import SERIES, InfluxMetrics, bar_lines, series_of
from tests.unit.projections.test_alert_rules import bars, venue_orders
from tests.unit.projections.test_ledger_sqlite import trading_events, write_journal

_UNESCAPED_SPACE = re.compile(r"(?<!\\) ")
_PAIR = re.compile(r'((?:[^,=\\]|\\.)+)=("(?:[^"\\]|\\.)*"|[^,]*)')


def _names(text: str) -> tuple[str, set[str], set[str]]:
    """(measurement, tag keys, field keys) of one line-protocol point."""
    head, rest = _UNESCAPED_SPACE.split(text, maxsplit=1)
    fields_part = rest.rsplit(" ", 1)[0]
    measurement, *tags = re.split(r"(?<!\\),", head)
    return (
        measurement,
        {tag.split("=", 1)[0] for tag in tags},
        {key for key, _ in _PAIR.findall(fields_part)},
    )


class _Capture:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def create_database(self) -> None:
        pass

    def write(self, lines: list[str]) -> None:
        self.lines += lines

    def read_checkpoint(self, projection: str) -> tuple[int, str] | None:
        return None

    def close(self) -> None:
        pass


def _panel() -> Panel:
    instrument = Instrument(
        instrument_id=3, symbol="ES Z4", venue="CME", asset_class="future", currency="USD",
        price_digits=2, tick_raw=25, qty_digits=0, lot_raw=1,
    )  # fmt: skip
    close = np.array([[500_000], [501_025]], dtype=np.int64)
    return Panel(
        ts_ns=np.array([1, 2], dtype=np.int64),
        day=np.array([20240102, 20240103], dtype=np.int64),
        instruments=(instrument,),
        open=close, high=close, low=close, close=close,
        volume=np.array([[10], [20]], dtype=np.int64),
        valid=np.array([[True], [True]]),
        last_close=close,
    )  # fmt: skip


def test_every_point_written_is_named_by_the_registry(tmp_path: Path) -> None:
    events = trading_events()
    later = max(e.ts_ns for e in events) + 1_000_000_000
    # an asynchronous venue's answers and a feed's stamped bars: the venue_latency series
    write_journal(tmp_path / "j", [*events, *venue_orders([120, 80], t=later), *bars([300], t=later)])
    capture = _Capture()
    with open_journal(tmp_path / "j") as journal:
        InfluxMetrics.open(capture).run(journal, batch_records_max=5)  # type: ignore[arg-type]
    points = capture.lines + host_lines("h", [tmp_path], 1) + list(bar_lines(_panel(), "15m"))
    seen: dict[str, set[str]] = {}
    for point in points:
        measurement, tags, fields = _names(point)
        series = series_of(measurement)
        assert series is not None, point
        assert tags <= series.tags and fields <= series.fields, point
        seen.setdefault(measurement, set()).update(fields)
    # and the registry names nothing that is never written (this journal exercises every series)
    for measurement, series in SERIES.items():
        assert seen.get(measurement) == series.fields, measurement
    assert seen["ohlcv_15m"] == series_of("ohlcv_15m").fields  # type: ignore[union-attr]
    assert '"ES\\ Z4"' not in points[-1] and "symbol=ES\\ Z4" in points[-1]


def test_the_folds_trigger_table_agrees_with_the_domain() -> None:
    events = [
        OrderAccepted(ts_ns=0, order_id="o"),
        OrderRejected(ts_ns=0, order_id="o", reason="r"),
        OrderCancelled(ts_ns=0, order_id="o", reason="r"),
        OrderExpired(ts_ns=0, order_id="o"),
    ]
    assert {type(e): trigger_of(e) for e in events} == _TRIGGERS
