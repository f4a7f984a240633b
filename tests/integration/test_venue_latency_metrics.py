"""Venue latency as metrics and as Grafana rules: the metrics fold writes ``venue_latency``
(source venue: an asynchronous venue's first ack or reject after the submission; source bars:
a feed's bar arrival after the close), and the `tape-venue-latency` / `tape-bar-lag` rules'
queries on a real influxd land above their threshold for a slow venue or feed and below it
for a fast one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.events import Event, OrderAccepted, VenueMessage, VenueMessageReceived
from kernel.store import open_journal
from projections.metrics_influx import InfluxV1, MetricsState, fold_record
from tests.unit.projections.test_alert_rules import bars, orders, venue_orders

yaml = pytest.importorskip("yaml")

RULES = Path(__file__).resolve().parents[2] / "infra/grafana/provisioning/alerting/tape_rules.yaml"
S = 1_000_000_000
MS = 1_000_000


def fold(tmp_path: Path, events: list[Event], name: str = "j.sqlite") -> list[str]:
    path = tmp_path / name
    with open_journal(path, writable=True) as journal:
        for event in events:
            journal.append(event)
    state = MetricsState()
    with open_journal(path) as journal:
        return [p for record in journal.records() for p in fold_record(state, record)]


def latency_points(points: list[str]) -> list[tuple[str, str]]:
    return [(p.split(" ")[0], p.split(" ")[1]) for p in points if p.startswith("venue_latency,")]


def test_the_fold_measures_first_answers_and_stamped_bars_only(tmp_path: Path) -> None:
    t0 = 1_704_000_000 * S
    events: list[Event] = [*venue_orders([80, 700], t=t0), *orders("aa", strategy="sync", t=t0 + 5 * S)]
    # two answers arriving in the same step (same record time): one point with the larger
    for i, latency_ms in enumerate((40, 300)):
        order_id = f"same-{i}"
        submitted = orders("a", strategy="async", t=t0 + 10 * S)[0]
        events.append(msgspec.structs.replace(submitted, order_id=order_id))
        answer = VenueMessage(
            venue_seq=100 + i, ts_ns=t0 + 10 * S + latency_ms * MS, order_id=order_id, kind="ack"
        )
        events.append(VenueMessageReceived(ts_ns=t0 + 11 * S, step=11, message=answer))
        events.append(OrderAccepted(ts_ns=t0 + 11 * S, order_id=order_id))
    events += bars([250, None, 1500], t=t0 + 20 * S)
    points = latency_points(fold(tmp_path, events))
    assert points == [
        ("venue_latency,source=venue", "latency_ms=80.0,samples=1i"),  # duplicates, fills: not counted
        ("venue_latency,source=venue", "latency_ms=700.0,samples=2i"),  # a reject is an answer too
        ("venue_latency,source=venue", "latency_ms=40.0,samples=3i"),
        ("venue_latency,source=venue", "latency_ms=300.0,samples=4i"),  # same time: rewrites with the max
        ("venue_latency,source=bars", "latency_ms=250.0,samples=1i"),
        ("venue_latency,source=bars", "latency_ms=1500.0,samples=2i"),  # unstamped bars skipped
    ]


def test_the_fold_measures_from_the_edges_send_where_it_journals_one(tmp_path: Path) -> None:
    """Decided at t0, sent at t0 + 3 s (the edge's ``sent`` message), acknowledged 90 ms after:
    the point is the 90 ms round trip, not 3.09 s from the step."""
    t0 = 1_704_000_000 * S
    submitted = msgspec.structs.replace(orders("a", strategy="async", t=t0)[0], order_id="edge-1")
    sent = VenueMessage(venue_seq=1, ts_ns=t0 + 3 * S, order_id="edge-1", kind="sent")
    ack = VenueMessage(venue_seq=2, ts_ns=t0 + 3 * S + 90 * MS, order_id="edge-1", kind="ack")
    events: list[Event] = [
        submitted,
        VenueMessageReceived(ts_ns=t0 + 4 * S, step=1, message=sent),
        VenueMessageReceived(ts_ns=t0 + 4 * S, step=1, message=ack),
        OrderAccepted(ts_ns=t0 + 4 * S, order_id="edge-1"),
    ]
    assert latency_points(fold(tmp_path, events)) == [
        ("venue_latency,source=venue", "latency_ms=90.0,samples=1i")
    ]


def _rule(uid: str) -> dict[str, Any]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    (rule,) = [rule for rule in group["rules"] if rule["uid"] == uid]
    return dict(rule)


def _evaluate(influx: InfluxV1, uid: str) -> tuple[float, str, float]:
    """(the rule's reduced value B, its comparison, its threshold) on the data in ``influx``."""
    steps = {step["refId"]: step for step in _rule(uid)["data"]}
    window = steps["A"]["relativeTimeRange"]
    time_filter = f"time >= now() - {window['from']}s AND time <= now() - {window['to']}s"
    query = steps["A"]["model"]["query"].replace("$timeFilter", time_filter)
    (series,) = influx.query(query)
    (condition,) = steps["C"]["model"]["conditions"]
    return float(series["values"][-1][1]), condition["evaluator"]["type"], condition["evaluator"]["params"][0]


@pytest.mark.parametrize(
    ("slow", "fires"),
    [(True, True), (False, False)],
    ids=["slow venue and feed fire", "fast ones stay quiet"],
)
def test_the_grafana_latency_rules_on_a_real_influxd(tmp_path: Path, slow: bool, fires: bool) -> None:
    from tests.contracts.projection_servers import running_influxd

    now_ns = time.time_ns()
    start = now_ns - 300 * S  # the last five minutes, inside the rules' 10-minute window
    acks = (
        [900, 1200, 80, 1100, 950, 1000, 70, 1300, 990, 60]
        if slow
        else [80, 90, 2000, 70, 85, 95, 60, 75, 90, 100]
    )
    lags = [7000, 8000, 6000, 200, 9000] if slow else [300, 9000, 250, 400, 350]
    events = venue_orders(acks, t=start) + bars(lags, t=start)
    points = fold(tmp_path, events)
    with running_influxd(tmp_path) as server:
        influx = InfluxV1(server.url, "tape")
        influx.create_database()
        influx.write(points)
        for uid in ("tape-venue-latency", "tape-bar-lag"):
            value, comparison, threshold = _evaluate(influx, uid)
            assert comparison == "gt"
            assert (value > threshold) is fires, (uid, value, threshold)
