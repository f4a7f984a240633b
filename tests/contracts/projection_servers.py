"""Real servers for projection tests: a scratch PostgreSQL database and an ``influxd``.

PostgreSQL is the one at ``TAPE_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432``,
trust auth); each test gets its own database, dropped afterwards. ``influxd`` (Debian's
``influxdb`` 1.6) is started on a free loopback port with its data in a temporary folder and
stopped by its pid. When either is unavailable the test is skipped with the reason; CI
(``.ci/run``) installs and starts both.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_SERVER = os.environ.get("TAPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
INFLUXD_READY_TIMEOUT_S = 20.0
_counter = itertools.count()


def postgres_skip_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=3):
            return None
    except psycopg.OperationalError as error:
        return f"no PostgreSQL at {POSTGRES_SERVER}: {str(error).strip()}"


def require_postgres() -> None:
    reason = postgres_skip_reason()
    if reason is not None:
        pytest.skip(reason)


def admin_execute(statement: str, database: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER}/{database}", autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database for one test; yields its URL and drops it (and its sessions) after."""
    require_postgres()
    name = f"tape_test_{os.getpid()}_{next(_counter)}"
    admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin_execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        admin_execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class InfluxServer:
    """One ``influxd`` with its data under ``root``; ``stop`` and ``start`` keep the data."""

    def __init__(self, root: Path, *, continuous_queries: bool = False) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            pytest.skip("influxd is not installed (apt-get install -y influxdb)")
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        root_text = str(root)
        self.config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{root_text}/meta"\n'
            f'[data]\n  dir = "{root_text}/data"\n  wal-dir = "{root_text}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            + (
                '[continuous_queries]\n  enabled = true\n  run-interval = "1s"\n'
                if continuous_queries
                else "[continuous_queries]\n  enabled = false\n"
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None
        log = (self.root / "influxd.log").open("ab")
        self.process = subprocess.Popen([self.binary, "-config", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + INFLUXD_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                    if response.status == 204:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {INFLUXD_READY_TIMEOUT_S}s; see {self.root}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def running_influxd(root: Path, *, continuous_queries: bool = False) -> Iterator[InfluxServer]:
    server = InfluxServer(root, continuous_queries=continuous_queries)
    server.start()
    try:
        yield server
    finally:
        server.stop()
