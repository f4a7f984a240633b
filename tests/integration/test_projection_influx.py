"""The metrics projection against a real ``influxd`` (1.6, v1 HTTP API): a clean run, and an
outage mid-run (influxd stopped, the journal keeps growing, influxd restarted) that must end
with exactly the points of the clean run."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from kernel.store import open_journal
from projections.metrics_influx import InfluxMetrics, InfluxV1
from projections.runner import Backoff, follow
from tests.contracts.projection_servers import running_influxd
from tests.integration.test_projection_runner import _txn_safe, busy_events

MEASUREMENTS = ("nav", "order_funnel", "fills", "risk_events")


def _dump(transport: InfluxV1) -> dict[str, list[list[object]]]:
    dump: dict[str, list[list[object]]] = {}
    for measurement in (*MEASUREMENTS, "tape_checkpoint"):
        series = transport.query(f'SELECT * FROM "{measurement}"')
        dump[measurement] = [row for s in series for row in s["values"]]
    return dump


def test_an_influx_outage_mid_run_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "journal"
    chunks = [_txn_safe(busy_events(250, start=n * 250), n) for n in range(3)]
    with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
        for event in chunks[0]:
            writer.append(event)
    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        followed = InfluxV1(server.url, "followed")
        done = threading.Event()
        stats_box: list[object] = []

        def run() -> None:
            stats_box.append(
                follow(
                    journal,
                    lambda: InfluxMetrics.open(followed),
                    name="metrics",
                    batch_records_max=100,
                    poll_s=0.02,
                    backoff=Backoff(initial_s=0.05, maximum_s=0.3),
                    should_stop=lambda stats: done.is_set(),
                )
            )

        caplog.set_level(logging.INFO, logger="tape.projections")
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            server.stop()
            with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
                for event in chunks[1]:
                    writer.append(event)
            time.sleep(0.8)  # the runner fails and backs off meanwhile
            server.start()
            with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
                for event in chunks[2]:
                    writer.append(event)
                head = writer.next_seq - 1
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and InfluxMetrics.open(followed).checkpoint_seq != head:
                time.sleep(0.05)
        finally:
            done.set()
            thread.join(timeout=30)
        (stats,) = stats_box
        assert stats.outages >= 1, stats
        assert stats.checkpoint_seq == head
        clean = InfluxV1(server.url, "clean")
        with open_journal(journal) as reader:
            assert InfluxMetrics.open(clean).run(reader, batch_records_max=10_000) == head + 1
        followed_points, clean_points = _dump(followed), _dump(clean)
        assert followed_points == clean_points
        assert len(clean_points["fills"]) == 750  # one per fill: distinct (instrument, ns)
        funnel_last = dict(
            zip(
                followed.query('SELECT last("submitted") FROM "order_funnel"')[0]["columns"],
                followed.query('SELECT last("submitted") FROM "order_funnel"')[0]["values"][0],
                strict=True,
            )
        )
        assert funnel_last["last"] == 750
        assert any("target unavailable" in r.getMessage() for r in caplog.records)


def test_a_bad_point_is_refused_not_retried(tmp_path: Path) -> None:
    from projections.metrics_influx import InfluxError

    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        transport = InfluxV1(server.url, "bad")
        transport.create_database()
        with pytest.raises(InfluxError, match="HTTP 400"):
            transport.write(["nav nav_minor=notanumber 1"])
        transport.write(["nav nav_minor=5i 1"])
        assert transport.query('SELECT "nav_minor" FROM "nav"')[0]["values"] == [[1, 5]]
