"""Perpetual funding on real data: XRP/USDT:USDT 5-minute bars and 8-hour funding rates
(freqtrade test data). A long held through every funding time pays position x mark x rate,
journaled as ledger postings, shown by `tape report`, and replayed bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from cli.main import main as tape
from domain.events import LedgerPosted, OrderFilled
from domain.fixed import Rounding
from domain.markets import funding_payment_minor
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import XRP_PERP, HoldLong

FUTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "crypto" / "freqtrade" / "futures"
PERP = XRP_PERP
FIVE_MINUTES_NS = 300_000_000_000


def _dataset(path: Path) -> Path:
    bars = feather.read_table(FUTURES / "XRP_USDT_USDT-5m-futures.feather")
    start_ns = bars.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    ts = start_ns + FIVE_MINUTES_NS  # a bar is stamped at its close
    days = np.char.replace((ts - 1).astype("datetime64[ns]").astype("datetime64[D]").astype(str), "-", "")
    raw = {
        k: np.rint(bars.column(k).to_numpy() * 10_000).astype(np.int64)
        for k in ("open", "high", "low", "close")
    }
    table = pa.table(
        {
            "ts_ns": ts,
            "day": days.astype(np.int32),
            "instrument_id": np.ones(len(ts), np.int32),
            **raw,
            "volume": np.rint(bars.column("volume").to_numpy()).astype(np.int64),
        }
    )
    rates = feather.read_table(FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather")
    funding = pa.table(
        {
            "ts_ns": rates.column("date").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()),
            "instrument_id": pa.array(np.ones(rates.num_rows, np.int32)),
            "rate_e8": pa.array(np.rint(rates.column("open").to_numpy() * 1e8).astype(np.int64)),
        }
    )
    write_dataset(
        path,
        name="xrp-perp",
        frequency="5m",
        calendar="24x7",
        instruments=[PERP],
        bars=table,
        funding=funding,
    )
    return path


@pytest.mark.skipif(not FUTURES.exists(), reason="needs ../shared/data/crypto/freqtrade/futures")
def test_funding_postings_on_real_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = _dataset(tmp_path / "data")
    config = BacktestConfig(
        run_id="perp",
        dataset=str(dataset),
        journal=str(tmp_path / "j"),
        currency="USDT",
        initial_cash="100000",
        strategy=StrategyConfig(name="hold"),
        fill=FillModel(commission_e8=50_000),
    )
    run_backtest(config, HoldLong())
    journal = open_journal(tmp_path / "j")
    outcome = replay(
        journal, lambda run, ref: build_setup(config, HoldLong(), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    events = [event for _, event in journal.events()]
    funding = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("funding ")]
    # Rates from 2021-11-18 00:00 to 2021-11-21 16:00 fall inside the bars: 3 a day x 4 days.
    assert len(funding) == 12
    position_qty = _position_qty(events)
    assert position_qty > 0
    for posting in funding:
        fields = dict(part.split("=") for part in posting.memo.split() if "=" in part)
        amounts = {p.account: p.amount_minor for p in posting.postings}
        cash = amounts["assets:cash:USDT"]
        expected = funding_payment_minor(
            PERP, position_qty, int(fields["mark_px_raw"]), int(fields["rate_e8"]), Rounding.HALF_EVEN
        )
        assert cash == expected
        assert sum(amounts.values()) == 0
        if int(fields["rate_e8"]) > 0:
            assert cash < 0  # a long pays positive funding
    assert tape(["report", str(tmp_path / "j")]) == 0
    total_paid = -sum(p.amount_minor for e in funding for p in e.postings if p.account == "assets:cash:USDT")
    assert f"{total_paid / 1e6:,.6f} USDT" in capsys.readouterr().out  # the funding line, to the 1e-6


def _position_qty(events: list[object]) -> int:
    return sum(e.side * e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
