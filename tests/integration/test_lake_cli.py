"""``tape ingest`` through its own parser (cli.main wires the same two functions)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from cli.ingest import add_ingest_parser, cmd_ingest
from lake.partitioned import Lake


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tape")
    add_ingest_parser(parser.add_subparsers(dest="verb", required=True))
    return cmd_ingest(parser.parse_args(argv))


def test_ingest_prints_the_balance_and_quarantines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bars.csv"
    source.write_text(
        "when,o,h,l,c,v\n"
        "2024-01-02 00:01:00,10,11,9,10.5,5\n"
        "2024-01-02 00:02:00,10,9,9,10.5,5\n"  # high below open/close
        "2024-01-02 00:01:00,10,11,9,10.5,5\n"  # duplicate
    )
    argv = [
        "ingest",
        "csv",
        str(source),
        "--out",
        str(tmp_path / "lake"),
        "--symbol",
        "BTC/USDT",
        "--venue",
        "x",
    ]
    argv += [
        "--calendar",
        "24x7",
        "--currency",
        "USDT",
        "--frequency",
        "1m",
        "--ts-format",
        "%Y-%m-%d %H:%M:%S",
    ]
    argv += ["--map", "ts=when,open=o,high=h,low=l,close=c,volume=v"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "in 3 = accepted 1 + quarantined 2" in out
    report = json.loads((tmp_path / "lake" / "reports" / "ingest-000001.json").read_text())
    assert report["files"][0]["reasons"] == {"duplicate": 1, "ohlc_inconsistent": 1}
    assert Lake(tmp_path / "lake").verify() == []


def test_unparseable_file_exits_non_zero_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "AAA.txt"
    source.write_text("Date,Open,High,Low,Close,Volume\n2014-01-02,1,1,1,1,1\n2014-01-03,1,1\n")
    assert run(["ingest", "yahoo", str(source), "--out", str(tmp_path / "lake")]) == 2
    out = capsys.readouterr().out
    assert "AAA.txt:3: expected 6 fields, got 3" in out
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # each was an internal error (exit 70): ZoneInfoNotFoundError, InvalidCalendarName,
        # SchemaError, a ValueError from dict()
        (["--tz", "Foo/Bar"], "unknown time zone 'Foo/Bar'"),
        (["--calendar", "FOO"], "unknown calendar 'FOO'"),
        (["--frequency", "7m"], "unknown bar frequency '7m'; one of 1m, 5m"),
        (["--map", "ts"], "bad column map 'ts': 'ts' is not FIELD=COLUMN"),
        # each was stored in the instrument master (every row quarantined, or kept at -3 digits)
        (["--price-digits", "-1"], "X: price_digits must be 0 to 10, not -1"),
        (["--price-digits", "99"], "X: price_digits must be 0 to 10, not 99"),
        (["--qty-digits", "-3"], "X: qty_digits must be 0 to 10, not -3"),
    ],
)
def test_bad_ingest_options_are_refused_in_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    source = tmp_path / "bars.csv"
    source.write_text("when,o,h,l,c,v\n2024-01-02 00:01:00,10,11,9,10.5,5\n")
    argv = ["ingest", "csv", str(source), "--out", str(tmp_path / "lake"), "--symbol", "X", "--venue", "x"]
    argv += ["--calendar", "24x7", "--frequency", "1m", "--ts-format", "%Y-%m-%d %H:%M:%S"]
    argv += ["--map", "ts=when,open=o,high=h,low=l,close=c,volume=v", *options]
    assert run(argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out and "the lake is unchanged" in out
    assert not (tmp_path / "lake").exists()


SHARED_US = Path(__file__).resolve().parents[3] / "shared" / "data" / "us"


def _first_column(out: str, title: str) -> list[str]:
    """The first column of the fitted table under ``title`` (``cli.research_tables``: columns two
    or more spaces apart, the first at the line's start), its lines in order."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    body = next(i for i in range(start, len(lines)) if set(lines[i]) == {"─"}) + 1
    cells = []
    for line in lines[body:]:
        if line.startswith(("in ", "not shown")) or not line.strip():
            break  # the ingest total, the note naming the columns left out
        if not line.startswith(" "):
            cells.append(re.split(r" {2,}", line)[0])
    return cells


def _pieces_end_at_breaks(pieces: list[str], whole: str) -> bool:
    """``pieces`` (a wrapped name's lines, in order) join to ``whole`` and each but the last ends
    at a break point (``/ _ - .``), never inside a run of letters or digits."""
    return "".join(pieces) == whole and all(piece[-1] in "/\\_-." for piece in pieces[:-1])


LONG_NAME = "nvda_daily_bars_adjusted_2014_2015_from_vendor_export.csv"


def _long_named_bars(tmp_path: Path) -> Path:
    """CONSTRUCTED CASE: two years of Yahoo-format daily rows under a long vendor file name,
    every calendar day (weekends and holidays: 217 rows outside an XNYS session) and one row
    whose high is below its close (ohlc_inconsistent)."""
    from datetime import date, timedelta

    days = [date(2014, 1, 1) + timedelta(days=n) for n in range(700)]
    lines = ["Date,Open,High,Low,Close,Volume", *(f"{day},10,11,9,10.5,100" for day in days)]
    lines.append("2014-01-03,10,9,9,10.5,5")
    source = tmp_path / LONG_NAME
    source.write_text("\n".join(lines) + "\n")
    return source


@pytest.mark.parametrize("width", [80, 60])
def test_long_file_names_and_reasons_wrap_at_break_points_and_numbers_stay_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """QA: at 80 columns the ingest and health tables folded a long file name and the quarantine
    reasons inside a word ('outside_ses' / 'sion 217'). The name now breaks after '_', '/', '-'
    or '.', a reason after '_' only where it is wider than its column (at 80 never), and every
    count is whole; at 60 the columns that do not fit are named under the table."""
    from cli.main import main
    from cli.progress import console

    monkeypatch.setattr(console, "width", width)
    source = _long_named_bars(tmp_path)
    lake = str(tmp_path / "lake")
    argv = ["ingest", "csv", str(source), "--out", lake, "--symbol", "NVDA", "--venue", "XNYS"]
    argv += ["--calendar", "XNYS", "--map", "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]
    assert main(argv) == 0
    ingested = capsys.readouterr().out
    assert main(["health", lake]) == 0
    health = capsys.readouterr().out
    for out in (ingested, health):
        assert max(len(line) for line in out.splitlines()) <= width
        words = out.split()
        assert "ohlc_inconsistent" in words or width < 80
        assert "outside_session" in words and "217" in words  # never 'outside_ses' / 'sion 217'
        assert not [w for w in words if w.startswith(("outside_s", "inconsistent")) and w not in
                    ("outside_session", "inconsistent")]  # fmt: skip
    name = _first_column(ingested, "ingest into")
    assert _pieces_end_at_breaks(name[: name.index("bars 1d")], LONG_NAME), name
    assert name[name.index("bars 1d") :] == ["bars 1d", "XNYS:NVDA"]  # the kind, then the symbol
    counts = ingested[ingested.index("─") : ingested.index("\nin 701")].split()  # the ingest table
    assert counts[counts.index(name[0]) + 1 : counts.index(name[0]) + 4] == ["701", "483", "218"]
    assert "in 701 = accepted 483 + quarantined 218" in ingested
    if width == 60:
        assert "not shown at this width: suspended sessions, missing bars" in " ".join(ingested.split())


def test_ingest_csv_and_json_of_the_files_and_of_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tape ingest --csv: one row per file with every count (it had --json only); tape ingest
    metadata had neither: --json now prints its reports (the same JSON as
    reports/metadata-*.json), --csv one row per instrument."""
    import csv
    import io

    from cli.main import main
    from tests.factories import synth_lake

    source = _long_named_bars(tmp_path)
    lake = str(tmp_path / "lake")
    argv = ["ingest", "csv", str(source), "--out", lake, "--symbol", "NVDA", "--venue", "XNYS"]
    argv += ["--calendar", "XNYS", "--map", "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]
    assert main([*argv, "--csv", "-"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row["source"], row["symbols"], row["rows_in"], row["accepted"], row["quarantined"]) == (
        str(source), "XNYS:NVDA", "701", "483", "218",
    )  # fmt: skip
    assert row["reasons"] == "ohlc_inconsistent=1;outside_session=217"
    assert main([*argv, "--json", "--csv", "-"]) == 2  # both on stdout
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout

    synthetic = synth_lake(tmp_path / "synth", symbols=3, bars=30)
    meta = tmp_path / "meta.csv"
    meta.write_text("symbol,sector,delisting_date\nSYN0001,bank,2016-01-04\nSYN0002,,\n")
    assert main(["ingest", "metadata", str(meta), "--out", str(synthetic), "--json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    stored = json.loads(sorted((synthetic / "reports").glob("metadata-*.json"))[-1].read_text())
    assert printed == stored
    assert printed["unchanged"] == ["SYNTH:SYN0002"] and printed["delisting"] == {"SYNTH:SYN0001": 20160104}
    out_csv = tmp_path / "out" / "meta.csv"
    assert main(["ingest", "metadata", str(meta), "--out", str(synthetic), "--csv", str(out_csv)]) == 0
    assert "metadata meta.csv" in capsys.readouterr().out  # a file: the table as well
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["instrument"], r["changed"]) for r in rows] == [("SYNTH:SYN0001", "0"), ("SYNTH:SYN0002", "0")]
    assert main(["ingest", "metadata", str(meta), "--out", str(synthetic), "--csv", "-"]) == 0
    assert capsys.readouterr().out.startswith("source,instrument,changed,changes,delisting_date\n")


@pytest.mark.skipif(not SHARED_US.exists(), reason=f"real market data not present at {SHARED_US}")
def test_the_ingest_table_fits_80_columns_and_cuts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real Yahoo files: every name, symbol and count whole at 80 columns (names fold onto a
    second line, counts never), the table no wider than the terminal."""
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    files = [str(SHARED_US / name) for name in ("yhoo-1996-2015.txt", "orcl-1995-2014.txt")]
    assert run(["ingest", "yahoo", *files, "--out", str(tmp_path / "lake")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    first = _first_column(out, "ingest into")  # the file column, whole names here
    for whole in ("yhoo-1996-2015.txt", "orcl-1995-2014.txt", "bars 1d XNYS:YHOO", "bars 1d XNYS:ORCL"):
        assert whole in first, (whole, first)
    table = out[out.index("─") : out.index("\nin 10,001")].split()
    assert [table[table.index(name) + 1] for name in first[::2]] == ["4,965", "5,036"]
    assert "in 10,001 = accepted 10,001 + quarantined 0" in out


def test_hikyuu_minute_price_digits_0_is_0_not_2(tmp_path: Path) -> None:
    """``--price-digits 0`` was read as "not given" (``or 2``): whole-yuan prices were stored
    at 2 digits."""
    source = tmp_path / "time1min_600000.SH.csv"
    source.write_text("datetime,price,vol\n2018-12-03 09:30,11,100\n2018-12-03 09:31,12,50\n")
    assert (
        run(["ingest", "hikyuu-minute", str(source), "--out", str(tmp_path / "lake"), "--price-digits", "0"])
        == 0
    )
    assert [inst.price_digits for inst in Lake(tmp_path / "lake").instruments()] == [0]


def test_a_damaged_ingest_report_is_named_not_a_json_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report cut short (an ingest interrupted while writing it, before reports were written
    whole) made ``tape health`` stop with an internal JSONDecodeError, and ``tape ingest`` too
    after committing its rows."""
    from cli.ingest import add_health_parser, cmd_health
    from lake.health import dataset_health
    from lake.partitioned import LakeError

    lake = tmp_path / "lake"
    for day in ("02", "03"):
        source = tmp_path / f"AAA{day}.txt"
        source.write_text(f"Date,Open,High,Low,Close,Volume\n2014-01-{day},1,1,1,1,1\n")
        assert run(["ingest", "yahoo", str(source), "--symbol", "AAA", "--out", str(lake)]) == 0
    assert sorted(path.name for path in (lake / "reports").iterdir()) == [
        "ingest-000001.json",
        "ingest-000002.json",
    ]
    (lake / "reports" / "ingest-000001.json").write_text('{"files": [')
    with pytest.raises(LakeError, match=r"ingest-000001\.json: unreadable ingest report"):
        dataset_health(Lake(lake))
    capsys.readouterr()
    parser = argparse.ArgumentParser(prog="tape")
    add_health_parser(parser.add_subparsers(dest="verb", required=True))
    assert cmd_health(parser.parse_args(["health", str(lake)])) == 2
    assert "ingest-000001.json: unreadable ingest report (JSONDecodeError" in capsys.readouterr().out
    source = tmp_path / "AAA06.txt"
    source.write_text("Date,Open,High,Low,Close,Volume\n2014-01-06,1,1,1,1,1\n")
    assert run(["ingest", "yahoo", str(source), "--symbol", "AAA", "--out", str(lake)]) == 0  # committed
    out = " ".join(capsys.readouterr().out.split())
    assert "in 1 = accepted 1 + quarantined 0" in out and "data health not shown:" in out


@pytest.mark.parametrize(
    ("options", "venue", "calendar"),
    [
        ([], "XNYS", "XNYS"),
        (["--calendar", "XEUR"], "XEUR", "XEUR"),
        (["--venue", "NASDAQ"], "NASDAQ", "XNYS"),
        (["--venue", "XEUR"], "XEUR", "XEUR"),
        (["--venue", "XNYS", "--calendar", "XEUR"], "XNYS", "XEUR"),
    ],
)
def test_yahoo_venue_and_calendar_name_the_same_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], venue: str, calendar: str
) -> None:
    """``tape ingest yahoo --calendar XEUR`` (no ``--venue``) checked the bars on XEUR but stored
    and printed the instrument as ``XNYS:AAA``, whose calendar is XNYS everywhere after the
    ingest. The given calendar is now the venue too (and a given venue picks its calendar);
    both given are kept as given."""
    from lake.health import calendar_for

    source = tmp_path / "AAA.txt"
    source.write_text("Date,Open,High,Low,Close,Volume\n2014-01-02,1,1,1,1,1\n2014-01-03,1,1,1,1,1\n")
    lake = tmp_path / "lake"
    assert run(["ingest", "yahoo", str(source), "--out", str(lake), *options]) == 0
    assert f"{venue}:AAA" in capsys.readouterr().out
    (instrument,) = Lake(lake).instruments()
    assert instrument.venue == venue
    (report,) = sorted((lake / "reports").iterdir())
    assert json.loads(report.read_text())["files"][0]["calendar"] == calendar
    if "--calendar" not in options or "--venue" not in options:
        assert calendar_for(instrument) == calendar


def test_yahoo_calendar_24x7_without_a_venue_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """24x7 is no venue: the pair cannot be made consistent, so it is refused, nothing written."""
    source = tmp_path / "AAA.txt"
    source.write_text("Date,Open,High,Low,Close,Volume\n2014-01-02,1,1,1,1,1\n")
    lake = tmp_path / "lake"
    assert run(["ingest", "yahoo", str(source), "--out", str(lake), "--calendar", "24x7"]) == 2
    out = capsys.readouterr().out
    assert "--calendar 24x7 needs --venue" in out
    assert not lake.exists()


def test_an_instruments_daily_bars_on_a_second_calendar_are_refused_not_stored_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: a daily bar is stamped at its calendar's session close, so a name's days ingested
    again on another calendar had other times, were not found among the stored rows and were
    stored a second time (two bars a day), and the later report's calendar became the one the
    name is checked on. Now the second ingest is refused whole, naming both calendars; the same
    calendar again is the usual no-op."""
    from cli.main import main
    from lake.partitioned import Lake
    from lake.schema import Kind

    source = tmp_path / "daily.csv"
    source.write_text("day,o,h,l,c,v\n2024-01-02,10,11,9,10.5,5\n2024-01-03,10.5,11,10,10.8,7\n")
    lake = tmp_path / "lake"
    argv = ["ingest", "csv", str(source), "--out", str(lake), "--symbol", "X", "--venue", "XNYS",
            "--frequency", "1d", "--ts-format", "%Y-%m-%d",
            "--map", "ts=day,open=o,high=h,low=l,close=c,volume=v"]  # fmt: skip
    assert main([*argv, "--calendar", "XNYS"]) == 0
    held = Lake(lake).content_hash
    capsys.readouterr()
    assert main([*argv, "--calendar", "XSHG"]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "XNYS:X was ingested on the XNYS calendar" in said and "--calendar XNYS" in said
    assert Lake(lake).content_hash == held
    assert Lake(lake).read(Kind.BARS, "1d", columns=["day"]).num_rows == 2
    assert main([*argv, "--calendar", "XNYS"]) == 0  # the same calendar again: already stored
    assert Lake(lake).content_hash == held
