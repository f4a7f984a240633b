"""Futures margin rows as a data-set table (``margins.parquet``, ``tape export --margins``).

Real bars: the 2006 futures-like daily series (``us/2006-volume-day-001.txt``, declared a
future by metadata as in ``test_instrument_metadata``) and the SSE Composite 1-minute proxy
future of ``test_margin_accounts``. The margin rates are CONSTRUCTED (no shared data set has an
exchange's margin notices): the same rates as those tests' configuration rows, so a run on the
data set's rows must journal what the configuration's rows gave.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from domain.events import FutureSettled, MarginCalled, OrderFilled, OrderSubmitted, RiskVerdict
from domain.instruments import Instrument
from domain.market import MarginRow
from kernel.account import AccountConfig
from kernel.futures import FuturesConfig
from kernel.margin import FuturesMarginRow
from kernel.replay import replay
from kernel.store import open_journal
from lake.margins import MarginFileError, read_margin_rows
from lake.store import DatasetError, load_panel, margins_table, write_dataset
from sim.backtest import build_setup, run_backtest
from tests.factories import make_config
from tests.integration import test_instrument_metadata as meta
from tests.integration import test_margin_accounts as proxy

FUT = Instrument(instrument_id=7, symbol="IF1", venue="CFFEX", asset_class="future", currency="CNY",
                 price_digits=1, tick_raw=2, qty_digits=0, lot_raw=1, multiplier=300)  # fmt: skip
STOCK = Instrument(instrument_id=8, symbol="600000", venue="XSHG", asset_class="equity", currency="CNY",
                   price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100)  # fmt: skip


def _events(path: str | Path) -> list[object]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


def test_a_margin_file_is_validated_whole_with_its_lines(tmp_path: Path) -> None:
    good = tmp_path / "m.csv"
    good.write_text(
        "symbol,since,initial,maintenance,initial_e8,maintenance_e8\n"
        "*,2015-07-01,,,12000000,10000000\n"
        "IF1,2015-07-08,400000.5,300000,,\n"
    )
    read = read_margin_rows(good, [FUT, STOCK], [FUT, STOCK])
    assert read.rows == [
        MarginRow(7, 20150701, initial_e8=12_000_000, maintenance_e8=10_000_000),
        MarginRow(7, 20150708, initial_minor=40_000_050, maintenance_minor=30_000_000),
    ]
    assert read_margin_rows(good, [FUT, STOCK], [STOCK]).rows == []  # the future not exported
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "symbol,since,initial,maintenance,initial_e8,maintenance_e8\n"
        "600000,2015-07-01,,,12000000,10000000\n"  # not a future
        "IF9,2015-07-01,,,12000000,10000000\n"  # not in the lake
        "IF1,2015-13-01,,,12000000,10000000\n"  # not a date
        "IF1,2015-07-01,1.001,1,,\n"  # more digits than CNY's fen
        "IF1,2015-07-02,1,1,5,5\n"  # both pairs
        "IF1,2015-07-03,,,10000000,12000000\n"  # maintenance above initial
        "IF1,2015-07-04,inf,1,,\n"  # was an OverflowError (internal error)
        "IF1,2015-07-05,nan,1,,\n"  # was "more digits than CNY's minor unit"
        "IF1,2015-07-06,1e400,1,,\n"  # no int64
    )
    with pytest.raises(MarginFileError) as error:
        read_margin_rows(bad, [FUT, STOCK], [FUT, STOCK])
    text = str(error.value)
    for line in range(2, 11):
        assert f"bad.csv:{line}:" in text, (line, text)
    assert "bad.csv:8: initial 'inf' is not a finite decimal amount" in text
    assert "bad.csv:9: initial 'nan' is not a finite decimal amount" in text
    assert "bad.csv:10: initial '1e400' is too large (int64 CNY minor units)" in text


def test_the_data_set_checks_its_margin_rows(tmp_path: Path) -> None:
    import pyarrow as pa

    bars = pa.table({"ts_ns": [1], "day": [20150701], "instrument_id": [7], "open": [100], "high": [100],
                     "low": [100], "close": [100], "volume": [1]})  # fmt: skip
    rows = [MarginRow(7, 20150701, initial_e8=12_000_000, maintenance_e8=10_000_000)]
    write_dataset(tmp_path / "ok", name="c", frequency="1d", calendar="24x7", instruments=[FUT], bars=bars,
                  margins=margins_table(rows))  # fmt: skip
    panel, _ = load_panel(tmp_path / "ok")
    assert panel.margin_rows == tuple(rows)
    plain = write_dataset(tmp_path / "plain", name="c", frequency="1d", calendar="24x7", instruments=[FUT],
                          bars=bars)  # fmt: skip
    with_rows = load_panel(tmp_path / "ok")[1]
    assert plain.content_hash != with_rows.content_hash  # the rows are in the hash
    # Rewritten in place without margins (tape export again, without --margins): the old
    # margins.parquet stayed, in the hash and in the run.
    again = write_dataset(tmp_path / "ok", name="c", frequency="1d", calendar="24x7", instruments=[FUT],
                          bars=bars)  # fmt: skip
    assert not (tmp_path / "ok" / "margins.parquet").exists()
    assert again.content_hash == plain.content_hash and load_panel(tmp_path / "ok")[0].margin_rows == ()
    for row, message in (
        (MarginRow(7, 20150701, initial_e8=1, maintenance_e8=2), r"maintenance \(2\) <= initial \(1\)"),
        (MarginRow(7, 20150732, initial_e8=2, maintenance_e8=1), "not a YYYYMMDD date"),
        (MarginRow(7, 20150701, 2, 1, 2, 1), "one pair"),
        (MarginRow(9, 20150701, initial_e8=2, maintenance_e8=1), "not in the instrument master"),
    ):
        with pytest.raises(DatasetError, match=message):
            write_dataset(tmp_path / "bad", name="c", frequency="1d", calendar="24x7", instruments=[FUT],
                          bars=bars, margins=margins_table([row]))  # fmt: skip


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not meta.FUTURES.exists(), reason=f"real market data not present at {meta.FUTURES}")
def test_tape_export_carries_margin_rows_and_a_run_uses_them(tmp_path: Path) -> None:
    """The FESX-2006 daily series as a future (constructed 10 EUR/pt), constructed rows of
    3,000 / 2,400 EUR per contract: exported into the data set, the run without any
    ``[[account.futures_margin]]`` journals what the configured rows gave."""
    lake = tmp_path / "lake"
    ingest = ["ingest", "csv", str(meta.FUTURES), "--out", str(lake), "--symbol", "FESX-2006",
              "--venue", "XEUR", "--calendar", "24x7", "--currency", "EUR", "--map",
              "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]  # fmt: skip
    assert meta.tape(ingest) == 0
    toml = tmp_path / "meta.toml"
    toml.write_text(
        '[[instrument]]\nsymbol = "FESX-2006"\nasset_class = "future"\nmultiplier = 10\ntick = "1"\n'
    )
    assert meta.apply_metadata(lake, toml).changed
    margins = tmp_path / "margins.csv"
    margins.write_text("symbol,since,initial,maintenance\nFESX-2006,2006-01-01,3000,2400\n")
    assert meta.tape(["export", str(lake), str(tmp_path / "rows"), "--calendar", "24x7", "--margins",
                      str(margins)]) == 0  # fmt: skip
    assert pq.read_table(tmp_path / "rows" / "margins.parquet").to_pylist() == [
        {"instrument_id": 1, "since": 20060101, "initial_e8": 0, "maintenance_e8": 0,
         "initial_minor": 300_000, "maintenance_minor": 240_000}
    ]  # fmt: skip
    assert meta.tape(["export", str(lake), str(tmp_path / "plain"), "--calendar", "24x7"]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,since,initial,maintenance\nFESX-2006,2006-01-01,3000,3500\nNOPE,2006-01-01,1,1\n")
    args = ["export", str(lake), str(tmp_path / "refused"), "--calendar", "24x7", "--margins", str(bad)]
    assert meta.tape(args) == 2 and not (tmp_path / "refused").exists()
    common = {"currency": "EUR", "initial_cash": "10000", "risk": proxy.LEVERED,
              "futures": FuturesConfig(settlement="close")}  # fmt: skip
    configured = make_config(
        tmp_path / "plain", tmp_path / "configured", **common,  # type: ignore[arg-type]
        account=AccountConfig(futures_margin=[
            FuturesMarginRow(symbol="*", since="2006-01-01", initial="3000", maintenance="2400")
        ]),
    )  # fmt: skip
    published = make_config(tmp_path / "rows", tmp_path / "published", **common)  # type: ignore[arg-type]
    strategy = Heavy()
    run_backtest(configured, strategy)
    run_backtest(published, strategy)
    first, second = _events(configured.journal), _events(published.journal)

    def trading(events: list[object]) -> list[object]:
        kinds = (OrderFilled, RiskVerdict, MarginCalled, FutureSettled, OrderSubmitted)
        return [e for e in events if isinstance(e, kinds)]

    assert trading(first) == trading(second)
    verdicts = [e for e in second if isinstance(e, RiskVerdict) and e.rule == "initial_margin"]
    assert verdicts and "3 of" in verdicts[0].detail  # 10,000 EUR margins 3 contracts at 3,000
    with open_journal(published.journal) as journal:
        assert replay(
            journal, lambda r, ref: build_setup(published, strategy, expected_hash=ref.content_hash)
        ).ok
    # The rows are pinned by the data set's hash: a changed table is refused on replay.
    rows = pq.read_table(tmp_path / "rows" / "margins.parquet").to_pylist()
    rows[0]["initial_minor"] = 100_000
    pq.write_table(margins_table([MarginRow(**row) for row in rows]), tmp_path / "rows" / "margins.parquet")
    with open_journal(published.journal) as journal, pytest.raises(Exception, match="hash"):
        replay(journal, lambda r, ref: build_setup(published, strategy, expected_hash=ref.content_hash))


class Heavy(meta.LongTwoContracts):
    """Asks for 19x the NAV in contracts: the initial margin decides the size."""

    def decide(self, view):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.array([19.0 if view.step == 3 else 0.0])


@pytest.mark.needs_shared_data
@proxy.needs_proxy
def test_the_proxy_future_is_called_on_the_data_sets_rows_as_on_the_configured_ones(tmp_path: Path) -> None:
    from tests.integration.test_futures_proxy_realdata import PROXY

    strategy = proxy.Plan({("2015-07-06", "10:00"): 9.0})
    configured = proxy._proxy_config(tmp_path, "configured", AccountConfig(futures_margin=proxy.PROXY_ROWS))
    run_backtest(configured, strategy)
    data = tmp_path / "data"
    panel_bars = pq.read_table(data / "bars.parquet")
    write_dataset(tmp_path / "rows", name="sse-proxy-constructed-margins", frequency="1m", calendar="XSHG",
                  instruments=[PROXY], bars=panel_bars,
                  margins=margins_table([MarginRow(PROXY.instrument_id, 20150701, initial_e8=12_000_000,
                                                   maintenance_e8=10_000_000)]))  # fmt: skip
    import msgspec

    published = msgspec.structs.replace(
        configured,
        dataset=str(tmp_path / "rows"),
        journal=str(tmp_path / "published"),
        account=AccountConfig(),
    )
    run_backtest(published, strategy)
    calls = [[e for e in _events(c.journal) if isinstance(e, MarginCalled)] for c in (configured, published)]
    # called at the 07-07 close on settled cash as well (futures_margin_at = "settlement")
    assert calls[0] == calls[1] and [c.day for c in calls[0]] == [20150707, 20150708]
