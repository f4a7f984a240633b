"""The report prints money with its currency's minor digits: a book in BTC (8 digits) shows
0.00075 BTC of fees as 0.00075000 BTC, not 0.00; USD keeps its 2 digits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kernel.store import open_journal
from sim.metrics import report_from_journal
from tests.factories import make_config, make_dataset, run


def test_money_rows_keep_the_currency_digits(tmp_path: Path) -> None:
    config = make_config(make_dataset(tmp_path / "data", bars=60), tmp_path / "j")
    run(config)
    report = report_from_journal(open_journal(tmp_path / "j"))
    usd = dict(report.rows())
    assert usd["initial NAV"] == "1,000,000.00 USD"  # USD: two digits, as before
    btc = dataclasses.replace(
        report,
        currency="BTC",
        initial_nav=1.5,
        final_nav=1.40631233,
        fees=0.00075026,
        fee_lines={"commission": 0.00075026},
        trades=dataclasses.replace(report.trades, expectancy=-0.00016194),
    )
    rows = dict(btc.rows())
    assert rows["initial NAV"] == "1.50000000 BTC"
    assert rows["final NAV"] == "1.40631233 BTC"
    assert rows["fees and taxes"] == "0.00075026 BTC"  # was 0.00 BTC
    assert rows["  commission"] == "0.00075026 BTC"
    assert rows["expectancy / trade"] == "-0.00016194 BTC"  # was -0.00 BTC
    jpy = dict(dataclasses.replace(report, currency="JPY", fees=1234.0).rows())
    assert jpy["fees and taxes"] == "1,234 JPY"  # no minor unit
    assert dict(dataclasses.replace(report, currency="XYZ").rows())["initial NAV"].endswith(".00 XYZ")
