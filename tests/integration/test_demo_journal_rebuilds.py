"""The skeleton demo's journals (its shipped configs, on data generated as `tape demo` does)
rebuild to identical per-table checksums in SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from cli.main import main as tape
from lake.synth import synth_dataset
from projections import rebuild_ledger
from tests.contracts.projection_servers import scratch_database


@pytest.mark.parametrize(
    ("config_name", "data_name", "shape"),
    [
        ("momentum_daily.toml", "daily", (50, 1260, "1d", True)),
        ("sma_minute.toml", "minute", (5, 7800, "1m", False)),
    ],
)
def test_demo_journal_rebuilds_identically_on_both_databases(
    tmp_path: Path, config_name: str, data_name: str, shape: tuple[int, int, str, bool]
) -> None:
    symbols, bars, frequency, stagger = shape
    synth_dataset(
        tmp_path / "data" / data_name,
        seed=7,
        symbols=symbols,
        bars=bars,
        frequency=frequency,
        calendar="XNYS",
        start="2019-01-02",
        listing_stagger=stagger,
    )
    config = tmp_path / config_name
    shutil.copyfile(str(resources.files("cli.defaults").joinpath(config_name)), config)
    assert tape(["backtest", str(config)]) == 0
    journal = tmp_path / "journals" / config_name.removesuffix(".toml")
    sqlite = rebuild_ledger(journal, tmp_path / "ledger.sqlite")
    with scratch_database() as url:
        postgres = rebuild_ledger(journal, url)
    assert sqlite.records_applied == postgres.records_applied > 0
    assert sqlite.checksums == postgres.checksums
