"""Loopback servers for the alert route tests and bench/bench_alerts.py: a real SMTP server
(aiosmtpd) and a small HTTP server standing in for Telegram's bot API and webhook receivers.
Both listen on 127.0.0.1 only; nothing reaches an outside address."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0: ask the kernel for a free one first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    at_ns: int
    message: Message


@dataclass
class MailSink:
    """aiosmtpd handler that keeps every message with its arrival time (time.time_ns)."""

    user: str = "tape"
    password: str = ""
    port: int = 0  # set by start_smtp
    messages: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    peers: list[tuple[str, int]] = field(default_factory=list)  # each message's connection

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = Received(time.time_ns(), message_from_bytes(envelope.content))
        with self.arrived:
            self.peers.append(tuple(session.peer))
            self.messages.append(received)
            self.arrived.notify_all()
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == self.user
        ok = ok and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout_s)
            return list(self.messages)


def start_smtp(sink: MailSink) -> Controller:
    sink.port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=sink.authenticate if sink.password else None,
        auth_require_tls=False,
    )
    controller.start()
    return controller


@dataclass
class HttpSink:
    """Records every POST (path, headers, JSON body); answers ``status`` with ``answer``."""

    status: int = 200
    answer: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    echo_path: bool = False  # a hostile server that quotes the request path back in its error
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> HttpSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append((self.path, dict(self.headers), json.loads(body or b"null")))
                answer = dict(sink.answer)
                if sink.echo_path:
                    answer["description"] = f"bad request to {self.path}"
                data = json.dumps(answer).encode()
                self.send_response(sink.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
