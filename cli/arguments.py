"""Argument types shared by the verbs' parsers (a refused value: argparse's one line, exit 2)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "POSTGRES_SCHEMES", "at_least", "ledger_target", "output_file", "output_folder", "postgres_url",
    "schema_name", "sqlite_path",
]  # fmt: skip

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


def output_file(text: str) -> str:
    """argparse type of every option that names a file the verb writes (``--json [PATH]``,
    ``--csv PATH``, ``report --orders`` / ``--strategies``): ``-`` (stdout) as it is. An empty
    path is refused (``--json ""``, an unset ``$OUT``: the verb ran and wrote nothing, silently),
    and so is a file that cannot be written (the path is a folder, a folder on its way is a
    file, no permission): found at the end, it lost the results of a sweep, a backtest or a
    rebuild that had run to it. Exit 2 before any work, naming the path and why. Nothing is
    created here: the file's folder is made when the file is written (``write_output``)."""
    if text == "-":
        return text
    if not text:
        raise argparse.ArgumentTypeError("an empty path: give a file, or '-' for stdout")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: cannot write it: it is a folder")
    if os.path.exists(text) and not os.access(text, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write it: no permission")
    _folder_can_be_made(Path(text).parent, text)
    return text


def output_folder(text: str) -> str:
    """argparse type of an option that names a folder the verb writes files into at its end
    (``report --csv DIR``, ``tearsheet --out``): refused before the work (exit 2, naming it and
    why) where files could not be written there, as ``output_file``; nothing is created. ``-``
    is passed on: the verb refuses it before any work (``report`` with its own advice, the
    others with ``cli.progress.not_stdout``), as ``qlib import --signal`` does for its file."""
    if text == "-":
        return text
    if not text:
        raise argparse.ArgumentTypeError("an empty path: give a folder")
    if os.path.lexists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: cannot write files in it: it is not a folder")
    _folder_can_be_made(Path(text), text)
    return text


def _folder_can_be_made(folder: Path, text: str) -> None:
    """Refuse ``text`` where ``folder`` is not, or cannot be made, a folder Tape can write in:
    its nearest existing ancestor must be a folder with write permission (a folder on the way
    that cannot be searched is none)."""
    for ancestor in (folder, *folder.parents):
        if os.path.isdir(ancestor):
            if os.access(ancestor, os.W_OK | os.X_OK):
                return
            raise argparse.ArgumentTypeError(f"{text}: cannot write it: no permission to write in {ancestor}")
        if os.path.lexists(ancestor):  # a file (or a dangling link) on the way
            raise argparse.ArgumentTypeError(f"{text}: cannot write it: {ancestor} is not a folder")
