"""Trades and quotes from the real files in ../shared/data into the lake, and corrupt inputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.sources import IngestError
from lake.tick_sources import (
    parse_freqtrade_trades,
    parse_kraken_trades,
    parse_nautilus_quotes,
    parse_nautilus_trades,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CRYPTO = SHARED / "crypto"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = pytest.mark.needs_shared_data


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def counts(report: object) -> list[tuple[int, int, int]]:
    return [(f.rows_in, f.accepted, f.quarantined) for f in report.files]  # type: ignore[attr-defined]


@needs_shared
def test_freqtrade_trades_parquet_and_ccxt_json_agree(tmp_path: Path) -> None:
    parquet = ingest(
        tmp_path / "a", [CRYPTO / "freqtrade" / "XRP_ETH-trades.parquet"], parse_freqtrade_trades
    )
    assert counts(parquet) == [(12477, 12477, 0)]
    assert parquet.files[0].symbols == ["binance:XRP/ETH"]
    lake = Lake(tmp_path / "a")
    assert lake.verify() == []
    assert [p for p in lake.files if p.startswith("trades/")] == [
        "trades/instrument_id=1/year=2019/part-0.parquet"
    ]
    trades = lake.read(Kind.TRADES, instrument_ids=[1])
    first = trades.slice(0, 1).to_pylist()[0]
    assert (first["trade_id"], first["price"], first["qty"], first["side"]) == (13519807, 141342, 23, -1)
    assert lake.instruments()[0].price_digits == 8
    # Every stored time is the file's millisecond x 1e6 exactly: rint(ms * 1e6) in float64 put
    # 9,367 of the 12,477 trades off by up to 128 ns (1570752011621 ms -> ...620999936 ns).
    import pyarrow.parquet as pq

    source = pq.read_table(CRYPTO / "freqtrade" / "XRP_ETH-trades.parquet")
    millis = dict(zip(source.column("id").to_pylist(), source.column("timestamp").to_pylist(), strict=True))
    stored = zip(trades.column("trade_id").to_pylist(), trades.column("ts_ns").to_pylist(), strict=True)
    assert all(ts_ns == millis[str(trade_id)] * 1_000_000 for trade_id, ts_ns in stored)
    # the raw ccxt JSON of the same period is the same trades: all already stored, nothing new
    again = ingest(tmp_path / "a", [CRYPTO / "freqtrade" / "XRP_OLD-trades.json.gz"], parse_freqtrade_trades)
    assert (again.files[0].rows_in, again.files[0].already_stored, again.files[0].reasons) == (
        12477,
        12477,
        {},
    )
    assert again.unchanged and again.content_hash == lake.content_hash
    json_only = ingest(
        tmp_path / "b", [CRYPTO / "freqtrade" / "XRP_OLD-trades.json.gz"], parse_freqtrade_trades
    )
    assert counts(json_only) == [(12477, 12477, 0)]
    assert Lake(tmp_path / "b").read(Kind.TRADES).equals(trades)


@needs_shared
def test_kraken_and_orderflow_trades(tmp_path: Path) -> None:
    folder = CRYPTO / "freqtrade" / "kraken_trades"
    report = ingest(
        tmp_path, [folder / "BCHEUR.csv", folder / "BCHEUR_incremental_q2.csv"], parse_kraken_trades
    )
    assert [f.rows_in for f in report.files] == [148, 486]
    for file in report.files:
        assert file.rows_in == file.accepted + file.quarantined
        assert set(file.reasons) <= {"duplicate"}  # identical rows, or the overlap with the first file
    assert report.files[1].quarantined == 48
    lake = Lake(tmp_path)
    stored = lake.read(Kind.TRADES, instrument_ids=[1])
    assert stored.num_rows == report.accepted == 585
    assert stored.column("trade_id").null_count == stored.num_rows
    assert (lake.instruments()[0].symbol, lake.instruments()[0].qty_digits) == ("BCH/EUR", 8)
    orderflow = ingest(
        tmp_path,
        [CRYPTO / "freqtrade" / "orderflow" / "public_trades_list.csv"],
        lambda p: parse_freqtrade_trades(p, symbol="ETH/USDT"),
    )
    assert counts(orderflow) == [(1000, 1000, 0)]


@needs_shared
def test_nautilus_trades_and_quotes_parquet_and_csv(tmp_path: Path) -> None:
    binance = CRYPTO / "nautilus" / "binance"
    trades = ingest(tmp_path, [binance / "btcusdt-trades.parquet"], parse_nautilus_trades)
    assert counts(trades) == [(2001, 2001, 0)]
    quotes = ingest(tmp_path, [binance / "btcusdt-quotes.parquet"], parse_nautilus_quotes)
    # 23 quotes share a millisecond with an earlier, different one: the lake keeps one per ts
    assert counts(quotes) == [(451, 428, 23)]
    assert quotes.files[0].reasons == {"duplicate": 23}
    lake = Lake(tmp_path)
    instrument = lake.instruments()[0]
    assert (instrument.symbol, instrument.price_digits, instrument.qty_digits) == ("BTC/USDT", 2, 6)
    book = lake.read(Kind.QUOTES, instrument_ids=[1])
    assert book.num_rows == 428
    first = book.slice(0, 1).to_pylist()[0]
    assert (first["bid_price"], first["ask_price"], first["ask_qty"]) == (3943299, 3943362, 66851)
    assert all(
        b < a for b, a in zip(book["bid_price"].to_pylist(), book["ask_price"].to_pylist(), strict=True)
    )
    # the CSV twins are the same rows: everything already stored (the 23 quotes sharing a
    # millisecond are rejections the quarantine already holds), the lake unchanged
    hash_before = lake.content_hash
    again = ingest(tmp_path, [binance / "btcusdt-trades.csv", binance / "btcusdt-quotes.csv"], _nautilus)
    assert [(f.quarantined, f.already_stored, f.already_quarantined) for f in again.files] == [
        (0, 2001, 0),
        (0, 451, 23),
    ]
    assert again.unchanged and lake.content_hash == hash_before
    assert lake.read(Kind.TRADES).num_rows == 2001


def _nautilus(path: Path) -> object:
    return (parse_nautilus_quotes if "quotes" in path.name else parse_nautilus_trades)(path)


@needs_shared
def test_off_grid_trades_are_quarantined_at_declared_digits(tmp_path: Path) -> None:
    report = ingest(
        tmp_path,
        [CRYPTO / "nautilus" / "binance" / "btcusdt-trades.parquet"],
        lambda p: parse_nautilus_trades(p, qty_digits=4),
    )
    file = report.files[0]
    assert file.rows_in == 2001 == file.accepted + file.quarantined
    assert set(file.reasons) == {"off_price_grid"} and file.quarantined > 0


@needs_shared
@pytest.mark.parametrize("fault", ["truncated", "not_utf8", "wrong_columns", "bad_json", "bad_parquet"])
def test_corrupt_files_name_file_and_line_and_leave_lake_unchanged(tmp_path: Path, fault: str) -> None:
    lake_root = tmp_path / "lake"
    kraken = CRYPTO / "freqtrade" / "kraken_trades" / "BCHEUR.csv"
    ingest(lake_root, [kraken], parse_kraken_trades)
    before = snapshot(lake_root)
    text = kraken.read_text().splitlines()
    bad = tmp_path / "BCHEUR_bad.csv"
    parser = parse_kraken_trades
    if fault == "truncated":
        bad.write_text("\n".join(text[:40]) + "\n" + text[40].rsplit(",", 1)[0] + "\n")
        expected = f"{bad}:41:"
    elif fault == "not_utf8":
        bad.write_bytes(("\n".join(text[:9]) + "\n").encode() + b"1672531436,9\xff0.5,1.0\n")
        expected = f"{bad}:10: not UTF-8"
    elif fault == "wrong_columns":
        bad = tmp_path / "btcusdt-trades.csv"
        bad.write_text("time,id,px,size\n2021-01-08 00:00:00.278+00:00,1,2.0,3.0\n")
        parser = parse_nautilus_trades  # type: ignore[assignment]
        expected = f"{bad}:1: missing columns"
    elif fault == "bad_json":
        bad = tmp_path / "XRP_ETH-trades.json.gz"
        source = gzip.decompress((CRYPTO / "freqtrade" / "XRP_OLD-trades.json.gz").read_bytes())
        bad.write_bytes(gzip.compress(source[:5000]))
        parser = parse_freqtrade_trades  # type: ignore[assignment]
        expected = f"{bad}:1:"
    else:
        bad = tmp_path / "btcusdt-quotes.parquet"
        data = (CRYPTO / "nautilus" / "binance" / "btcusdt-quotes.parquet").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        parser = parse_nautilus_quotes  # type: ignore[assignment]
        expected = f"{bad}:0: not a readable parquet file"
    good = tmp_path / "BCHEUR_incremental_q2.csv"
    shutil.copy(CRYPTO / "freqtrade" / "kraken_trades" / "BCHEUR_incremental_q2.csv", good)
    with pytest.raises(IngestError) as error:
        ingest(lake_root, [good, bad], lambda p: (parse_kraken_trades if p == good else parser)(p))
    assert str(error.value).startswith(expected), str(error.value)
    assert snapshot(lake_root) == before


@needs_shared
def test_cli_ingest_quotes_and_trades(tmp_path: Path) -> None:
    from cli.main import main

    binance = CRYPTO / "nautilus" / "binance"
    assert (
        main(["ingest", "quotes-nautilus", str(binance / "btcusdt-quotes.csv"), "--out", str(tmp_path)]) == 0
    )
    assert main(["ingest", "trades-kraken", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 2
    assert Lake(tmp_path).read(Kind.QUOTES).num_rows == 428
