"""InfluxDB 1.x credentials: a ``user:password@`` URL works (basic auth on a loopback server),
the password never appears in a message, and credentials can come from an owner-only file or
the environment instead of the command line."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cli.projections_cmd import influx_credentials
from cli.wiring import ConfigError
from projections import TargetUnavailable
from projections.metrics_influx import InfluxV1, split_credentials

SECRET = "s3cr:et/pw"  # a canary: it must never be printed


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        _Handler.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_credentials_in_the_url_become_basic_auth_and_leave_the_url(server: int) -> None:
    quoted = SECRET.replace(":", "%3A").replace("/", "%2F")
    influx = InfluxV1(f"http://tape:{quoted}@127.0.0.1:{server}", "db")
    assert influx.url == f"http://127.0.0.1:{server}" and SECRET not in influx.url
    influx.write(["m v=1i 1"])
    expected = "Basic " + base64.b64encode(f"tape:{SECRET}".encode()).decode()
    assert _Handler.seen[-1] == expected


def test_a_failing_target_names_the_host_without_the_password() -> None:
    influx = InfluxV1(f"http://tape:{SECRET.replace(':', '%3A').replace('/', '%2F')}@127.0.0.1:9", "db")
    with pytest.raises(TargetUnavailable) as caught:
        influx.write(["m v=1i 1"])
    assert "127.0.0.1:9" in str(caught.value) and "s3cr" not in str(caught.value)


def test_split_credentials_keeps_a_url_without_them() -> None:
    assert split_credentials("http://127.0.0.1:8086") == ("http://127.0.0.1:8086", "", "")
    assert split_credentials("https://u:p@[::1]:8086/x") == ("https://[::1]:8086/x", "u", "p")


def test_credentials_from_an_owner_only_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "influx.cred"
    file.write_text(f"username=tape\npassword={SECRET}\n")
    file.chmod(0o600)
    assert influx_credentials(str(file)) == ("tape", SECRET)
    file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        influx_credentials(str(file))
    monkeypatch.setenv("INFLUX_USERNAME", "env-user")
    monkeypatch.setenv("INFLUX_PASSWORD", "env-pass")
    assert influx_credentials(None) == ("env-user", "env-pass")
