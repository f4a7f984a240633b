"""Derivatives data through the lake, on real files in ../shared/data: ingest -> lake ->
``tape export`` -> ``tape backtest``.

The freqtrade XRP/USDT:USDT perpetual (5-minute bars, 8-hour funding rates), the 2006
futures-like daily series (``us/2006-volume-day-001.txt``, probably Euro Stoxx 50 futures) and
the 2006 daily index series read as a Yahoo file on the Eurex calendar (XEUR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main as tape
from domain.events import FutureSettled, LedgerPosted
from kernel.store import open_journal
from lake.health import dataset_health
from lake.partitioned import Lake
from lake.schema import Kind
from lake.store import content_hash, load_panel

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FUTURES = SHARED / "crypto" / "freqtrade" / "futures"
BARS_5M = FUTURES / "XRP_USDT_USDT-5m-futures.feather"
FUNDING = FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather"
FESX = SHARED / "us" / "2006-volume-day-001.txt"
INDEX_2006 = SHARED / "us" / "2006-day-001.txt"
needs_perp = pytest.mark.skipif(not FUTURES.exists(), reason=f"real perpetual data not present at {FUTURES}")
needs_us = pytest.mark.skipif(not FESX.exists(), reason=f"real 2006 futures data not present at {FESX}")
pytestmark = pytest.mark.needs_shared_data


def _digits(lake: Path) -> dict[str, int]:
    return {inst.symbol: inst.price_digits for inst in Lake(lake).instruments()}


@needs_perp
@pytest.mark.parametrize("order", ["bars first", "funding first"])
def test_bars_and_funding_in_one_ingest_keep_the_bars_price_digits(tmp_path: Path, order: str) -> None:
    files = [BARS_5M, FUNDING] if order == "bars first" else [FUNDING, BARS_5M]
    # Was: "stored at price_digits 4, the new data needs 8" (exit 2), or the bars stored at 8.
    assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(tmp_path / "lake")]) == 0
    assert _digits(tmp_path / "lake") == {"XRP/USDT:USDT": 4}
    lake = Lake(tmp_path / "lake")
    assert lake.read(Kind.FUNDING_RATES).num_rows == 91
    assert lake.read(Kind.BARS, "5m").column("close")[0].as_py() == 11_941  # 1.1941 USDT at 4 digits


@needs_perp
def test_funding_ingested_before_the_bars_does_not_decide_their_digits(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    assert tape(["ingest", "freqtrade", str(FUNDING), "--out", lake]) == 0
    assert tape(["ingest", "freqtrade", str(BARS_5M), "--out", lake]) == 0
    assert _digits(tmp_path / "lake") == {"XRP/USDT:USDT": 4}  # was 8, the rates' scale
    # Once prices are stored, finer prices are still refused (rows on a coarser grid are fine).
    one_hour = FUTURES / "XRP_USDT_USDT-1h-futures.feather"  # inferred at 5 digits
    assert tape(["ingest", "freqtrade", str(one_hour), "--out", lake]) == 2
    assert _digits(tmp_path / "lake") == {"XRP/USDT:USDT": 4}


@needs_perp
def test_export_writes_funding_and_a_cli_backtest_books_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", str(BARS_5M), str(FUNDING), "--out", str(lake)]) == 0
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
    assert "funding 12 rows" in capsys.readouterr().out
    panel, ref = load_panel(data)
    # The 8-hourly rates inside the bars' span (2021-11-18 00:00 to 2021-11-21 16:00): 3 a day x 4.
    assert len(panel.funding_ts_ns) == 12
    assert set(panel.funding_instrument_id.tolist()) == {1}
    assert panel.funding_rate_e8[0] == 10_000  # 0.01%
    assert panel.funding_ts_ns.min() > panel.ts_ns[0] - 300_000_000_000  # none before the first bar
    assert panel.funding_ts_ns.max() <= panel.ts_ns[-1]
    # Covered by the content hash: the data set without its funding is another data set.
    without = content_hash(data)
    (data / "funding.parquet").rename(tmp_path / "funding.parquet")
    assert content_hash(data) != without == ref.content_hash
    (tmp_path / "funding.parquet").rename(data / "funding.parquet")
    config = tmp_path / "perp.toml"
    config.write_text(
        f'run_id = "perp"\ndataset = "{data}"\njournal = "{tmp_path / "j"}"\ncurrency = "USDT"\n'
        'initial_cash = "10000"\n\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 3, slow = 8, weight = 0.8, short_weight = 0.8 }\n"
    )
    assert tape(["backtest", str(config)]) == 0
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    funding = [
        e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("funding XRP/USDT:USDT")
    ]
    assert funding  # was none: the exported data set had no funding.parquet
    assert all(sum(p.amount_minor for p in e.postings) == 0 for e in funding)
    # A window exports the fundings it trades through only.
    window = tmp_path / "window"
    assert tape(["export", str(lake), str(window), "--frequency", "5m", "--calendar", "24x7",
                 "--start", "2021-11-20"]) == 0  # fmt: skip
    assert len(load_panel(window)[0].funding_ts_ns) == 6  # 2021-11-20 and 11-21, 3 a day


@needs_us
def test_yahoo_ingest_on_a_declared_calendar_is_checked_against_it(tmp_path: Path) -> None:
    eurex = tmp_path / "eurex"
    args = ["ingest", "yahoo", str(INDEX_2006), "--symbol", "SX5E", "--calendar", "XEUR"]
    assert tape([*args, "--venue", "EUREX", "--out", str(eurex)]) == 0
    (health,) = dataset_health(Lake(eurex))
    assert health.unchecked_instruments == []  # was ["EUREX:SX5E"]: "unchecked: no calendar"
    assert health.gaps.suspension_sessions == 0 and health.coverage == 1.0  # every XEUR session
    # The default venue (XNYS) no longer decides the calendar the ingest declared: on XNYS's
    # the series missed 5 sessions (US holidays it trades through) and ran on others.
    default_venue = tmp_path / "default"
    assert tape([*args, "--out", str(default_venue)]) == 0
    (health,) = dataset_health(Lake(default_venue))
    assert (health.unchecked_instruments, health.gaps.suspension_sessions, health.coverage) == ([], 0, 1.0)
    # A venue that is itself a calendar code is its calendar, with no report to say so.
    xeur = tmp_path / "xeur"
    assert tape([*args, "--venue", "XEUR", "--out", str(xeur)]) == 0
    for report in (xeur / "reports").glob("ingest-*.json"):
        report.unlink()
    (health,) = dataset_health(Lake(xeur))
    assert (health.unchecked_instruments, health.coverage) == ([], 1.0)


@needs_perp
def test_export_json_to_stdout_or_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", str(BARS_5M), str(FUNDING), "--out", str(lake)]) == 0
    capsys.readouterr()
    export = ["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]
    assert tape([*export, "--json"]) == 0  # was: unrecognized arguments (exit 2)
    out, err = capsys.readouterr()
    report = json.loads(out)  # stdout holds the JSON alone; the summary line went to stderr
    assert "wrote" in err
    assert report["content_hash"] == content_hash(data)
    assert (report["frequency"], report["calendar"], report["instruments"], report["rows"]) == (
        "5m",
        "24x7",
        1,
        1999,
    )
    assert report["files"] == {"bars.parquet": 1999, "funding.parquet": 12, "instruments.parquet": 1}
    assert tape([*export, "--json", str(tmp_path / "out" / "export.json")]) == 0
    assert json.loads((tmp_path / "out" / "export.json").read_text()) == report
    assert "wrote" in capsys.readouterr().out


def _future_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    assert tape(["ingest", "csv", str(FESX), "--out", str(lake), "--symbol", "FESX-2006", "--venue", "XEUR",
                 "--calendar", "24x7", "--currency", "EUR", "--map",
                 "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]) == 0  # fmt: skip
    meta = tmp_path / "meta.toml"  # constructed: the Euro Stoxx 50 future's 10 EUR/pt, tick 1.0
    meta.write_text(
        '[[instrument]]\nsymbol = "FESX-2006"\nasset_class = "future"\nmultiplier = 10\ntick = "1"\n'
    )
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 0
    return lake


def _future_config(tmp_path: Path, data: Path, journal: str) -> Path:
    config = tmp_path / f"{journal}.toml"
    config.write_text(
        f'run_id = "fut"\ndataset = "{data}"\njournal = "{tmp_path / journal}"\ncurrency = "EUR"\n'
        'initial_cash = "100000"\n\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 5, slow = 20, weight = 0.9 }\n\n[risk]\n"
        'name = { limit_e8 = 100_000_000, action = "clip" }\n\n[[account.futures_margin]]\n'
        'symbol = "*"\nsince = "2006-01-01"\ninitial = "3000"\nmaintenance = "2400"\n'
    )
    return config


@needs_us
def test_futures_settle_on_prices_exported_from_a_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _future_lake(tmp_path)
    # Without settlement prices the default method ("dataset") is refused, naming what to do.
    assert tape(["export", str(lake), str(tmp_path / "bare"), "--calendar", "24x7"]) == 0
    capsys.readouterr()
    assert tape(["backtest", str(_future_config(tmp_path, tmp_path / "bare", "j0"))]) == 2
    refusal = capsys.readouterr().out.replace("\n", "")
    assert "tape export --settlements FILE" in refusal and 'settlement = "close"' in refusal
    # The series publishes no settlement prices: the CSV states each session's close as its
    # settlement (constructed), one price off by a tick on 2006-06-30 to tell the two apart.
    lines = FESX.read_text().splitlines()[1:]
    settles = {line.split(",")[0]: int(float(line.split(",")[4])) for line in lines}
    settles["2006-06-30"] += 1
    prices = tmp_path / "settle.csv"
    prices.write_text(
        "symbol,date,settle\n"
        + "".join(f"FESX-2006,{d},{p}\n" for d, p in settles.items())
        + "FESX-2006,2007-01-02,4100\n"
    )  # fmt: skip  (after the bars: skipped)
    data = tmp_path / "data"
    assert tape(["export", str(lake), str(data), "--calendar", "24x7", "--settlements", str(prices)]) == 0
    assert "settlements 255 rows" in capsys.readouterr().out
    assert tape(["backtest", str(_future_config(tmp_path, data, "j1"))]) == 0
    with open_journal(tmp_path / "j1") as journal:
        settled = [event for _, event in journal.events() if isinstance(event, FutureSettled)]
    assert settled and {e.method for e in settled} == {"dataset"}
    for event in settled:
        day = str(event.day)
        assert event.settle_px_raw == settles[f"{day[:4]}-{day[4:6]}-{day[6:]}"]
    # A bad file: every problem with its line, nothing written.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "symbol,date,settle\nFESX-2006,2006-01-02,3617.5\nNOPE,2006-01-03,1\nFESX-2006,2006-13-01,3\n"
    )
    assert (
        tape(["export", str(lake), str(tmp_path / "bad"), "--calendar", "24x7", "--settlements", str(bad)])
        == 2
    )
    error = capsys.readouterr().out.replace("\n", "")
    assert all(f"bad.csv:{n}:" in error for n in (2, 3, 4)) and not (tmp_path / "bad").exists()
