"""XSHG past exchange_calendars' last year: the operator supplies the next years' holidays.

exchange_calendars records XSHG's holidays only through a last year (2026 in 4.13.x). Before,
every XSHG data set ending in that last year failed to export (the session lookup padded a year
past it: "internal error: ValueError ... through to 2027-12-31", exit 70); a set crossing into
the next year failed the same way, a backtest on one stopped mid-run with "internal error:
CalendarNotCovered ... (a bug: please report it)" and paper's grid with the library's own words.
Now a date past the coverage is a refusal (exit 2) that names the fix, and ``tape export
--holidays FILE`` extends XSHG by exactly the years in the file, checked whole, and carries them
in the data set (``holidays.parquet``, content-hashed) so a run and its replay use the same ones.
The holidays here are synthetic (a Wednesday in January), not 2027's real closures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cli.main import main as tape
from domain.markets import (
    CalendarNotCovered,
    HolidaysInvalid,
    HolidayYears,
    last_covered_day,
    parse_holidays,
    sessions,
)
from lake.partitioned import Lake, LakeError
from lake.sessions import step_grid
from lake.store import load_panel, write_dataset
from tests.factories import utc_ns, weekday_bars, weekday_lake

SYNTHETIC = "year,date,name\n2027,2027-01-01,synthetic one\n2027,2027-01-13,synthetic two\n"
"""Two synthetic 2027 closures (a Friday and a Wednesday)."""


def _holidays(tmp_path: Path, text: str = SYNTHETIC) -> Path:
    path = tmp_path / "holidays.csv"
    path.write_text(text)
    return path


def test_an_xshg_set_ending_in_the_last_covered_year_exports(tmp_path: Path) -> None:
    lake = weekday_lake(tmp_path / "lake", "2026-11-02", "2026-12-31")
    ref = Lake(lake).export(tmp_path / "set", "1d", calendar="XSHG")
    panel, _ = load_panel(Path(ref.uri))
    assert int(panel.day[-1]) == 20261231
    assert panel.holidays is None
    assert not (tmp_path / "set" / "holidays.parquet").exists()


def test_past_the_coverage_the_refusal_says_what_to_supply(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake = weekday_lake(tmp_path / "lake", "2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    assert tape(["export", str(lake), str(tmp_path / "set"), "--calendar", "XSHG"]) == 2
    out = capfd.readouterr().out
    assert "records holidays only through 2026-12-31" in out
    assert "--holidays FILE" in out and "docs/markets.md" in out
    assert not (tmp_path / "set").exists()


def test_supplied_holidays_extend_xshg_by_exactly_their_years(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake = weekday_lake(tmp_path / "lake", "2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    out = tmp_path / "set"
    code = tape(["export", str(lake), str(out), "--calendar", "XSHG", "--holidays", str(_holidays(tmp_path))])
    assert code == 0, capfd.readouterr().out
    panel, _ = load_panel(out)
    assert panel.holidays == HolidayYears("XSHG", (2027,), (20270101, 20270113))
    assert pq.read_table(out / "holidays.parquet").to_pylist()[1] == {
        "calendar": "XSHG", "year": 2027, "day": 20270113,
    }  # fmt: skip
    assert last_covered_day("XSHG", holidays=panel.holidays) == 20271231
    assert last_covered_day("XSHG") == 20261231  # nothing global changed
    assert sessions("XSHG", 20270111, 20270115, holidays=panel.holidays) == [
        20270111, 20270112, 20270114, 20270115,
    ]  # fmt: skip
    with pytest.raises(CalendarNotCovered, match="supplied holidays through 2027"):
        sessions("XSHG", 20271230, 20280103, holidays=panel.holidays)

    # A bar on a supplied closure is refused, as any bar off the calendar is.
    other = weekday_lake(tmp_path / "lake2", "2026-12-01", "2027-01-29", closed=("2027-01-01",))
    with pytest.raises(LakeError, match="2027-01-13, not a XSHG session day"):
        Lake(other).export(tmp_path / "set2", "1d", calendar="XSHG", holidays=_holidays(tmp_path))
    # Only XSHG has years to extend.
    with pytest.raises(LakeError, match="XNYS is rule-based"):
        Lake(lake).export(tmp_path / "set3", "1d", calendar="XNYS", holidays=_holidays(tmp_path))


def test_the_holidays_are_in_the_content_hash(tmp_path: Path) -> None:
    bars, instruments = weekday_bars("2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    plain = write_dataset(
        tmp_path / "a", name="a", frequency="1d", calendar="XSHG", instruments=instruments, bars=bars
    )
    one = HolidayYears("XSHG", (2027,), (20270101, 20270113))
    other = HolidayYears("XSHG", (2027,), (20270101, 20270113, 20270115))
    first = write_dataset(
        tmp_path / "b",
        name="b",
        frequency="1d",
        calendar="XSHG",
        instruments=instruments,
        bars=bars,
        holidays=one,
    )
    second = write_dataset(
        tmp_path / "c",
        name="c",
        frequency="1d",
        calendar="XSHG",
        instruments=instruments,
        bars=bars,
        holidays=other,
    )
    assert len({plain.content_hash, first.content_hash, second.content_hash}) == 3


def test_the_file_is_checked_whole_each_problem_with_its_line() -> None:
    text = (
        "# synthetic\n"
        "year,date,name\n"
        "2027,2027-01-02,a Saturday\n"  # line 3
        "2027,2028-01-04,another year\n"  # line 4
        "2027,2027-01-13,ok\n"
        "2027,2027-01-13,twice\n"  # line 6
        "2027,2027-02-30,no such day\n"  # line 7
        "2026,2026-12-30,already recorded\n"  # line 8
    )
    with pytest.raises(HolidaysInvalid) as refused:
        parse_holidays(text, "h.csv")
    message = str(refused.value)
    assert message.startswith("h.csv: ")
    assert "line 3: 2027-01-02 is a Saturday" in message and "调休" in message
    assert "line 4: 2028-01-04 is not in 2027" in message
    assert "line 6: 2027-01-13 is listed twice (first on line 5)" in message
    assert "line 7: '2027-02-30' is not a date YYYY-MM-DD" in message
    assert "already records XSHG's holidays for 2026" in message
    with pytest.raises(HolidaysInvalid, match="leave 2027 out"):
        parse_holidays("year,date\n2028,2028-01-04\n", "gap.csv")
    with pytest.raises(HolidaysInvalid, match="line 1: the header must name the columns year and date"):
        parse_holidays("date\n2027-01-04\n", "header.csv")
    assert parse_holidays(SYNTHETIC, "ok.csv").years == (2027,)


def test_backtest_and_replay_use_the_carried_holidays(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The second name lists on 2026-12-28: its price band counts XSHG sessions into 2027.
    bars, instruments = weekday_bars(
        "2026-11-02", "2027-01-29", closed=("2027-01-01", "2027-01-13"), listing_day=20261228
    )
    holidays = HolidayYears("XSHG", (2027,), (20270101, 20270113))
    for name, extra in (("plain", None), ("extended", holidays)):
        write_dataset(
            tmp_path / name, name=name, frequency="1d", calendar="XSHG", instruments=instruments,
            bars=bars, holidays=extra,
        )  # fmt: skip
        (tmp_path / f"{name}.toml").write_text(
            f'run_id = "{name}"\ndataset = "{tmp_path / name}"\njournal = "{tmp_path / name}.sqlite"\n'
            'initial_cash = "1000000"\ncurrency = "CNY"\n[strategy]\nname = "sma_crossover"\n'
            "params = { fast = 3, slow = 8, weight = 0.5 }\n"
        )
    assert tape(["backtest", str(tmp_path / "plain.toml")]) == 2  # was 70, "a bug: please report it"
    # Refused before the journal opens (it was written up to 2026-12-31 and left unfinished).
    assert not (tmp_path / "plain.sqlite").exists()
    refused = capfd.readouterr().out
    assert "--holidays FILE" in refused and "600002 lists on 20261228" in refused
    assert tape(["backtest", str(tmp_path / "extended.toml"), "--json", str(tmp_path / "run.json")]) == 0
    assert json.loads((tmp_path / "run.json").read_text())["records"] > 100
    assert tape(["replay", str(tmp_path / "extended.sqlite")]) == 0


def test_a_set_past_the_coverage_without_a_listing_in_it_still_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The check before the journal asks the calendar only where a run counts sessions (an
    A-share's first sessions after listing): a set whose bars run past the coverage with no
    listing near them ran to its end before the check and still does."""
    bars, instruments = weekday_bars("2026-11-02", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    write_dataset(
        tmp_path / "set", name="set", frequency="1d", calendar="XSHG", instruments=instruments, bars=bars
    )
    (tmp_path / "run.toml").write_text(
        f'run_id = "old"\ndataset = "{tmp_path / "set"}"\njournal = "{tmp_path / "run.sqlite"}"\n'
        'initial_cash = "1000000"\ncurrency = "CNY"\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 3, slow = 8, weight = 0.5 }\n"
    )
    assert tape(["backtest", str(tmp_path / "run.toml")]) == 0, capfd.readouterr().out


def test_paper_grid_runs_on_the_data_sets_holidays(tmp_path: Path) -> None:
    holidays = HolidayYears("XSHG", (2027,), (20270101, 20270113))
    first, last = utc_ns("2026-12-30"), utc_ns("2027-01-16")
    with pytest.raises(CalendarNotCovered, match="--holidays FILE"):
        step_grid("XSHG", "1d", first, last)
    _, days = step_grid("XSHG", "1d", first, last, holidays)
    assert days.tolist() == [
        20261230, 20261231, 20270104, 20270105, 20270106, 20270107, 20270108, 20270111, 20270112,
        20270114, 20270115,
    ]  # fmt: skip


def test_a_mixed_set_checks_its_a_shares_on_the_supplied_holidays(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``--calendar mixed`` checks each name on its own calendar (here XSHG, from the SSE venue):
    past the library's coverage without holidays it is the same refusal that names the fix (the
    refusal's hint must not fail on the uncovered year), and with them the set exports."""
    lake = weekday_lake(tmp_path / "lake", "2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    assert tape(["export", str(lake), str(tmp_path / "bare"), "--calendar", "mixed"]) == 2
    refused = capfd.readouterr().out
    assert "records holidays only through 2026-12-31" in refused and "--holidays FILE" in refused
    out = tmp_path / "set"
    args = ["export", str(lake), str(out), "--calendar", "mixed", "--holidays", str(_holidays(tmp_path))]
    assert tape(args) == 0, capfd.readouterr().out
    panel, _ = load_panel(out)
    assert panel.holidays == HolidayYears("XSHG", (2027,), (20270101, 20270113))
    # a bar on a supplied closure is refused in a mixed set too
    wrong = weekday_lake(tmp_path / "wrong", "2026-12-01", "2027-01-29", closed=("2027-01-01",))
    supplied = str(_holidays(tmp_path))
    args = ["export", str(wrong), str(tmp_path / "w"), "--calendar", "mixed", "--holidays", supplied]
    assert tape(args) == 2
    assert "2027-01-13, not a XSHG session day" in capfd.readouterr().out


def test_health_of_a_lake_ending_on_the_last_covered_day(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The gap report padded a day after the lake's last bar: a lake ending on 2026-12-31 asked
    XSHG for 2027-01-01 and ``tape health`` was refused (exit 2) for a day the lake does not
    hold. The day after is asked only where the calendar knows it."""
    lake = weekday_lake(tmp_path / "lake", "2026-11-02", "2026-12-31")
    assert tape(["health", str(lake)]) == 0, capfd.readouterr().out


def test_health_takes_the_holidays_and_its_refusal_names_its_own_option(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake = weekday_lake(tmp_path / "lake", "2026-12-01", "2027-01-29", closed=("2027-01-01", "2027-01-13"))
    assert tape(["health", str(lake)]) == 2
    refused = " ".join(capfd.readouterr().out.split())
    assert "records holidays only through 2026-12-31" in refused
    assert "tape health LAKE --holidays FILE" in refused and "tape export" not in refused
    assert tape(["health", str(lake), "--holidays", str(_holidays(tmp_path)), "--json", "-"]) == 0
    (report,) = json.loads(capfd.readouterr().out)
    gaps = report["gaps"]  # 42 sessions of each name: the supplied closures are no gap
    assert (gaps["sessions_expected"], gaps["sessions_present"], gaps["missing_bars"]) == (84, 84, 0)
    # The file is checked whole, as export checks it.
    bad = _holidays(tmp_path, "year,date\n2027,2027-01-02\n")
    assert tape(["health", str(lake), "--holidays", str(bad)]) == 2
    assert "2027-01-02 is a Saturday" in capfd.readouterr().out


def test_ingest_takes_the_holidays_and_its_refusal_names_its_own_option(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "600001.csv"
    rows = ["2026-12-30", "2026-12-31", "2027-01-04", "2027-01-05", "2027-01-12", "2027-01-14"]
    source.write_text("date,open,high,low,close,volume\n" + "".join(f"{d},10,11,9,10,100\n" for d in rows))
    argv = ["ingest", "csv", str(source), "--out", str(tmp_path / "lake"), "--symbol", "600001", "--venue",
            "SSE", "--calendar", "XSHG", "--currency", "CNY", "--map",
            "ts=date,open=open,high=high,low=low,close=close,volume=volume"]  # fmt: skip
    assert tape(argv) == 2
    refused = " ".join(capfd.readouterr().out.split())
    assert "records holidays only through 2026-12-31" in refused and "the lake is unchanged" in refused
    assert "tape ingest ... --holidays FILE" in refused and "tape export" not in refused
    assert not (tmp_path / "lake").exists()
    assert tape([*argv, "--holidays", str(_holidays(tmp_path)), "--json", str(tmp_path / "in.json")]) == 0
    (report,) = json.loads((tmp_path / "in.json").read_text())["files"]
    # 2027-01-06..08 and 2027-01-11 are sessions without a bar; 2027-01-13 is a supplied closure
    assert (report["accepted"], report["suspension_sessions"]) == (6, 4)


def test_the_limit_up_probe_counts_listings_on_the_data_sets_holidays(tmp_path: Path) -> None:
    """``cn_rules_probes``' LimitUpChase predicts each name's band with ``cn_instrument_limits``;
    it did so without the data set's holidays, so a name listed 2026-12-28 raised
    CalendarNotCovered at its first 2027 session on a set that carries 2027's closures."""
    from models.strategies.cn_rules_probes import LimitUpChase

    bars, instruments = weekday_bars(
        "2026-11-02", "2027-01-29", closed=("2027-01-01", "2027-01-13"), listing_day=20261228
    )
    holidays = HolidayYears("XSHG", (2027,), (20270101, 20270113))
    write_dataset(
        tmp_path / "set", name="set", frequency="1d", calendar="XSHG", instruments=instruments,
        bars=bars, holidays=holidays,
    )  # fmt: skip
    panel, _ = load_panel(tmp_path / "set")
    assert panel.holidays == holidays
    LimitUpChase().schedule(panel)  # raised CalendarNotCovered for 20270104
