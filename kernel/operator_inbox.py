"""Operator commands to a running session: a JSON-lines inbox beside its journal.

A paper (later: live) session reads ``JOURNAL.commands.jsonl`` as it runs; ``tape command`` and
the cockpit append to it. Each line is one command, ``{"command": "halt", "operator": "ana",
"note": "..."}``; the session stamps it with its clock when it reads it and journals it as a
``CommandReceived`` input before the kernel applies it at its next step (the kill switch:
``halt``, ``flatten``, ``rearm``). A line that is not a command (not JSON, not an object, a field
other than ``command``, ``operator``, ``note`` and ``strategy``, say a misspelt ``"stratgey"``, or
a missing or wrong one) is refused with its reason and journaled as ``InputQuarantined`` (source
``operator``), never skipped silently nor applied to the whole book. Appends are one
``write`` of a whole line to a file opened for appending, so two writers do not interleave; the
reader takes whole lines only and keeps its place by byte offset.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.riskrules import OPERATOR_COMMANDS
from kernel.schedules import STRATEGY_COMMANDS

__all__ = [
    "COMMANDS",
    "CommandInbox",
    "InboxLine",
    "SessionClaim",
    "SessionRunning",
    "inbox_path",
    "running_session",
    "send_command",
    "session_strategies",
    "session_path",
    "strategy_refusal",
]

COMMANDS = OPERATOR_COMMANDS + STRATEGY_COMMANDS
"""The kill switch's commands (``domain.riskrules.OPERATOR_COMMANDS``) and one strategy's
(``kernel.schedules.STRATEGY_COMMANDS``, which name it)."""

_MAX_LINE = 4096
_FIELDS = ("command", "operator", "note", "strategy")


def inbox_path(journal: Path | str) -> Path:
    """The command inbox of the session writing ``journal``."""
    return Path(str(journal).rstrip("/") + ".commands.jsonl")


def session_path(journal: Path | str) -> Path:
    """Where the session writing ``journal`` leaves its process id while it runs."""
    return Path(str(journal).rstrip("/") + ".session.pid")


class SessionRunning(Exception):
    """Another process holds the session of this journal (``SessionClaim``)."""

    def __init__(self, journal: Path | str, pid: int | None) -> None:
        self.pid = pid
        who = f"a session (pid {pid})" if pid else "another session"
        super().__init__(
            f"{journal}: {who} is writing this journal already; stop it before starting or "
            "resuming another (two writers would send and journal everything twice)"
        )


class SessionClaim:
    """The one session allowed to write ``journal``: an exclusive ``flock`` on its
    ``JOURNAL.session.pid``, held until ``release`` (or the process's end, however it ends, so a
    mark left by a killed session does not hold the next one back). Raises ``SessionRunning``
    while another process holds it. The process id is written by ``mark`` (``running_session``
    reads it), once the session takes commands."""

    def __init__(self, journal: Path | str) -> None:
        self.path = session_path(journal)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SessionRunning(journal, running_session(journal)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its last holder unlinked while this one opened it
                break
            os.close(fd)
        os.ftruncate(fd, 0)  # a killed session's process id, which another process may have now
        self._fd: int | None = fd

    def mark(self, pid: int, strategies: Sequence[str] = ()) -> Path:
        """The session runs as ``pid`` with the book's ``strategies`` (``tape command`` and the
        cockpit look for it; ``send_command`` refuses a pause / resume naming another)."""
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, "".join(f"{line}\n" for line in (pid, *strategies)).encode(), 0)
        return self.path

    def unmark(self) -> None:
        """The session takes no more commands (it still holds the journal)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def release(self) -> None:
        """The session ended: the mark goes, then the lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def running_session(journal: Path | str) -> int | None:
    """The process id of the session writing ``journal`` if it is running, else None (no mark,
    or a mark left by a session that died)."""
    try:
        pid = int(session_path(journal).read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid


def session_strategies(journal: Path | str) -> tuple[str, ...]:
    """The strategy ids of the book the running session writing ``journal`` trades, from its
    mark (``SessionClaim.mark``); empty where there is no mark or it names none."""
    try:
        lines = session_path(journal).read_text().split("\n")
    except OSError:
        return ()
    return tuple(line for line in lines[1:] if line)


def strategy_refusal(journal: Path | str, strategy: str) -> str | None:
    """Why a pause / resume naming ``strategy`` is refused for the session writing ``journal``
    (it is no strategy of the book the session's mark lists), or None. ``send_command`` refuses
    with it; the cockpit asks it before it asks the operator to confirm."""
    known = session_strategies(journal)
    if known and strategy not in known:
        return f"{strategy!r} is no strategy of the running session's book: it trades {', '.join(known)}"
    return None


def send_command(
    journal: Path | str, command: str, operator: str, note: str = "", strategy: str = ""
) -> Path:
    """Append one command for the session writing ``journal``; returns the inbox's path. A
    pause / resume naming no strategy of the running session's book is refused here (the
    session would journal it ``BAD_COMMAND``)."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    if not operator.strip():
        raise ValueError("name the operator (who sends the command)")
    if (command in STRATEGY_COMMANDS) != bool(strategy):
        raise ValueError(
            f"{command} {'names a strategy' if command in STRATEGY_COMMANDS else 'takes no strategy'}"
        )
    refused = strategy_refusal(journal, strategy) if strategy else None
    if refused is not None:
        raise ValueError(refused)
    fields = {"command": command, "operator": operator, "note": note}
    if strategy:
        fields["strategy"] = strategy
    line = json.dumps(fields, sort_keys=True) + "\n"
    data = line.encode()
    if len(data) > _MAX_LINE:
        raise ValueError(f"the note is too long (a command line is at most {_MAX_LINE} bytes)")
    path = inbox_path(journal)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


@dataclass(frozen=True)
class InboxLine:
    """One line read: the command's fields, or why it is not a command (``reason`` non-empty)."""

    command: str = ""
    operator: str = ""
    note: str = ""
    strategy: str = ""
    reason: str = ""
    detail: str = ""


class CommandInbox:
    """Reads the lines appended since the last read (whole lines only)."""

    def __init__(self, path: Path) -> None:
        """Lines already in the file are left unread (a session applies what is sent while it
        runs); ``skipped`` says how many bytes that was."""
        self.path = path
        self._file: tuple[int, int] | None = None  # (device, inode) of the file read
        try:
            stat = path.stat()
            self._offset, self._file = stat.st_size, (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            self._offset, self._file = 0, None
        self.skipped = self._offset

    def read(self) -> list[InboxLine]:
        """A file removed or emptied since the last read (an operator's clean-up) and written
        again is a new inbox: read from its start, else its commands would lie before the old
        offset, unread."""
        try:
            with self.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                if (stat.st_dev, stat.st_ino) != self._file or stat.st_size < self._offset:
                    self._offset, self._file = 0, (stat.st_dev, stat.st_ino)
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []  # a line still being written
        self._offset += end + 1
        return [_parse(raw) for raw in data[:end].split(b"\n")]


def _parse(raw: bytes) -> InboxLine:
    shown = raw[:200].decode("utf-8", "replace")
    try:
        fields = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return InboxLine(reason="BAD_COMMAND", detail=f"not JSON: {shown!r}")
    if not isinstance(fields, dict):
        return InboxLine(reason="BAD_COMMAND", detail=f"not an object: {shown!r}")
    unknown = sorted(str(name) for name in fields if name not in _FIELDS)
    if unknown:  # a misspelt "strategy" must not turn a pause into a command to the whole book
        return InboxLine(
            reason="BAD_COMMAND",
            detail=f"unknown field {', '.join(map(repr, unknown))} (a command has "
            f"{', '.join(_FIELDS)}): {shown!r}",
        )
    command, operator, note = fields.get("command"), fields.get("operator"), fields.get("note", "")
    if command not in COMMANDS:
        return InboxLine(
            reason="BAD_COMMAND", detail=f"command must be one of {', '.join(COMMANDS)}: {shown!r}"
        )
    strategy = fields.get("strategy", "")
    if not isinstance(strategy, str) or (command in STRATEGY_COMMANDS) != bool(strategy):
        return InboxLine(
            reason="BAD_COMMAND", detail=f"pause / resume name a strategy, the others none: {shown!r}"
        )
    if not isinstance(operator, str) or not operator.strip() or not isinstance(note, str):
        return InboxLine(
            reason="BAD_COMMAND", detail=f"operator (a name) and note (text) expected: {shown!r}"
        )
    return InboxLine(command=command, operator=operator, note=note, strategy=strategy)
