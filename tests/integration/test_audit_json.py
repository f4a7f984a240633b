"""``tape audit --json``: the verdict and each differing table as one JSON object on stdout,
with the same exit status as the text (0 equal, 1 a ledger edited by hand)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cli.main import main
from projections import rebuild_ledger
from tests.factories import make_config, make_dataset, run


def test_audit_json_names_a_row_edited_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `tape audit` had no --json (unlike `rebuild`): a scheduled audit could only scrape
    the wrapped text for which table differs."""
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=120), tmp_path / "j"))
    ledger = tmp_path / "ledger.sqlite"
    built = rebuild_ledger(tmp_path / "j", ledger)
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "j"), "--db", str(ledger), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean == {
        "ledger": str(ledger),
        "ok": True,
        "checkpoint_seq": built.checkpoint_seq,
        "tables": len(built.checksums),
        "differences": [],
    }
    with sqlite3.connect(ledger) as connection:
        seq = connection.execute("SELECT min(seq) FROM fills").fetchone()[0]
        connection.execute("UPDATE fills SET fill_qty_raw = fill_qty_raw + 1 WHERE seq = ?", (seq,))
    connection.close()
    assert main(["audit", str(tmp_path / "j"), "--db", str(ledger), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False and [d["table"] for d in found["differences"]] == ["fills"]
    assert found["differences"][0]["first_difference"].startswith(f"row {{'seq': {seq}}}: fill_qty_raw: live")
