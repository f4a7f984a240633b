"""Re-ingesting what a lake holds is a no-op (bars, trades, quotes, funding rates, corporate
actions), on the real files: the same bytes, content hash, version, health and export. A file
that adds or changes something still makes a new version.

Before: every re-ingest wrote its rows again as ``duplicate`` into a new quarantine file, so the
lake's content hash (and the exported data set's name) changed although no row did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from lake.health import dataset_health
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.sources import parse_freqtrade, parse_hikyuu_actions, parse_yahoo
from lake.tick_health import tick_health
from lake.tick_sources import parse_kraken_trades, parse_nautilus_quotes, parse_nautilus_trades

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = [pytest.mark.needs_shared_data, needs_shared]
EURO_2006 = SHARED / "us" / "2006-day-001.txt"  # 255 rows: 248 bars + 7 outside XNYS sessions


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def yahoo(path: Path) -> object:
    """The 2006 and the 2005-2006 files are one series: one symbol, not one from each name."""
    return parse_yahoo(path, symbol="EURO", venue="XNYS", calendar="XNYS", currency="USD")


def test_tape_ingest_twice_leaves_lake_health_and_export_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    argv = ["ingest", "yahoo", str(EURO_2006), "--out", str(lake)]
    assert main([*argv, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [(f["rows_in"], f["accepted"], f["quarantined"]) for f in first["files"]] == [(255, 248, 7)]
    before = snapshot(lake)
    assert main(["health", str(lake), "--json"]) == 0
    health_before = capsys.readouterr().out
    assert main(["export", str(lake), str(tmp_path / "ds1"), "--calendar", "XNYS"]) == 0
    capsys.readouterr()

    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "in 255 = accepted 0 + quarantined 0 + already stored 255" in out
    assert "(of which 7 rejections already quarantined)" in out
    assert "nothing new: the lake is unchanged" in out
    assert snapshot(lake) == before  # no quarantine file, no new version, no report
    assert main(["health", str(lake), "--json"]) == 0
    assert capsys.readouterr().out == health_before
    assert main(["export", str(lake), str(tmp_path / "ds2"), "--calendar", "XNYS"]) == 0
    assert "content hash" in capsys.readouterr().out
    one, two = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("ds1", "ds2"))
    assert one == two  # the same data set: content hash and name (lake-<lake content hash>-1d)
    assert one["name"] == f"lake-{first['content_hash'][:12]}-1d"

    assert main([*argv, "--csv", "-"]) == 0
    printed = capsys.readouterr().out
    header, row = printed.splitlines()  # the CSV alone on stdout
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert (values["rows_in"], values["accepted"], values["quarantined"]) == ("255", "0", "0")
    assert (values["already_stored"], values["already_quarantined"]) == ("255", "7")


def test_an_overlapping_file_adds_only_what_is_new(tmp_path: Path) -> None:
    """2005-2006-day-001 is 2005 plus the 2006 file: its 2006 rows are already stored (the 7
    rejected ones already quarantined), 2005 is a new version."""
    first = ingest(tmp_path / "a", [EURO_2006], yahoo)
    both = ingest(tmp_path / "a", [SHARED / "us" / "2005-2006-day-001.txt"], yahoo)
    (file,) = both.files
    assert not both.unchanged and both.content_hash != first.content_hash
    assert (file.rows_in, file.already_stored, file.already_quarantined) == (512, 255, 7)
    assert file.rows_in == file.accepted + file.quarantined + file.already_stored
    lake = Lake(tmp_path / "a")
    assert lake.manifest()["version"] == 2 and lake.verify() == []
    assert lake.read(Kind.BARS, "1d").num_rows == 248 + file.accepted
    assert [h.quarantined for h in dataset_health(lake)] == [{"outside_session": 7 + file.quarantined}]
    # one command naming a file twice makes the lake that naming it once makes
    twice = ingest(tmp_path / "b", [EURO_2006, EURO_2006], yahoo)
    assert twice.content_hash == first.content_hash
    assert [(f.accepted, f.quarantined, f.already_stored) for f in twice.files] == [(248, 7, 0), (0, 0, 255)]


def test_a_changed_row_is_a_new_version_and_its_reingest_is_not(tmp_path: Path) -> None:
    """One close changed: the stored bar stays, the new one is quarantined as duplicate (a new
    version records it); ingesting the changed file again adds nothing."""
    lines = (SHARED / "us" / "orcl-2014.txt").read_text().splitlines()
    changed = tmp_path / "orcl-2014.txt"
    fields = lines[10].split(",")  # Date,Open,High,Low,Close,Adj Close,Volume
    assert fields[1] != fields[4]
    fields[4] = fields[1]  # the close becomes the open: inside the bar's range
    changed.write_text("\n".join([*lines[:10], ",".join(fields), *lines[11:]]) + "\n")
    lake = tmp_path / "lake"
    first = ingest(lake, [SHARED / "us" / "orcl-2014.txt"], yahoo)
    edit = ingest(lake, [changed], yahoo)
    (file,) = edit.files
    assert (file.accepted, file.quarantined, file.already_stored, file.reasons) == (
        0,
        1,
        251,
        {"duplicate": 1},
    )
    assert edit.content_hash != first.content_hash and not edit.unchanged
    assert Lake(lake).manifest()["version"] == 2
    before = snapshot(lake)
    again = ingest(lake, [changed], yahoo)
    assert (
        again.files[0].quarantined,
        again.files[0].already_stored,
        again.files[0].already_quarantined,
    ) == (
        0,
        252,
        1,
    )
    assert again.unchanged and again.content_hash == edit.content_hash and snapshot(lake) == before


def test_trades_quotes_funding_and_corporate_actions_reingested_change_nothing(tmp_path: Path) -> None:
    kraken = SHARED / "crypto" / "freqtrade" / "kraken_trades"
    quotes = SHARED / "crypto" / "nautilus" / "binance" / "btcusdt-quotes.parquet"
    funding = SHARED / "crypto" / "freqtrade" / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather"
    source = (SHARED / "cn" / "hikyuu" / "stock_weight_corporate_actions.csv").read_text().splitlines()
    actions = tmp_path / "stock_weight_corporate_actions.csv"  # 300 real rows, one repeated
    actions.write_text("\n".join([*source[:301], source[1]]) + "\n")
    steps = [
        ([kraken / "BCHEUR.csv", kraken / "BCHEUR_incremental_q2.csv"], parse_kraken_trades),
        ([quotes], parse_nautilus_quotes),
        ([funding], parse_freqtrade),
        ([actions], parse_hikyuu_actions),
    ]
    lake = tmp_path / "lake"
    for files, parser in steps:
        report = ingest(lake, files, parser)
        assert (report.quarantined and not report.already_stored) or parser is parse_freqtrade
    before, health = snapshot(lake), tick_health(Lake(lake))
    for files, parser in steps:
        again = ingest(lake, files, parser)
        assert again.unchanged and (again.accepted, again.quarantined) == (0, 0)
        assert again.already_stored == again.rows_in
    assert snapshot(lake) == before
    assert [h.to_dict() for h in tick_health(Lake(lake))] == [h.to_dict() for h in health]
    ticks = {h.dataset: h for h in health}
    assert (ticks["trades"].rows, ticks["trades"].quarantined, ticks["trades"].reconciled) == (
        585,
        {"duplicate": 49},
        True,
    )
    # reports written before already_stored existed read as none of it
    for path in (lake / "reports").glob("ingest-*.json"):
        report = json.loads(path.read_text())
        for file in report["files"]:
            del file["already_stored"], file["already_quarantined"]
        path.write_text(json.dumps(report))
    assert [h.to_dict() for h in tick_health(Lake(lake))] == [h.to_dict() for h in health]


def test_already_stored_quotes_beside_new_trades_still_add_up(tmp_path: Path) -> None:
    """An ingest that adds trades and repeats quotes is a new version whose report counts the
    quotes as already stored; tape health's ingested = stored + quarantined + already stored."""
    binance = SHARED / "crypto" / "nautilus" / "binance"
    ingest(tmp_path, [binance / "btcusdt-quotes.parquet"], parse_nautilus_quotes)
    report = ingest(tmp_path, [binance / "btcusdt-quotes.csv", binance / "btcusdt-trades.parquet"], nautilus)
    assert not report.unchanged
    assert [(f.accepted, f.quarantined, f.already_stored) for f in report.files] == [
        (0, 0, 451),
        (2001, 0, 0),
    ]
    health = {h.dataset: h for h in tick_health(Lake(tmp_path))}
    quotes = health["quotes"]
    assert (quotes.rows, quotes.quarantined_rows, quotes.already_stored, quotes.ingested) == (
        428,
        23,
        451,
        902,
    )
    assert quotes.reconciled and health["trades"].reconciled


def nautilus(path: Path) -> object:
    return (parse_nautilus_quotes if "quotes" in path.name else parse_nautilus_trades)(path)


def test_an_actions_file_named_twice_in_one_ingest_is_stored_once(tmp_path: Path) -> None:
    """It was refused whole ("corporate_actions/part-0.parquet: merge would store a duplicate
    key"): the second file's rows were checked against the lake only, not the first file's."""
    source = (SHARED / "cn" / "hikyuu" / "stock_weight_corporate_actions.csv").read_text().splitlines()
    actions = tmp_path / "stock_weight_corporate_actions.csv"
    actions.write_text("\n".join(source[:301]) + "\n")  # 300 real rows, one of them a repeat
    twice = ingest(tmp_path / "a", [actions, actions], parse_hikyuu_actions)
    assert [(f.accepted, f.quarantined, f.already_stored) for f in twice.files] == [(299, 1, 0), (0, 0, 300)]
    once = ingest(tmp_path / "b", [actions], parse_hikyuu_actions)
    assert twice.content_hash == once.content_hash
