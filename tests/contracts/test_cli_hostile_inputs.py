"""The `tape` contract over hostile inputs (issue 17): each verb runs as a process of its own
against damaged, truncated, empty, foreign, killed and missing journals, hostile configs and a
ledger that was never built, and for every run:

* no ``Traceback`` in its output and no death by a signal (a SIGBUS from a truncated map);
* an exit status from the documented set (docs/runbook.md, "Exit statuses"), the one each case
  expects;
* a refusal (and any ``error:``) is one line, naming the file the verb was given;
* nothing written where the verb only reads: the journal's bytes (LMDB's lock file aside) are
  the same before and after, and a refused backtest leaves no journal.

Data files (header-only, a header that is not UTF-8, a bare carriage return, text in a price
column, a binary file) go through `tape ingest`: refused naming the file, the lake unchanged.
Signals mid-command are covered for `projections follow` (test_follow_signals.py); others are
still to add.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import EXIT_DAMAGED, EXIT_OK, EXIT_REFUSED, EXIT_UNFINISHED
from kernel.store import open_journal
from tests.factories import make_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = {EXIT_OK, EXIT_DAMAGED, EXIT_REFUSED, EXIT_UNFINISHED}
READ_VERBS = ("verify", "replay", "report")

CONFIG = """run_id = "contract"
seed = 5
dataset = "data"
journal = "{journal}"
initial_cash = "100000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 9, weight = 0.9 }}
"""


def tape(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TAPE_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def digests(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.name != "lock.mdb"}


def check_contract(
    result: subprocess.CompletedProcess[str], subject: Path, expected: int, context: str
) -> None:
    output = result.stdout + result.stderr
    assert result.returncode >= 0, f"{context}: killed by signal {-result.returncode}\n{output}"
    assert "Traceback" not in output, f"{context}\n{output}"
    assert result.returncode in DOCUMENTED, f"{context}: exit {result.returncode}\n{output}"
    assert result.returncode == expected, (
        f"{context}: exit {result.returncode}, expected {expected}\n{output}"
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith(("error:", "internal error:"))]
    if result.returncode == EXIT_REFUSED or errors:
        assert len(errors) == 1, f"{context}: not one error line\n{output}"
        assert str(subject) in errors[0], f"{context}: the error line does not name {subject}\n{output}"


# --- the corpus --------------------------------------------------------------------------


def _flip(path: Path, offset: int, count: int = 4) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + count] = bytes(b ^ 0xFF for b in raw[offset : offset + count])
    path.write_bytes(bytes(raw))


def _btree_root_damaged(journal: Path) -> None:
    data = journal / "data.mdb"
    raw = bytearray(data.read_bytes())
    newest = max((0, 4096), key=lambda offset: struct.unpack_from("=Q", raw, offset + 144)[0])
    root = struct.unpack_from("=Q", raw, newest + 128)[0]
    raw[root * 4096 + 10 : root * 4096 + 12] = b"\x00\x00"
    data.write_bytes(bytes(raw))


def _killed(source: Path, target: Path) -> None:
    with (
        open_journal(source) as journal,
        open_journal(target, writable=True, records_per_commit_max=64) as copy,
    ):
        for record in journal.records():
            if record.seq >= len(journal) // 2:
                break
            copy.append(record.event())


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    db.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    make_dataset(root / "data", symbols=3, bars=200)
    for name in ("good", "good.sqlite"):
        (root / f"{name}.toml").write_text(CONFIG.format(journal=name))
        assert tape("backtest", str(root / f"{name}.toml"), cwd=root).returncode == EXIT_OK
    good, good_sqlite = root / "good", root / "good.sqlite"
    copies = {
        "truncated": lambda p: os.truncate(p / "data.mdb", (p / "data.mdb").stat().st_size // 2),
        "zero": lambda p: os.truncate(p / "data.mdb", 0),
        "meta-magic": lambda p: _flip(p / "data.mdb", 16),
        "meta-txnid": lambda p: _flip(p / "data.mdb", 4096 + 144),
        "btree-root": _btree_root_damaged,
    }
    for name, damage in copies.items():
        shutil.copytree(good, root / name)
        damage(root / name)
    _killed(good, root / "killed")
    (root / "no-data-mdb").mkdir()
    (root / "a-file").write_text("not a journal\n")
    for name, damage in {
        "truncated.sqlite": lambda p: os.truncate(p, p.stat().st_size // 3),
        "text.sqlite": lambda p: p.write_text("hello\n"),
        "empty.sqlite": lambda p: p.write_bytes(b""),
    }.items():
        shutil.copyfile(good_sqlite, root / name)
        damage(root / name)
    _foreign_sqlite(root / "foreign.sqlite")
    (root / "dir.sqlite").mkdir()
    return root


JOURNALS = [
    ("good", EXIT_OK),
    ("good.sqlite", EXIT_OK),
    ("killed", EXIT_UNFINISHED),
    ("truncated", EXIT_DAMAGED),
    ("zero", EXIT_DAMAGED),
    ("meta-magic", EXIT_DAMAGED),
    ("meta-txnid", EXIT_DAMAGED),
    ("btree-root", EXIT_DAMAGED),
    ("truncated.sqlite", EXIT_DAMAGED),
    ("no-data-mdb", EXIT_REFUSED),
    ("a-file", EXIT_REFUSED),
    ("missing", EXIT_REFUSED),
    ("text.sqlite", EXIT_REFUSED),
    ("empty.sqlite", EXIT_REFUSED),
    ("foreign.sqlite", EXIT_REFUSED),
    ("dir.sqlite", EXIT_REFUSED),
]


@pytest.mark.parametrize(("name", "expected"), JOURNALS, ids=[name for name, _ in JOURNALS])
def test_read_verbs_over_hostile_journals(corpus: Path, name: str, expected: int) -> None:
    journal = corpus / name
    before = digests(journal)
    for verb in READ_VERBS:
        check_contract(tape(verb, str(journal), cwd=corpus), journal, expected, f"tape {verb} {name}")
        assert digests(journal) == before, f"tape {verb} {name} wrote to the journal"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("killed", EXIT_UNFINISHED), ("truncated", EXIT_DAMAGED), ("foreign.sqlite", EXIT_REFUSED)],
)
def test_rebuild_over_hostile_journals(corpus: Path, name: str, expected: int) -> None:
    journal = corpus / name
    before = digests(journal)
    check_contract(tape("rebuild", str(journal), cwd=corpus), journal, expected, f"tape rebuild {name}")
    assert digests(journal) == before


def test_an_audit_of_a_ledger_never_built_fails_and_creates_nothing(corpus: Path) -> None:
    ledger = corpus / "typo.ledger.sqlite"
    result = tape("audit", str(corpus / "good"), "--db", str(ledger), cwd=corpus)
    check_contract(result, corpus / "good", EXIT_REFUSED, "tape audit --db typo")
    assert "typo.ledger.sqlite" in result.stdout
    assert not ledger.exists()


CONFIGS = [
    ("binary", None),
    ("cash-negative", ('initial_cash = "100000"', 'initial_cash = "-1000000"')),
    ("cash-huge", ('initial_cash = "100000"', 'initial_cash = "1e30"')),
    ("cash-nan", ('initial_cash = "100000"', 'initial_cash = "NaN"')),
    ("currency", ('initial_cash = "100000"', 'initial_cash = "1"\ncurrency = "XYZ"')),
    ("strategy-range", ("fast = 3, slow = 9", "fast = 9, slow = 3")),
    ("journal-is-a-file", ('journal = "{name}"', 'journal = "a-file"')),
    ("journal-is-damaged", ('journal = "{name}"', 'journal = "truncated"')),
    ("toml-syntax", ("[strategy]", "[strategy")),
]


@pytest.mark.parametrize(("name", "edit"), CONFIGS, ids=[name for name, _ in CONFIGS])
def test_backtest_over_hostile_configs(corpus: Path, name: str, edit: tuple[str, str] | None) -> None:
    config = corpus / f"{name}.toml"
    if edit is None:
        config.write_bytes(bytes(range(256)) * 8)
    else:
        text = CONFIG.replace('journal = "{journal}"', 'journal = "{name}"')
        assert edit[0] in text
        config.write_text(
            text.replace(edit[0], edit[1]).replace("{name}", name).replace("{{", "{").replace("}}", "}")
        )
    before = {p: digests(corpus / p) for p in ("a-file", "truncated")}
    expected = EXIT_DAMAGED if name == "journal-is-damaged" else EXIT_REFUSED
    check_contract(tape("backtest", str(config), cwd=corpus), config, expected, f"tape backtest {name}")
    assert not (corpus / name).exists(), "a refused backtest left a journal behind"
    assert {p: digests(corpus / p) for p in before} == before


# --- data files through `tape ingest` ------------------------------------------------------

HEADER = b"Date,Open,High,Low,Close,Adj Close,Volume\n"
HOSTILE_FILES = {
    "header_only.txt": HEADER,
    "not_utf8.txt": b"Date,Op\xffen,High,Low,Close,Adj Close,Volume\n2014-01-02,1,1,1,1,1,1\n",
    "bare_cr.txt": HEADER + b"2014-01-02,1,1\r,1,1,1,1\n",
    "text_price.txt": HEADER + b"2014-01-02,one,1,1,1,1,1\n",
    "binary.txt": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_ingest_over_hostile_data_files(tmp_path: Path, name: str) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(HEADER + b"2014-01-02,1.00,1.10,0.90,1.05,1.05,100\n")
    lake = tmp_path / "lake"
    assert tape("ingest", "yahoo", str(good), "--out", str(lake), cwd=tmp_path).returncode == 0
    before = digests(lake)
    bad = tmp_path / name
    bad.write_bytes(HOSTILE_FILES[name])
    result = tape("ingest", "yahoo", str(bad), "--out", str(lake), cwd=tmp_path)
    check_contract(result, bad, EXIT_REFUSED, f"ingest {name}")
    assert digests(lake) == before, f"ingest {name} changed the lake"
