"""The `tape` contract over hostile inputs (issue 17): each verb runs as a process of its own
against damaged, truncated, empty, foreign, killed and missing journals, hostile configs and a
ledger that was never built (or a foreign database, or a mistyped PostgreSQL schema, given to
``tape audit`` / ``tape reconcile --db``: refused untouched; a foreign database, text file or
directory given to ``rebuild`` / ``projections rebuild`` / ``projections follow``: refused
untouched), and for every run:

* no ``Traceback`` in its output and no death by a signal (a SIGBUS from a truncated map);
* an exit status from the documented set (docs/runbook.md, "Exit statuses"), the one each case
  expects;
* a refusal (and any ``error:``) is one line, naming the file the verb was given;
* nothing written where the verb only reads: the journal's bytes (LMDB's lock file aside) are
  the same before and after, and a refused backtest leaves no journal.

Data files (header-only, a header that is not UTF-8, a bare carriage return, text in a price
column, a binary file) go through `tape ingest`: refused naming the file, the lake unchanged.
Signals mid-command: test_cli_signals.py and test_follow_signals.py (`projections follow`); a
schema dropped under a running follower: test_follow_refusals.py.
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


def _bare_lmdb(path: Path) -> None:
    import lmdb

    lmdb.open(str(path), max_dbs=4).close()


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
    _bare_lmdb(root / "bare-lmdb")  # a backtest killed while it created its journal
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
    ("bare-lmdb", EXIT_REFUSED),
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


@pytest.mark.parametrize(("name", "expected"), JOURNALS, ids=[name for name, _ in JOURNALS])
def test_montecarlo_and_tearsheet_over_hostile_journals(
    corpus: Path, tmp_path: Path, name: str, expected: int
) -> None:
    """The verbs that read a run's journal for figures (a killed run's figures end where it
    stopped: said, exit 3, as report does); their outputs go elsewhere."""
    journal = corpus / name
    before = digests(journal)
    verbs = {"montecarlo": ["--samples", "50"], "tearsheet": ["--out", str(tmp_path / "sheet")]}
    for verb, extra in verbs.items():
        result = tape(verb, str(journal), *extra, cwd=corpus)
        check_contract(result, journal, expected, f"tape {verb} {name}")
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


def _journal_mode(path: Path) -> str | None:
    """The database's journal mode, read without changing it (None: SQLite cannot read it)."""
    if not path.is_file():
        return None
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()


def _tape_ledger_never_built(path: Path) -> None:
    """The ledger's tables with no checkpoint: a ledger opened but never built."""
    from projections import open_ledger

    open_ledger(path).close()


# (case, the --db file and how to make it); each is refused with one line (EXIT_REFUSED),
# nothing created, the file byte-for-byte and journal mode as it was (issue 17 point 11).
AUDIT_DBS = [
    ("db-mistyped", "typo.ledger.sqlite", None),
    ("db-is-text", "a-file", None),
    ("db-is-a-directory", "dir.sqlite", None),
    ("db-empty-file", "empty.db", lambda p: p.write_bytes(b"")),
    ("db-is-foreign", "foreign-audit.sqlite", _foreign_sqlite),
    ("db-tape-never-built", "never-built.ledger.sqlite", _tape_ledger_never_built),
]


@pytest.mark.parametrize(("case", "name", "make"), AUDIT_DBS, ids=[c for c, _, _ in AUDIT_DBS])
def test_an_audit_of_what_is_no_built_ledger_is_refused_untouched(
    corpus: Path, case: str, name: str, make: object
) -> None:
    db = corpus / name
    if make is not None and not db.exists():
        make(db)  # type: ignore[operator]
    before, mode = digests(db), _journal_mode(db)
    siblings = sorted(p.name for p in corpus.iterdir())
    result = tape("audit", str(corpus / "good"), "--db", str(db), cwd=corpus)
    check_contract(result, corpus / "good", EXIT_REFUSED, f"tape audit --db {case}")
    assert name in result.stdout, f"{case}: the error does not name {name}\n{result.stdout}"
    assert "audit ok" not in result.stdout, f"{case}: a false ok\n{result.stdout}"
    assert digests(db) == before and _journal_mode(db) == mode, f"tape audit {case} wrote to {name}"
    assert sorted(p.name for p in corpus.iterdir()) == siblings, f"tape audit {case} created a file"


# What a rebuild or a follower is given as --db that holds something else: refused with one line
# (EXIT_REFUSED) before anything opens it, the file byte-for-byte and journal mode as it was. A
# rebuild drops every table at its target (it dropped the foreign database's tables) and a
# follower created the ledger's tables in it and switched it to WAL (then exit 70).
WRITE_DBS = [
    ("db-is-foreign", "foreign-write.sqlite", _foreign_sqlite),
    ("db-is-text", "a-file", None),
    ("db-is-a-directory", "dir.sqlite", None),
]
LEDGER_WRITERS = [
    ("rebuild", ("rebuild",)),
    ("projections-rebuild", ("projections", "rebuild")),
    ("projections-follow", ("projections", "follow")),
]


@pytest.mark.parametrize(("case", "name", "make"), WRITE_DBS, ids=[c for c, _, _ in WRITE_DBS])
@pytest.mark.parametrize(("verb", "words"), LEDGER_WRITERS, ids=[v for v, _ in LEDGER_WRITERS])
def test_a_rebuild_or_follow_into_what_is_no_ledger_is_refused_untouched(
    corpus: Path, verb: str, words: tuple[str, ...], case: str, name: str, make: object
) -> None:
    db = corpus / name
    if make is not None and not db.exists():
        make(db)  # type: ignore[operator]
    before, mode = digests(db), _journal_mode(db)
    siblings = sorted(p.name for p in corpus.iterdir())
    result = tape(*words, str(corpus / "good"), "--db", str(db), cwd=corpus)
    context = f"tape {' '.join(words)} --db {case}"
    check_contract(result, corpus / "good", EXIT_REFUSED, context)
    assert name in result.stdout, f"{context}: the error does not name {name}\n{result.stdout}"
    assert digests(db) == before and _journal_mode(db) == mode, f"{context} wrote to {name}"
    assert sorted(p.name for p in corpus.iterdir()) == siblings, f"{context} created a file"


def _schemas(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT LIKE 'pg_%' "
            "AND schema_name <> 'information_schema' ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def test_an_audit_or_reconcile_of_a_wrong_postgres_schema_is_refused_untouched(ledgers: Path) -> None:
    from tests.contracts.projection_servers import scratch_database

    with scratch_database() as url:
        built = tape("projections", "rebuild", str(ledgers / "good"), "--db", url, cwd=ledgers)
        assert built.returncode == EXIT_OK, built.stdout + built.stderr
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE SCHEMA other; CREATE TABLE other.notes (x integer)")
        schemas = _schemas(url)
        for verb in ("audit", "reconcile"):
            for schema, words in (("tape_ledgr", "mistyped --schema"), ("other", "not a Tape ledger")):
                result = tape(verb, str(ledgers / "good"), "--db", url, "--schema", schema, cwd=ledgers)
                context = f"tape {verb} --schema {schema}"
                check_contract(result, ledgers / "good", EXIT_REFUSED, context)
                assert words in result.stdout, f"{context}\n{result.stdout}"
                assert _schemas(url) == schemas, f"{context} created a schema"
        # A rebuild or a follower pointed at a schema of someone else's tables: refused, the
        # tables kept (a rebuild dropped every table of the schema it was given).
        for words in (("projections", "rebuild"), ("projections", "follow")):
            result = tape(*words, str(ledgers / "good"), "--db", url, "--schema", "other", cwd=ledgers)
            context = f"tape {' '.join(words)} --schema other"
            check_contract(result, ledgers / "good", EXIT_REFUSED, context)
            assert "not a Tape ledger" in result.stdout, f"{context}\n{result.stdout}"
            with psycopg.connect(url) as connection:
                kept = connection.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'other'"
                ).fetchall()
            assert kept == [("notes",)], f"{context} touched schema other: {kept}"
        audited = tape("audit", str(ledgers / "good"), "--db", url, cwd=ledgers)
        assert audited.returncode == EXIT_OK and "audit ok" in audited.stdout, audited.stdout


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


# (source, file name, bytes): the hikyuu formats' headers as the real files have them.
HOSTILE_SOURCED = [
    *(("yahoo", name, content) for name, content in sorted(HOSTILE_FILES.items())),
    ("hikyuu-day", "sh600000.csv", b"date,open,high,low,close,amount,volume\n"),
    ("hikyuu-day", "sz000002.csv", b"date,open,high,low,close,amount_cny,volume\n"),
    ("hikyuu-minute", "sz000005.csv", b"datetime,price,vol\n"),
]


@pytest.mark.parametrize(
    ("source", "name", "content"), HOSTILE_SOURCED, ids=[f"{s}-{n}" for s, n, _ in HOSTILE_SOURCED]
)
def test_ingest_over_hostile_data_files(tmp_path: Path, source: str, name: str, content: bytes) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(HEADER + b"2014-01-02,1.00,1.10,0.90,1.05,1.05,100\n")
    lake = tmp_path / "lake"
    assert tape("ingest", "yahoo", str(good), "--out", str(lake), cwd=tmp_path).returncode == 0
    before = digests(lake)
    bad = tmp_path / name
    bad.write_bytes(content)
    result = tape("ingest", source, str(bad), "--out", str(lake), cwd=tmp_path)
    check_contract(result, bad, EXIT_REFUSED, f"ingest {source} {name}")
    assert digests(lake) == before, f"ingest {source} {name} changed the lake"


# --- tape reconcile and tape compare ---------------------------------------------------------

# What reconcile and compare answer for each journal of the corpus: the read verbs' statuses,
# except that a killed run reconciles (its ledger matches; an unfinished run is a note, since a
# running paper session's journal is unfinished by nature) and, compared with the run it was
# cut from, is a matching prefix: EXIT_UNFINISHED.
RECONCILE_EXPECTED = {**dict(JOURNALS), "killed": EXIT_OK}
COMPARE_EXPECTED = dict(JOURNALS)


@pytest.fixture(scope="module")
def ledgers(corpus: Path) -> Path:
    """The ledger beside each sound journal (``tape rebuild``), so reconcile has one to read."""
    for name, status in (("good", EXIT_OK), ("good.sqlite", EXIT_OK), ("killed", EXIT_UNFINISHED)):
        result = tape("rebuild", str(corpus / name), cwd=corpus)
        assert result.returncode == status, result.stdout + result.stderr
        assert (corpus / f"{name}.ledger.sqlite").is_file()
    return corpus


@pytest.mark.parametrize(("name", "expected"), sorted(RECONCILE_EXPECTED.items()))
def test_reconcile_over_hostile_journals(ledgers: Path, name: str, expected: int) -> None:
    journal = ledgers / name
    ledger = ledgers / f"{name}.ledger.sqlite"
    before = {**digests(journal), **digests(ledger)}
    result = tape("reconcile", str(journal), cwd=ledgers)
    check_contract(result, journal, expected, f"tape reconcile {name}")
    assert {**digests(journal), **digests(ledger)} == before, f"tape reconcile {name} wrote"
    if name == "killed":
        assert "unfinished run" in result.stdout


@pytest.mark.parametrize(("name", "expected"), sorted(COMPARE_EXPECTED.items()))
def test_compare_over_hostile_journals(corpus: Path, name: str, expected: int) -> None:
    good, other = corpus / "good", corpus / name
    before = {**digests(good), **digests(other)}
    result = tape("compare", str(good), str(other), cwd=corpus)
    check_contract(result, other, expected, f"tape compare good {name}")
    assert {**digests(good), **digests(other)} == before, f"tape compare good {name} wrote"
    if name == "killed":
        assert "unfinished run" in result.stdout and "matches the other run up to its end" in result.stdout
        reverse = tape("compare", str(other), str(good), cwd=corpus)  # the prefix as A
        check_contract(reverse, other, EXIT_UNFINISHED, "tape compare killed good")


def _statement_files(root: Path) -> None:
    (root / "binary-statement.csv").write_bytes(bytes(range(256)) * 8)
    (root / "header-only.csv").write_text("day,account,symbol,quantity,cash,currency\n")
    (root / "bad-number.csv").write_text(
        "day,account,symbol,quantity,cash,currency\n2020-07-17,A1,SYN0001,lots,,USD\n"
    )


RECONCILE_ARGS = [  # (case, extra arguments, the file the error line must name)
    ("db-is-text", ["--db", "a-file"], "a-file"),
    ("db-is-foreign", ["--db", "foreign.sqlite"], "foreign.sqlite"),
    ("db-never-built", ["--db", "typo.ledger.sqlite"], "typo.ledger.sqlite"),
    ("db-unreachable", ["--db", "postgresql://127.0.0.1:1/tape"], "good"),
    ("statement-missing", ["--statement", "no-such.csv"], "no-such.csv"),
    ("statement-is-a-directory", ["--statement", "data"], "data"),
    ("statement-not-csv", ["--statement", "a-file"], "a-file"),
    ("statement-binary", ["--statement", "binary-statement.csv"], "binary-statement.csv"),
    ("statement-header-only", ["--statement", "header-only.csv"], "header-only.csv"),
    ("statement-bad-number", ["--statement", "bad-number.csv", "--no-ledger"], "bad-number.csv"),
    ("day-not-a-date", ["--day", "2020-02-30"], "2020-02-30"),
    ("day-not-closed", ["--day", "1999-01-04"], "1999-01-04"),
    ("nothing-to-compare", ["--no-ledger"], "good"),
]


@pytest.mark.parametrize(("case", "extra", "named"), RECONCILE_ARGS, ids=[c for c, _, _ in RECONCILE_ARGS])
def test_reconcile_refuses_bad_ledgers_statements_days_and_outputs(
    ledgers: Path, case: str, extra: list[str], named: str
) -> None:
    _statement_files(ledgers)
    watched = [ledgers / p for p in ("good", "good.ledger.sqlite", "a-file", "foreign.sqlite", "data")]
    before = {str(p): digests(p) for p in watched}
    result = tape("reconcile", str(ledgers / "good"), *extra, cwd=ledgers)
    check_contract(result, ledgers / "good", EXIT_REFUSED, f"tape reconcile {case}")
    assert named in result.stdout, f"{case}: the error does not name {named}\n{result.stdout}"
    assert {str(p): digests(p) for p in watched} == before, f"tape reconcile {case} wrote"
    assert not (ledgers / "typo.ledger.sqlite").exists()


WRONG_FLAGS = [
    ("reconcile", "--bogus"),
    ("reconcile", "--day"),
    ("compare", "--days", "x"),
    ("compare", "--days", "-1"),
    ("compare",),  # one journal
]


@pytest.mark.parametrize("argv", WRONG_FLAGS, ids=[" ".join(a) for a in WRONG_FLAGS])
def test_reconcile_and_compare_wrong_flags(corpus: Path, argv: tuple[str, ...]) -> None:
    verb, *flags = argv
    journals = [str(corpus / "good")] + ([str(corpus / "good.sqlite")] if verb == "compare" and flags else [])
    result = tape(verb, *journals, *flags, cwd=corpus)
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_REFUSED, output
    assert "Traceback" not in output
    assert sum("error:" in line for line in output.splitlines()) == 1, output


@pytest.mark.parametrize("verb", ["reconcile", "compare"])
def test_an_output_that_cannot_be_written_is_refused_as_the_line_is_read(ledgers: Path, verb: str) -> None:
    """``--json DIRECTORY``: refused by the option's type (``cli.arguments.output_file``) before
    the verb reads anything, argparse's one ``error:`` line on stderr naming the path and why;
    the directory untouched (it was refused only after the reconciliation or comparison ran)."""
    journals = [str(ledgers / "good")] + ([str(ledgers / "good.sqlite")] if verb == "compare" else [])
    before = digests(ledgers / "data")
    result = tape(verb, *journals, "--json", str(ledgers / "data"), cwd=ledgers)
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_REFUSED and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error:" in line]
    reason = f"{ledgers / 'data'}: cannot write it: it is a folder"
    assert errors == [f"tape {verb}: error: argument --json: {reason}"], output
    assert digests(ledgers / "data") == before
