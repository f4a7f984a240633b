"""``tape verify J --json``: one JSON object on stdout with the verdict, and the exit status
the text gives (0 sound and finished, 1 damaged, 3 sound but unfinished)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import EXIT_DAMAGED, EXIT_OK, EXIT_UNFINISHED, main
from kernel.store import open_journal
from tests.factories import killed_copy, make_config, make_dataset, run


def test_verify_json_says_sound_unfinished_and_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape verify` had no --json: a scheduled check could only scrape a coloured line
    (`OK 5,901 records, chain head 4f9283d684f5502a...`, the head cut to 16 digits)."""
    result = run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), tmp_path / "j"))
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "j"), "--json"]) == EXIT_OK
    sound = json.loads(capsys.readouterr().out)
    assert sound["ok"] is True and sound["finished"] is True and sound["first_bad_seq"] is None
    assert sound["records"] == result.records and sound["chain_head"] == result.last_hash
    killed_copy(tmp_path / "j", tmp_path / "cut", 30)
    assert main(["verify", str(tmp_path / "cut"), "--json"]) == EXIT_UNFINISHED
    unfinished = json.loads(capsys.readouterr().out)
    assert unfinished["ok"] is True and unfinished["finished"] is False and unfinished["unfinished"]
    data = tmp_path / "j" / "data.mdb"
    with open_journal(tmp_path / "j") as journal:
        payload = bytes(journal.record(20).payload)
    raw = data.read_bytes()
    at = raw.index(payload)
    data.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    assert main(["verify", str(tmp_path / "j"), "--json"]) == EXIT_DAMAGED
    damaged = json.loads(capsys.readouterr().out)
    assert damaged["ok"] is False and damaged["first_bad_seq"] == 20 and damaged["reason"], damaged
