"""The operator inbox refuses a line with a field no command has, naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.operator_inbox import CommandInbox, InboxLine, inbox_path, send_command


def _read(tmp_path: Path, *lines: dict[str, object]) -> list[InboxLine]:
    path = inbox_path(tmp_path / "journal")
    inbox = CommandInbox(path)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return inbox.read()


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"command": "halt", "operator": "ana", "note": "", "extra": 1}, "'extra'"),
        # a misspelt strategy: flatten would otherwise go to the whole book
        ({"command": "flatten", "operator": "ana", "stratgey": "sma"}, "'stratgey'"),
        ({"command": "pause", "operator": "ana", "stratgey": "sma"}, "'stratgey'"),
    ],
)
def test_a_line_with_an_unknown_field_is_refused_naming_it(
    tmp_path: Path, line: dict[str, object], field: str
) -> None:
    (read,) = _read(tmp_path, line)
    assert read.reason == "BAD_COMMAND" and not read.command
    assert f"unknown field {field}" in read.detail and "command, operator, note, strategy" in read.detail


def test_valid_lines_read_as_before(tmp_path: Path) -> None:
    lines = _read(
        tmp_path,
        {"command": "halt", "operator": "ana", "note": "drill"},
        {"command": "pause", "operator": "bo", "note": "", "strategy": "sma"},
        {"command": "rearm", "operator": "cy"},
    )
    assert lines == [
        InboxLine(command="halt", operator="ana", note="drill"),
        InboxLine(command="pause", operator="bo", strategy="sma"),
        InboxLine(command="rearm", operator="cy"),
    ]


@pytest.mark.parametrize("how", ["removed", "truncated"])
def test_a_command_sent_after_the_inbox_was_removed_or_emptied_is_read(tmp_path: Path, how: str) -> None:
    """An operator clears the inbox file while a session runs (it grows across sessions): the
    next ``tape command`` writes a new, shorter file. The session read on from its old offset,
    past the new file's end, and never saw that halt (nor any command after it)."""
    journal = tmp_path / "journal"
    path = inbox_path(journal)
    for n in range(5):  # a previous session's commands, skipped by this one
        send_command(journal, "rearm", operator="old", note=f"earlier {n}")
    inbox = CommandInbox(path)
    send_command(journal, "halt", operator="ana", note="first")
    assert [line.note for line in inbox.read()] == ["first"]
    if how == "removed":
        path.unlink()
    else:
        path.write_bytes(b"")
    assert inbox.read() == []
    send_command(journal, "halt", operator="ana", note="after the clean-up")
    send_command(journal, "flatten", operator="bo")
    lines = inbox.read()
    assert [(line.command, line.note) for line in lines] == [("halt", "after the clean-up"), ("flatten", "")]
    assert inbox.read() == []  # and each once
