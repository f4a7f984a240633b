"""A run journaled in memory (``kernel.store.memory_journal``, a sweep point that keeps no
journal) has the records and chain head of the same run on disk, and ``sim.metrics.RunFold``
folds the same figures from the events as they are appended as a pass over the finished journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.wiring import make_strategies
from domain.events import DayClosed
from kernel._memory import MemoryBackend
from kernel.journal import HASH_SIZE, Journal
from kernel.store import memory_journal, open_journal
from sim.backtest import run_backtest
from sim.metrics import RunFold, report_and_navs
from tests.factories import make_config, make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("memory") / "data", symbols=4, bars=260)


@pytest.mark.parametrize("strategy", ["sma_crossover", "momentum"])
def test_a_run_in_memory_has_the_chain_head_and_figures_of_the_same_run_on_disk(
    dataset: Path, tmp_path: Path, strategy: str
) -> None:
    config = make_config(dataset, tmp_path / "journal", strategy=strategy)
    on_disk = run_backtest(config, make_strategies(config))
    fold = RunFold()
    in_memory = run_backtest(config, make_strategies(config), on_append=fold.add, in_memory=True)
    assert (in_memory.records, in_memory.last_hash, in_memory.nav_minor) == (
        on_disk.records, on_disk.last_hash, on_disk.nav_minor
    )  # fmt: skip
    assert on_disk.records > 500
    with open_journal(on_disk.journal) as journal:
        report, navs = report_and_navs(journal)
    folded_report, folded_navs = fold.report_and_navs()
    assert folded_report.to_json() == report.to_json()
    assert folded_navs == navs and len(navs) == 260
    assert report.fills > 0


def test_the_memory_backend_reads_back_and_cuts_a_tail_like_a_store_on_disk() -> None:
    seen: list[object] = []
    journal = memory_journal(seen.append)
    events = [
        DayClosed(ts_ns=i, day=20200101 + i, step=i, nav_minor=100 + i, cash_minor=100,
                  gross_exposure_minor=i, currency="USD")
        for i in range(10)
    ]  # fmt: skip
    for event in events[:6]:
        journal.append(event)
    journal.commit()
    for event in events[6:]:
        journal.append(event)
    journal.commit()
    assert seen == events
    assert [record.event() for record in journal.records(0)] == events
    assert [record.seq for record in journal.records(7)] == [7, 8, 9]
    backend = MemoryBackend()
    for key, value in journal.raw_segments(0):
        head = (key + (6 if key == 0 else 4) - 1, value[:HASH_SIZE])
        backend.write_segment(key, value, head)
    assert backend.floor_key(5) == 0 and backend.floor_key(6) == 6 and backend.last_key() == 6
    # A reader over the same segments sees the same chain; cutting the last segment leaves the first.
    reread = Journal(backend, writable=False)
    assert reread.last_hash == journal.last_hash and len(reread) == 10
    assert backend.truncate_from(6, (5, next(iter(backend.iter_segments(0)))[1][:HASH_SIZE])) == 1
    cut = Journal(backend, writable=True)
    assert len(cut) == 6
    assert [record.event() for record in cut.records(0)] == events[:6]
