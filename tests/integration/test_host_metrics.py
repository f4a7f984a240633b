"""``tape projections host-metrics``: a psutil sample of this host written to a real influxd as
the ``host`` measurement the ops board and the disk-space alert rule read."""

from __future__ import annotations

from pathlib import Path

from cli.main import main
from projections.metrics_influx import InfluxV1, series_of
from tests.contracts.projection_servers import running_influxd


def test_one_sample_lands_in_influx_with_every_field_in_range(tmp_path: Path) -> None:
    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        argv = ["projections", "host-metrics", "--influx", server.url, "--influx-db", "ops", "--once",
                "--disk", str(tmp_path)]  # fmt: skip
        assert main(argv) == 0
        (series,) = InfluxV1(server.url, "ops").query('SELECT * FROM "host"')
        row = dict(zip(series["columns"], series["values"][-1], strict=True))
    written = series_of("host")
    assert written is not None and written.fields | written.tags | {"time"} == set(row)
    assert row["disk"] == str(tmp_path)
    for name in ("cpu_pct", "mem_used_pct", "swap_used_pct", "disk_used_pct"):
        assert 0.0 <= row[name] <= 100.0, name
    assert row["mem_available_bytes"] > 0 and row["disk_free_bytes"] > 0 and row["processes"] > 1


def test_a_disk_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "x")
    argv = ["projections", "host-metrics", "--influx", "http://127.0.0.1:9", "--once", "--disk", missing]
    assert main(argv) == 2
