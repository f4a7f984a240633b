"""InfluxDB 1.x credentials: a ``user:password@`` URL works (basic auth on a loopback server),
the password never appears in a message, and credentials can come from an owner-only file or
the environment instead of the command line."""

from __future__ import annotations

import argparse
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cli.main import main
from cli.projections_cmd import influx_credentials, influx_token
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


@pytest.mark.parametrize(
    "verb",
    [
        ["projections", "influx-setup", "--influx", "http://127.0.0.1:9"],
        ["projections", "follow", "j.sqlite", "--influx", "http://127.0.0.1:9", "--influx-org", "o"],
        ["projections", "bars", "dataset", "--influx", "http://127.0.0.1:9", "--influx-org", "o"],
        ["projections", "host-metrics", "--influx", "http://127.0.0.1:9", "--influx-org", "o", "--once"],
    ],
)
def test_a_token_on_the_command_line_is_refused_saying_how_to_pass_it(
    verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: ``--influx-token T`` put the token in ``ps`` (influx-setup, 1.x only, even ignored it).
    Refused before anything is read or contacted (exit 2), without echoing the token."""
    with pytest.raises(SystemExit) as stopped:
        main([*verb, "--influx-token", SECRET])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--influx-token-file" in error and "$INFLUX_TOKEN" in error
    assert SECRET not in error


def test_the_v2_token_from_an_owner_only_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "influx.token"
    file.write_text(SECRET + "\n")
    file.chmod(0o600)
    monkeypatch.setenv("INFLUX_TOKEN", "env-token")
    assert influx_token(argparse.Namespace(influx_token_file=str(file))) == SECRET  # the file first
    assert influx_token(argparse.Namespace(influx_token_file=None)) == "env-token"
    file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        influx_token(argparse.Namespace(influx_token_file=str(file)))
    file.write_text("\n")
    file.chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        influx_token(argparse.Namespace(influx_token_file=str(file)))


def test_influx_setup_refuses_the_v2_options_it_would_ignore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "influx.token"
    file.write_text(SECRET)
    file.chmod(0o600)
    setup = ["projections", "influx-setup", "--influx", "http://127.0.0.1:9"]
    assert main([*setup, "--influx-token-file", str(file)]) == 2
    assert "influx-setup is for InfluxDB 1.x (credentials: --influx-credentials" in capsys.readouterr().out
