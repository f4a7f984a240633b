"""One ingest of two files of one instrument at different price digits (freqtrade's
XRP/USDT:USDT 8h mark candles at 4 digits, its 1h mark candles at 5): the refusal names the file
and says that an earlier file of the same ingest, not the lake, set the digits, and how to ingest
them; the lake is unchanged. The finer file first takes both."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cli.main import main as tape
from lake.partitioned import Lake


def _marks(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    files = []
    for frequency, prices in (("8h", [1.0959, 1.1075, 1.0564]), ("1h", [1.20932, 1.21431, 1.20902])):
        frame = pd.DataFrame(
            {"date": pd.date_range("2021-11-18", periods=3, freq=frequency, tz="UTC"), "open": prices}
        )
        frame["high"], frame["low"], frame["close"], frame["volume"] = prices, prices, prices, 0.0
        path = folder / f"XRP_USDT_USDT-{frequency}-mark.feather"
        frame.to_feather(path)
        files.append(path)
    return files[0], files[1]


def test_digits_set_by_an_earlier_file_of_the_ingest_are_named(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    coarse, fine = _marks(tmp_path / "src")
    lake = tmp_path / "lake"
    assert tape(["ingest", "freqtrade", str(coarse), str(fine), "--out", str(lake)]) == 2
    captured = capfd.readouterr()
    text = captured.out + captured.err
    # Was: "binance:XRP/USDT:USDT#mark is stored at price_digits 4, the new data needs 5" for a
    # lake that stored nothing, without naming the file.
    assert f"{fine}: binance:XRP/USDT:USDT#mark: an earlier file of this ingest holds it" in text
    assert "ingest the finer file first" in text and "is stored" not in text
    assert not (lake / "lake.json").exists()
    assert tape(["ingest", "freqtrade", str(fine), str(coarse), "--out", str(lake)]) == 0
    assert {i.symbol: i.price_digits for i in Lake(lake).instruments()} == {"XRP/USDT:USDT#mark": 5}
