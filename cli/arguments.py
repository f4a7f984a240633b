"""Argument types shared by the verbs' parsers (a refused value: argparse's one line, exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["at_least", "schema_name"]


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
