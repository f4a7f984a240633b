"""Structured JSON logs for the long-running verbs (``tape alerts follow``, ``tape scheduler``).

One JSON object a line, ready for Promtail / Grafana Agent: ``ts`` (UTC, ISO 8601 with
milliseconds), ``level``, ``logger``, ``msg``, and the context fields ``run``, ``component``,
``market``, ``symbol``, ``order_id``, ``seq`` (journal sequence) and ``job`` when known — set once
for a process with ``configure_logging(component=..., run=...)`` and per line with
``log.info("...", extra={"seq": 12})``. Files rotate by size (``RotatingFileHandler``).

Secrets never reach a line: every string value (the message, the exception text, the context
fields) goes through a ``Redactor`` that knows the secrets loaded so far (an SMTP password, a
bot token) and writes ``***`` in their place, also where they appear URL-encoded; and the
password of any URL (``postgresql://user:PASSWORD@host/db``) whether it is known or not.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

__all__ = [
    "CONTEXT_FIELDS",
    "LOGGER_NAME",
    "REDACTED",
    "JsonFormatter",
    "LogSetup",
    "Redactor",
    "configure_logging",
    "mask_url_passwords",
]

LOGGER_NAME = "tape"
REDACTED = "***"
CONTEXT_FIELDS = ("run", "component", "market", "symbol", "order_id", "seq", "job", "alert_id", "attempt")
SECRET_LENGTH_MIN = 4  # shorter "secrets" would redact ordinary words


# scheme://user:PASSWORD@ -- the password runs to the authority's last "@" (an unescaped "@" in
# it, as in "p@ss", is masked whole), never past a "/", a space or a quote (the end of a JSON text)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"']*):[^\s/\"']*@")


def mask_url_passwords(text: str) -> str:
    """``postgresql://tape:s3cret@host/db`` -> ``postgresql://tape:***@host/db``: the password of
    every URL in ``text``, known to the redactor or not (a job's ``--db`` URL)."""
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)


class Redactor:
    """Replaces every known secret (and its URL-encoded forms) in a text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) < SECRET_LENGTH_MIN:
            raise ValueError(
                f"a secret shorter than {SECRET_LENGTH_MIN} characters cannot be redacted safely"
            )
        forms = {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}
        self._forms = sorted(set(self._forms) | forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return mask_url_passwords(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; context fields from the formatter's defaults, overridden
    by the record's ``extra``; every string redacted."""

    def __init__(self, redactor: Redactor, defaults: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._redactor = redactor
        self._defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, Any] = {
            "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(self._defaults)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        redact = self._redactor.redact
        clean = {k: redact(v) if isinstance(v, str) else v for k, v in line.items()}
        return redact(json.dumps(clean, ensure_ascii=False, default=str))


@dataclass
class LogSetup:
    """What ``configure_logging`` installed, so a caller (or a test) can take it down again."""

    logger: logging.Logger
    redactor: Redactor
    handlers: list[logging.Handler] = field(default_factory=list)
    previous: tuple[int, bool] = (logging.NOTSET, True)  # the logger's level and propagate before

    def close(self) -> None:
        """Remove the handlers and give the logger back as it was (an in-process caller, e.g. a
        test's log capture on ``tape.*``, sees records again)."""
        for handler in self.handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        self.logger.setLevel(self.previous[0])
        self.logger.propagate = self.previous[1]


def configure_logging(
    component: str,
    *,
    run: str = "",
    path: Path | str | None = None,
    level: str = "INFO",
    max_bytes: int = 10 * 2**20,
    backups: int = 5,
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> LogSetup:
    """JSON lines on the ``tape`` logger: to ``path`` (rotated at ``max_bytes``, ``backups``
    old files kept) or, without a path, to ``stream`` (stderr)."""
    redactor = redactor if redactor is not None else Redactor()
    logger = logging.getLogger(LOGGER_NAME)
    previous = (logger.level, logger.propagate)
    logger.setLevel(level.upper())
    logger.propagate = False
    handler: logging.Handler
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(redactor, {"component": component, "run": run}))
    logger.addHandler(handler)
    return LogSetup(logger=logger, redactor=redactor, handlers=[handler], previous=previous)
