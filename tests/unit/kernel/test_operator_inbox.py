"""The operator inbox refuses a line with a field no command has, naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.operator_inbox import CommandInbox, InboxLine, inbox_path


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
