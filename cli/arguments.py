"""Argument types shared by the verbs' parsers (a refused value: argparse's one line, exit 2)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["POSTGRES_SCHEMES", "at_least", "ledger_target", "postgres_url", "schema_name", "sqlite_path"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (``--top``, ``--workers``,
    ``--runs``, a count or a seed); anything else is refused naming the option, exit 2."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number


def schema_name(text: str) -> str:
    """argparse type of ``--schema``: a PostgreSQL schema Tape can name unquoted (what the
    ledger's SQL and the dashboards' ``tape_ledger.table`` queries need), else exit 2."""
    from projections import check_identifier  # here: the parsers are built without it

    try:
        return check_identifier(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a schema name is lower-case letters, digits and '_' "
            "(at most 63, not starting with a digit), e.g. tape_ledger"
        ) from None


def ledger_target(text: str) -> Path | str:
    """argparse type of ``--db`` where a ledger is SQLite or PostgreSQL: a ``postgresql://`` URL
    (kept as text), else a file path. Any other URL is refused naming its scheme only (its
    password is not echoed): ``mysql://u:pw@host/x`` was taken for a file path, and a SQLite
    ledger was written under folders named after the URL, password included."""
    if text.startswith(POSTGRES_SCHEMES):
        return text
    _no_other_url(text, "give a SQLite file path or a postgresql:// URL")
    return Path(text)


def sqlite_path(text: str) -> Path:
    """argparse type of ``tape rebuild --db``: a SQLite file path; a URL is refused (PostgreSQL
    is ``tape projections rebuild``'s)."""
    _no_other_url(
        text, "tape rebuild writes a SQLite file; for PostgreSQL: tape projections rebuild JOURNAL --db URL"
    )
    return Path(text)


def postgres_url(text: str) -> str:
    """argparse type of a ``--db`` that only PostgreSQL serves (``grant-readonly``)."""
    if not text.startswith(POSTGRES_SCHEMES):
        scheme = _URL_SCHEME.match(text)
        raise argparse.ArgumentTypeError(
            f"{scheme.group(0) if scheme else repr(text)} is not a postgresql:// URL"
        )
    return text


def _no_other_url(text: str, advice: str) -> None:
    scheme = _URL_SCHEME.match(text)
    if scheme is not None:
        raise argparse.ArgumentTypeError(f"{scheme.group(0)}... is not a ledger Tape writes: {advice}")
