"""cli.logs: one JSON object a line with the context fields, rotation by size, and a secrets
canary: a secret (raw, URL-encoded or JSON-escaped) never reaches a line, messages and
tracebacks included."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from cli.logs import Redactor, configure_logging

CANARY = 'canary:"pa ss/w0rd"+\\'


def test_lines_carry_the_context_fields(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup = configure_logging("scheduler", run="paper-1", stream=stream)
    try:
        log = logging.getLogger("tape.test")
        log.info(
            "order %s sent", "o-7", extra={"order_id": "o-7", "symbol": "AAPL", "market": "XNYS", "seq": 42}
        )
    finally:
        setup.close()
    line = json.loads(stream.getvalue())
    assert {
        k: line[k] for k in ("level", "logger", "msg", "component", "run", "order_id", "symbol", "seq")
    } == {
        "level": "info",
        "logger": "tape.test",
        "msg": "order o-7 sent",
        "component": "scheduler",
        "run": "paper-1",
        "order_id": "o-7",
        "symbol": "AAPL",
        "seq": 42,
    }
    assert line["market"] == "XNYS"
    assert line["ts"].endswith("Z")


def test_secrets_canary_in_messages_fields_and_tracebacks(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup = configure_logging("alerts", stream=stream, redactor=Redactor([CANARY]))
    try:
        log = logging.getLogger("tape.test")
        log.warning("login with %s failed", CANARY, extra={"symbol": CANARY})
        log.error("GET https://api.example/bot%s/sendMessage", quote(CANARY, safe=""))
        try:
            raise RuntimeError(f"token {CANARY} refused")
        except RuntimeError:
            log.exception("delivery failed")
    finally:
        setup.close()
    text = stream.getvalue()
    assert len(text.splitlines()) == 3
    for form in (CANARY, quote(CANARY, safe=""), quote(CANARY), json.dumps(CANARY)[1:-1]):
        assert form not in text
    assert text.count("***") >= 4
    assert all(json.loads(line) for line in text.splitlines())


def test_files_rotate_by_size(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "tape.jsonl"
    setup = configure_logging("alerts", path=path, max_bytes=2_000, backups=2)
    try:
        log = logging.getLogger("tape.test")
        for i in range(100):
            log.info("line %d %s", i, "x" * 50)
    finally:
        setup.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["tape.jsonl", "tape.jsonl.1", "tape.jsonl.2"]
    last = path.read_text().splitlines()[-1]
    assert json.loads(last)["msg"].startswith("line 99 ")


def test_a_short_secret_is_refused_rather_than_redacting_words() -> None:
    with pytest.raises(ValueError, match="shorter"):
        Redactor(["abc"])


def test_closing_gives_the_logger_back_as_it_was() -> None:
    """An in-process caller (a test's log capture on ``tape.*``) must see records again."""
    logger = logging.getLogger("tape")
    before = (logger.level, logger.propagate, list(logger.handlers))
    setup = configure_logging("alerts", stream=io.StringIO(), level="DEBUG")
    assert logger.propagate is False
    setup.close()
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_a_url_password_nobody_registered_never_reaches_a_line() -> None:
    """A job's ``--db postgresql://user:PASSWORD@host/db`` (or an InfluxDB URL) is logged with its
    command, quoted by errors and tracebacks: its password is masked though no route or
    ``redact_env`` named it; the user, host and database stay readable."""
    stream = io.StringIO()
    setup = configure_logging("scheduler", stream=stream)
    url = "postgresql://tape:S3cret-pw@db.example:5432/tape"
    odd = url.replace("S3cret-pw", "p@ss:w0rd")  # an "@" and a ":" in the password, unescaped
    try:
        log = logging.getLogger("tape.test")
        log.info("job x: tape audit j --db %s", url, extra={"job": url})
        try:
            raise RuntimeError(f"could not connect to {odd}")
        except RuntimeError:
            log.exception("failed")
    finally:
        setup.close()
    text = stream.getvalue()
    assert "S3cret-pw" not in text and "p@ss" not in text and "w0rd" not in text
    assert "postgresql://tape:***@db.example:5432/tape" in json.loads(text.splitlines()[0])["msg"]
    assert all(json.loads(line) for line in text.splitlines())
