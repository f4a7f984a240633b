"""Where alerts go: e-mail (SMTP), Telegram (bot API) and generic webhooks (JSON POST).

Routes are ``[[routes]]`` tables of the alerts TOML. Secrets (the SMTP password, the bot token,
a webhook's bearer token) are never written in the TOML nor passed on the command line: a route
names an environment variable (``password_env = "TAPE_SMTP_PASSWORD"``) or a file readable by
its owner only (``password_file = "~/.config/tape/smtp"``, mode 0600 or stricter). Every secret
loaded is registered with the ``Redactor`` the logs use, and delivery errors are redacted before
they are logged or stored (a bot token is part of Telegram's URL, which errors tend to quote).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import smtplib
import ssl
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from cli.logs import SECRET_LENGTH_MIN, Redactor, mask_url_passwords
from projections.alerts import SEVERITIES, Alert, AlertConfigError, Pending

__all__ = [
    "ROUTE_KINDS",
    "DeliveryFailed",
    "Route",
    "SmtpRoute",
    "TelegramRoute",
    "WebhookRoute",
    "load_secret",
    "notification_text",
    "routes_from_config",
]

ROUTE_KINDS = ("smtp", "telegram", "webhook")
TIMEOUT_S_DEFAULT = 10.0


class DeliveryFailed(Exception):
    """A route could not deliver; the message is already redacted."""


class Route(Protocol):
    name: str
    min_severity: str

    def send(self, pending: Pending, journal: str) -> None: ...

    def close(self) -> None:
        """End what the route keeps open between the sends of one delivery pass."""
        ...


def load_secret(
    table: Mapping[str, Any], field_name: str, route: str, redactor: Redactor, *, read: bool = True
) -> str | None:
    """``<field>_env`` (an environment variable) or ``<field>_file`` (a file only its owner can
    read); a literal ``<field>`` in the TOML is refused. None when neither is given; ``""`` when
    one is given and ``read`` is false (a verb that sends nothing needs no secret set)."""
    if field_name in table:
        raise AlertConfigError(
            f"route {route}: {field_name} must not be written in the rules file; "
            f"use {field_name}_env (an environment variable) or {field_name}_file (a mode-0600 file)"
        )
    env_name = table.get(f"{field_name}_env")
    file_name = table.get(f"{field_name}_file")
    if env_name and file_name:
        raise AlertConfigError(f"route {route}: give {field_name}_env or {field_name}_file, not both")
    if not read:
        return "" if env_name or file_name else None
    if env_name:
        secret = os.environ.get(str(env_name), "")
        if not secret:
            raise AlertConfigError(f"route {route}: environment variable {env_name} is not set")
    elif file_name:
        secret = _read_private_file(Path(str(file_name)).expanduser(), route)
    else:
        return None
    if len(secret) < SECRET_LENGTH_MIN:
        raise AlertConfigError(
            f"route {route}: the secret of {env_name or file_name} is shorter than {SECRET_LENGTH_MIN} "
            "characters: it cannot be redacted from the logs without hiding ordinary words"
        )
    redactor.add(secret)
    return secret


def _read_private_file(path: Path, route: str) -> str:
    try:
        info = path.stat()
    except OSError as error:
        raise AlertConfigError(f"route {route}: secret file {path}: {error.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid():
        raise AlertConfigError(
            f"route {route}: secret file {path} must belong to you and be readable by you only "
            f"(chmod 600 {path}); it is mode {stat.filemode(info.st_mode)}"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise AlertConfigError(f"route {route}: secret file {path} is empty")
    return secret


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def notification_text(pending: Pending, journal: str) -> tuple[str, str]:
    """(subject, body) of one notification."""
    alert = pending.alert
    state = {"fire": "FIRING", "repeat": "STILL FIRING", "resolve": "RESOLVED"}[pending.phase]
    subject = f"[tape {alert.severity.upper()}] {state}: {alert.rule} {alert.key}"
    lines = [
        f"{state} {alert.rule} ({alert.key}), severity {alert.severity}, alert #{alert.id}",
        alert.message,
        f"journal {journal}, seq {alert.fired_seq}, event time {_iso(alert.fired_ts_ns)}",
    ]
    if pending.phase == "resolve":
        lines.append(f"resolved: {alert.resolved_message} (seq {alert.resolved_seq})")
    elif alert.status == "resolved":  # told after it resolved (fired and cleared in one batch)
        lines.append(f"since resolved: {alert.resolved_message} (seq {alert.resolved_seq})")
    elif pending.phase == "repeat":
        lines.append(f"not acknowledged: tape alerts ack {alert.id} --rules RULES.toml")
    return subject, "\n".join(lines) + "\n"


def _payload(pending: Pending, journal: str) -> dict[str, Any]:
    alert: Alert = pending.alert
    subject, text = notification_text(pending, journal)
    return {
        "id": alert.id,
        "phase": pending.phase,
        "status": alert.status,
        "rule": alert.rule,
        "key": alert.key,
        "severity": alert.severity,
        "message": alert.message,
        "resolved_message": alert.resolved_message,
        "journal": journal,
        "seq": alert.fired_seq,
        "ts_ns": alert.fired_ts_ns,
        "subject": subject,
        "text": text,
    }


@dataclass
class SmtpRoute:
    name: str
    min_severity: str
    host: str
    port: int
    sender: str
    to: list[str]
    redactor: Redactor
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "starttls"  # starttls | ssl | none
    timeout_s: float = TIMEOUT_S_DEFAULT
    _session: smtplib.SMTP | None = field(default=None, init=False, repr=False, compare=False)

    def send(self, pending: Pending, journal: str) -> None:
        subject, body = notification_text(pending, journal)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, ", ".join(self.to), subject
        message.set_content(body)
        try:
            self._deliver(message)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryFailed(self.redactor.redact(f"smtp {self.host}:{self.port}: {error}")) from None

    def _deliver(self, message: EmailMessage) -> None:
        """One connection for a delivery pass (an alert storm of hundreds of notices used to open
        one each, ~150 ms apiece): reused while the server keeps it, opened again once when the
        server closed it in between; after any other failure it is dropped."""
        if self._session is not None:
            try:
                self._session.send_message(message)
                return
            except smtplib.SMTPServerDisconnected:
                self._session = None  # closed by the server since the last send: a new one below
            except BaseException:
                self.close()
                raise
        smtp = self._connect()
        try:
            smtp.send_message(message)
        except BaseException:
            smtp.close()
            raise
        self._session = smtp

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.quit()
        except (OSError, smtplib.SMTPException):
            session.close()


def _post_json(url: str, body: dict[str, Any], headers: Mapping[str, str], timeout_s: float) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # http(s) only: _check_url
        return bytes(response.read())


def _http_error(route: str, error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        detail = error.read()[:200].decode("utf-8", "replace")
        return f"{route}: HTTP {error.code} {error.reason}: {detail}"
    if isinstance(error, http.client.HTTPException):  # the far end does not speak HTTP (a wrong port)
        return f"{route}: not an HTTP answer ({type(error).__name__}: {str(error).strip()[:200]})"
    return f"{route}: {error}"


@dataclass
class TelegramRoute:
    """``POST {base_url}/bot{token}/sendMessage`` with ``chat_id`` and ``text``."""

    name: str
    min_severity: str
    chat_id: str
    token: str = field(repr=False)
    redactor: Redactor
    base_url: str = "https://api.telegram.org"
    timeout_s: float = TIMEOUT_S_DEFAULT

    def close(self) -> None:
        """Nothing kept open between sends (one HTTP request each)."""

    def send(self, pending: Pending, journal: str) -> None:
        subject, body = notification_text(pending, journal)
        url = f"{self.base_url.rstrip('/')}/bot{self.token}/sendMessage"
        message = {"chat_id": self.chat_id, "text": f"{subject}\n{body}", "disable_web_page_preview": True}
        try:
            answer = json.loads(_post_json(url, message, {}, self.timeout_s) or b"{}")
        except (OSError, ValueError, http.client.HTTPException) as error:  # HTTPException: not HTTP
            raise DeliveryFailed(self.redactor.redact(_http_error("telegram", error))) from None
        if not answer.get("ok", False):
            raise DeliveryFailed(self.redactor.redact(f"telegram: answered {answer!r}"))


@dataclass
class WebhookRoute:
    """``POST url`` with the alert as JSON (``_payload``); optional bearer token."""

    name: str
    min_severity: str
    url: str
    redactor: Redactor
    token: str | None = field(default=None, repr=False)
    timeout_s: float = TIMEOUT_S_DEFAULT

    def close(self) -> None:
        """Nothing kept open between sends (one HTTP request each)."""

    def send(self, pending: Pending, journal: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            _post_json(self.url, _payload(pending, journal), headers, self.timeout_s)
        except (OSError, ValueError, http.client.HTTPException) as error:  # HTTPException: not HTTP
            raise DeliveryFailed(self.redactor.redact(_http_error(f"webhook {self.url}", error))) from None


def _check_url(url: object, route: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AlertConfigError(
            f"route {route}: need an http:// or https:// URL, got {mask_url_passwords(repr(url))}"
        )
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:  # user:password@host: a secret in the file
        raise AlertConfigError(
            f"route {route}: no user or password in the URL ({mask_url_passwords(url)}): a secret does not "
            "belong in the rules file; use token_env or token_file (sent as Authorization: Bearer ...)"
        )
    return url


_ROUTE_KEYS = {
    "smtp": {"host", "port", "security", "sender", "to", "username", "password_env", "password_file"},
    "telegram": {"chat_id", "token_env", "token_file", "base_url"},
    "webhook": {"url", "url_env", "url_file", "token_env", "token_file"},
}
_COMMON_KEYS = {"kind", "name", "min_severity", "timeout_s"}


def _text(table: Mapping[str, Any], key: str, route: str) -> None:
    if key in table and (not isinstance(table[key], str) or not table[key]):
        raise AlertConfigError(f"route {route}: {key} must be a text, got {table[key]!r}")


def _check_route_table(table: Mapping[str, Any], kind: str, name: str) -> float:
    """Unknown keys refused (a misspelt ``min_severty`` sent everything, ``pasword_env`` logged
    in with no password), texts where texts belong; the route's ``timeout_s``."""
    unknown = set(table) - _COMMON_KEYS - _ROUTE_KEYS[kind]
    unknown -= {"password", "token"}  # load_secret refuses these with their own reason
    if unknown:
        raise AlertConfigError(f"route {name}: unknown keys {sorted(unknown)} for a {kind} route")
    for key in ("name", "host", "security", "sender", "username", "base_url", "url", "password_env",
                "password_file", "token_env", "token_file", "url_env", "url_file"):  # fmt: skip
        _text(table, key, name)
    if "chat_id" in table and (
        isinstance(table["chat_id"], bool) or not isinstance(table["chat_id"], str | int)
    ):
        raise AlertConfigError(f"route {name}: chat_id must be a text or a number, got {table['chat_id']!r}")
    timeout_s = table.get("timeout_s", TIMEOUT_S_DEFAULT)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s < math.inf:
        raise AlertConfigError(
            f"route {name}: timeout_s must be a number of seconds above 0, got {timeout_s!r}"
        )
    return float(timeout_s)


def _route_from(table: Mapping[str, Any], index: int, redactor: Redactor, read: bool) -> Route:
    kind = table.get("kind")
    if kind not in ROUTE_KINDS:
        raise AlertConfigError(f"[[routes]] #{index + 1}: kind must be one of {ROUTE_KINDS}, got {kind!r}")
    name = str(table.get("name", kind))
    timeout_s = _check_route_table(table, kind, name)
    minimum = table.get("min_severity", "warning")
    if minimum not in SEVERITIES:
        raise AlertConfigError(f"route {name}: min_severity must be one of {SEVERITIES}")
    if kind == "smtp":
        return _smtp_from(table, name, minimum, timeout_s, redactor, read)
    if kind == "telegram":
        token = load_secret(table, "token", name, redactor, read=read)
        if token is None or "chat_id" not in table:
            raise AlertConfigError(f"route {name}: telegram needs chat_id and token_env or token_file")
        base_url = _check_url(table.get("base_url", "https://api.telegram.org"), name)
        return TelegramRoute(name, minimum, str(table["chat_id"]), token, redactor, base_url, timeout_s)
    return WebhookRoute(name, minimum, _webhook_url(table, name, redactor, read), redactor,
                        load_secret(table, "token", name, redactor, read=read), timeout_s)  # fmt: skip


URL_SECRET_PART_MIN = 12  # a secret URL's path parts this long are token-like (not "hooks", "api")


def _webhook_url(table: Mapping[str, Any], route: str, redactor: Redactor, read: bool) -> str:
    """``url``, or ``url_env`` / ``url_file`` for a URL that is itself the secret (a Slack or
    Discord hook carries its token in the path): read as a secret, so redacted everywhere."""
    if "url" in table:
        if "url_env" in table or "url_file" in table:
            raise AlertConfigError(f"route {route}: give url, or url_env or url_file, not two of them")
        return _check_url(table["url"], route)
    secret = load_secret(table, "url", route, redactor, read=read)
    if secret is None:
        raise AlertConfigError(f"route {route}: a webhook needs url, url_env or url_file")
    if not read:
        return secret
    try:
        _check_url(secret, route)
    except AlertConfigError:  # the message would quote the secret
        raise AlertConfigError(
            f"route {route}: the URL in {table.get('url_env') or table.get('url_file')} is not an http:// "
            "or https:// URL without user:password@"
        ) from None
    # a receiver's error may echo the path alone: it, and each token-like part, are secrets too
    parts = urllib.parse.urlsplit(secret)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for piece in (path, *path.replace("?", "/").replace("&", "/").split("/")):
        if len(piece) >= URL_SECRET_PART_MIN:
            redactor.add(piece)
    return secret


def _smtp_from(
    table: Mapping[str, Any], name: str, minimum: str, timeout_s: float, redactor: Redactor, read: bool
) -> SmtpRoute:
    to = table.get("to")
    if isinstance(to, str):
        to = [to]
    if not to or not all(isinstance(a, str) for a in to) or "sender" not in table or "host" not in table:
        raise AlertConfigError(f"route {name}: smtp needs host, sender and to")
    security = table.get("security", "starttls")
    if security not in ("starttls", "ssl", "none"):
        raise AlertConfigError(f"route {name}: security must be starttls, ssl or none")
    port = table.get("port", {"ssl": 465, "starttls": 587, "none": 25}[security])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise AlertConfigError(f"route {name}: port must be a whole number 1..65535, got {port!r}")
    password = load_secret(table, "password", name, redactor, read=read)
    return SmtpRoute(
        name,
        minimum,
        str(table["host"]),
        port,
        str(table["sender"]),
        list(to),
        redactor,
        table.get("username"),
        password,
        security,
        timeout_s,
    )


def routes_from_config(
    tables: list[Mapping[str, Any]], redactor: Redactor, *, read_secrets: bool = True
) -> list[Route]:
    """The routes, each checked; ``read_secrets`` false: the secrets' variables and files are
    named but not read (the routes then cannot send: the caller keeps none of them)."""
    routes = [_route_from(table, i, redactor, read_secrets) for i, table in enumerate(tables)]
    names = [route.name for route in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AlertConfigError(f"route names must be unique (give a `name`): {duplicates}")
    return routes
