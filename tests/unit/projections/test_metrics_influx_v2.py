"""The v2 transport (``influxdb-client``) against a local fake of InfluxDB's HTTP API that
records every write: same points as the v1 transport for the same journal, the org, bucket and
precision on each ``/api/v2/write``, and the checkpoint read back through Flux on reopen."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kernel.store import open_journal
from projections.base import TargetUnavailable
from projections.metrics_influx import InfluxError, InfluxMetrics, InfluxV1, InfluxV2
from tests.unit.projections.test_ledger_sqlite import trading_events, write_journal

pytest.importorskip("influxdb_client")

_CHECKPOINT = re.compile(r'^tape_checkpoint,projection=(\S+) seq=(\d+)i,state="((?:[^"\\]|\\.)*)" 0$')


class _Fake:
    """What the fake server saw: one entry per write request, and the last checkpoints."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.checkpoints: dict[tuple[str, str], tuple[int, str]] = {}  # (api, projection) -> ...
        self.fail_writes_with: int | None = None
        self.lock = threading.Lock()

    def record(self, api: str, params: dict[str, str], body: str) -> None:
        with self.lock:
            self.writes.append({"api": api, "params": params, "lines": body.splitlines()})
            for text in body.splitlines():
                match = _CHECKPOINT.match(text)
                if match:
                    state = re.sub(r"\\(.)", r"\1", match.group(3))
                    self.checkpoints[(api, match.group(1))] = (int(match.group(2)), state)


def _flux_csv(seq: int, state: str) -> bytes:
    """Annotated CSV as InfluxDB 2 answers ``|> last()``: one table per field."""
    out = []
    for table, (field, kind, value) in enumerate((("seq", "long", str(seq)), ("state", "string", state))):
        quoted = '"' + value.replace('"', '""') + '"'
        out += [
            f"#datatype,string,long,dateTime:RFC3339,string,string,string,{kind}",
            "#group,false,false,false,true,true,true,false",
            "#default,_result,,,,,,",
            ",result,table,_time,_measurement,projection,_field,_value",
            f",,{table},1970-01-01T00:00:00Z,tape_checkpoint,metrics,{field},{quoted}",
            "",
        ]
    return "\r\n".join(out).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: _Fake

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _parts(self) -> tuple[str, dict[str, str], str]:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        return url.path, dict(urllib.parse.parse_qsl(url.query)), body

    def do_GET(self) -> None:
        path, params, _ = self._parts()
        if path == "/query":  # v1 checkpoint read
            found = self.fake.checkpoints.get(("v1", "metrics"))
            result: dict[str, Any] = {"statement_id": 0}
            if found is not None:
                columns = ["time", "seq", "state"]
                result["series"] = [{"name": "tape_checkpoint", "columns": columns, "values": [[0, *found]]}]
            self._answer(200, json.dumps({"results": [result]}).encode())
        elif path == "/api/v2/buckets":
            bucket = {"id": "0a1b2c3d4e5f6a7b", "name": params.get("name"), "retentionRules": []}
            self._answer(200, json.dumps({"buckets": [bucket]}).encode())
        else:
            self._answer(404)

    def do_POST(self) -> None:
        path, params, body = self._parts()
        if path in ("/write", "/api/v2/write"):
            if self.fake.fail_writes_with is not None:
                self._answer(self.fake.fail_writes_with, b'{"code":"x","message":"refused"}')
                return
            self.fake.record("v1" if path == "/write" else "v2", params, body)
            self._answer(204)
        elif path == "/query":  # v1 CREATE DATABASE
            self._answer(200, b'{"results":[{"statement_id":0}]}')
        elif path == "/api/v2/query":
            found = self.fake.checkpoints.get(("v2", "metrics"))
            answer = _flux_csv(*found) if found is not None else b""
            self._answer(200, answer, "text/csv; charset=utf-8")
        else:
            self._answer(404)


@pytest.fixture
def fake_influx() -> Iterator[tuple[_Fake, str]]:
    fake = _Fake()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": fake}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _points(fake: _Fake, api: str) -> list[str]:
    """Every line written through ``api``, except the wall-clock-stamped lag points."""
    return [
        text
        for write in fake.writes
        if write["api"] == api
        for text in write["lines"]
        if not text.startswith("projection,")
    ]


def _run(metrics: InfluxMetrics, journal_path: Path, stop_seq: int | None = None) -> None:
    with open_journal(journal_path) as journal:
        records = [r for r in journal.records() if stop_seq is None or r.seq <= stop_seq]
        for start in range(0, len(records), 7):
            metrics.apply(records[start : start + 7], head_seq=len(journal) - 1)


def test_v2_writes_the_same_points_as_v1(tmp_path: Path, fake_influx: tuple[_Fake, str]) -> None:
    fake, url = fake_influx
    write_journal(tmp_path / "j", trading_events())
    _run(InfluxMetrics.open(InfluxV1(url, "tape")), tmp_path / "j")
    v2 = InfluxMetrics.open(InfluxV2(url, "acme", "tape-bucket", "secret-token"))
    _run(v2, tmp_path / "j")
    v2.close()

    v1_points, v2_points = _points(fake, "v1"), _points(fake, "v2")
    assert any(p.startswith("fills,") for p in v1_points) and any(p.startswith("nav,") for p in v1_points)
    assert v2_points == v1_points
    v2_writes = [write for write in fake.writes if write["api"] == "v2"]
    assert v2_writes and all(
        write["params"] == {"org": "acme", "bucket": "tape-bucket", "precision": "ns"} for write in v2_writes
    )
    lags = [t for w in v2_writes for t in w["lines"] if t.startswith("projection,projection=metrics ")]
    assert len(lags) == len([t for t in fake.writes if t["api"] == "v2"]) // 2


def test_v2_resumes_from_the_checkpoint_read_back_with_flux(
    tmp_path: Path, fake_influx: tuple[_Fake, str]
) -> None:
    fake, url = fake_influx
    write_journal(tmp_path / "j", trading_events())
    _run(InfluxMetrics.open(InfluxV1(url, "tape")), tmp_path / "j")

    first = InfluxMetrics.open(InfluxV2(url, "acme", "b"))
    _run(first, tmp_path / "j", stop_seq=9)
    assert first.checkpoint_seq == 9
    first.close()
    second = InfluxMetrics.open(InfluxV2(url, "acme", "b"))
    assert second.checkpoint_seq == 9  # read back through /api/v2/query
    _run(second, tmp_path / "j")
    second.close()

    def data(api: str) -> list[str]:  # batch boundaries differ, so checkpoints do too
        return [p for p in _points(fake, api) if not p.startswith("tape_checkpoint,")]

    assert data("v2") == data("v1")
    assert fake.checkpoints[("v2", "metrics")] == fake.checkpoints[("v1", "metrics")]


def test_v2_errors_map_to_retry_or_refusal(tmp_path: Path, fake_influx: tuple[_Fake, str]) -> None:
    fake, url = fake_influx
    transport = InfluxV2(url, "acme", "b")
    fake.fail_writes_with = 503
    with pytest.raises(TargetUnavailable):
        transport.write(["nav,currency=USD nav_minor=1i 1"])
    fake.fail_writes_with = 400
    with pytest.raises(InfluxError):
        transport.write(["nav,currency=USD nav_minor=1i 1"])
    transport.close()
    with pytest.raises(TargetUnavailable):
        InfluxV2("http://127.0.0.1:9", "acme", "b", timeout_s=1).write(["nav,currency=USD nav_minor=1i 1"])


def test_tape_projections_bars_json_names_the_measurement_and_the_bars_written(
    tmp_path: Path,
    fake_influx: tuple[_Fake, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`tape projections bars` printed one line only; --json is one object on stdout (the line
    on stderr): the measurement, the database or bucket and the bars the server was sent."""
    from cli.main import main as tape
    from lake.store import load_panel
    from tests.factories import make_dataset

    fake, url = fake_influx
    make_dataset(tmp_path / "data", symbols=3, bars=40, frequency="1m")
    _, ref = load_panel(tmp_path / "data")
    assert tape(["projections", "bars", str(tmp_path / "data"), "--influx", url, "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    sent = [line for write in fake.writes for line in write["lines"] if line.startswith("ohlcv_1m,")]
    assert printed["bars"] == len(sent) > 0 and printed["instruments"] == 3
    assert (printed["measurement"], printed["database"]) == ("ohlcv_1m", "tape")
    assert printed["content_hash"] == ref.content_hash and printed["influx"] == url
    assert f"{len(sent):,} bars of 3 instruments -> ohlcv_1m" in captured.err
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    v2 = ["--influx-org", "o", "--influx-bucket", "b", "--timeframe", "5m"]
    out = tmp_path / "out" / "bars.json"
    bars = ["projections", "bars", str(tmp_path / "data"), "--influx", url]
    assert tape([*bars, *v2, "--json", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    again = json.loads(out.read_text())
    assert (again["measurement"], again["database"], again["bars"]) == ("ohlcv_5m", "b", len(sent))
