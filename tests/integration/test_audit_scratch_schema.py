"""``tape audit`` of a PostgreSQL ledger rebuilds into ``<schema>_audit`` and drops it after:
a schema of that name that holds tables (a ledger someone built there) is refused untouched,
and a schema too long to carry the suffix is refused in one line, not an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from projections import open_ledger, rebuild_ledger
from projections.ledger_postgres import drop_schema, peek_postgres_ledger
from tests.contracts.projection_servers import scratch_database
from tests.factories import make_config, make_dataset, run


def test_an_audit_does_not_drop_a_ledger_at_its_scratch_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape audit J --db URL --schema qa` silently dropped the ledger of another run that
    a user had built at schema `qa_audit` (the audit's scratch); now exit 2, that ledger kept."""
    data = make_dataset(tmp_path / "d", symbols=2, bars=60)
    run(make_config(data, tmp_path / "j", seed=1))
    run(make_config(data, tmp_path / "other", seed=2))
    with scratch_database() as url:
        rebuild_ledger(tmp_path / "j", url, schema="qa")
        kept = rebuild_ledger(tmp_path / "other", url, schema="qa_audit")
        capsys.readouterr()
        assert main(["audit", str(tmp_path / "j"), "--db", url, "--schema", "qa"]) == 2
        out = " ".join(capsys.readouterr().out.split())
        assert "schema qa_audit holds 14 tables" in out and "Traceback" not in out, out
        with open_ledger(url, schema="qa_audit") as ledger:
            assert ledger.table_checksums() == kept.checksums
        drop_schema(url, "qa_audit")  # gone: the audit goes on and drops its scratch after
        assert main(["audit", str(tmp_path / "j"), "--db", url, "--schema", "qa"]) == 0
        assert peek_postgres_ledger(url, "qa_audit") == ([], None)


def test_a_schema_too_long_for_the_scratch_suffix_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    long = "l" * 60
    with scratch_database() as url:
        rebuild_ledger(tmp_path / "j", url, schema=long)
        capsys.readouterr()
        assert main(["audit", str(tmp_path / "j"), "--db", url, "--schema", long]) == 2
        out = " ".join(capsys.readouterr().out.split())
        assert "too long to audit" in out and "internal error" not in out, out


@pytest.mark.parametrize("schema", ['we"ird; drop', "Ünï code", "Upper", "9lives"])
def test_a_schema_name_with_odd_characters_is_a_usage_error(
    tmp_path: Path, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape projections rebuild J --db URL --schema 'Ünï code'` was an internal error
    (exit 70, "ValueError ... a bug: please report it"); argparse refuses it (exit 2)."""
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    with scratch_database() as url:
        for verb in (["projections", "rebuild"], ["projections", "follow"], ["audit"], ["reconcile"]):
            with pytest.raises(SystemExit) as stop:
                main([*verb, str(tmp_path / "j"), "--db", url, "--schema", schema])
            assert stop.value.code == 2
            err = capsys.readouterr().err
            assert "argument --schema" in err and "a schema name is lower-case" in err, err


@pytest.mark.parametrize(
    ("verb", "db", "told"),
    [
        (
            ["projections", "rebuild"],
            "mysql://u:S3cretpw@127.0.0.1:1/x",
            "mysql://... is not a ledger Tape writes",
        ),
        (["projections", "follow"], "sqlite://S3cretpw@x", "sqlite://... is not a ledger Tape writes"),
        (["audit"], "mysql://u:S3cretpw@127.0.0.1:1/x", "mysql://... is not a ledger Tape writes"),
        (["reconcile"], "mysql://u:S3cretpw@127.0.0.1:1/x", "mysql://... is not a ledger Tape writes"),
        (["rebuild"], "postgresql://u:S3cretpw@127.0.0.1:1/x", "for PostgreSQL: tape projections rebuild"),
        (
            ["projections", "grant-readonly", "--role", "viewer"],
            "mysql://u:S3cretpw@127.0.0.1:1/x",
            "mysql:// is not a postgresql:// URL",
        ),
    ],
)
def test_a_db_url_of_another_kind_is_refused_without_echoing_it_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verb: list[str],
    db: str,
    told: str,
) -> None:
    """QA: `tape projections rebuild J --db mysql://u:pw@host/x` took the URL for a file path: it
    wrote a SQLite ledger under folders named `mysql:/u:pw@host:1/x` (password included), exit 0;
    `tape rebuild --db postgresql://...` did the same."""
    monkeypatch.chdir(tmp_path)
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(SystemExit) as stop:
        main([*verb, "j", "--db", db] if verb[-1] != "viewer" else [*verb, "--db", db])
    assert stop.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "argument --db" in err and told in err and "S3cretpw" not in err, err
    assert sorted(tmp_path.iterdir()) == before
