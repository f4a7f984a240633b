"""End to end: backtest -> journal -> verify -> replay (whole run and one day) -> canaries."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cli.main import main as tape
from cli.wiring import replay_builder
from domain.events import OrderFilled, RiskVerdict
from domain.market import Panel
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import DatasetError
from sim.backtest import run_backtest
from tests.factories import Scripted, forge_journal, killed_copy, make_config, make_dataset, run


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "daily", symbols=6, bars=400)


@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
@pytest.mark.parametrize("strategy", ["sma_crossover", "momentum"])
def test_backtest_replays_bit_for_bit(daily: Path, tmp_path: Path, backend: str, strategy: str) -> None:
    journal_path = tmp_path / ("j" if backend == "lmdb" else "j.sqlite")
    result = run(make_config(daily, journal_path, strategy=strategy, backend=backend))
    journal = open_journal(journal_path)
    kinds = Counter(record.kind for record in journal.records())
    assert kinds["order.filled.v1"] > 0
    assert kinds["risk.verdict.v2"] == 7 * kinds["strategy.targets_decided.v1"]  # priced + 6 portfolio rules
    assert kinds["day.closed.v1"] == kinds["state.snapshotted.v1"] == 400
    assert journal.verify().ok
    outcome = replay(journal, replay_builder)
    assert outcome.ok, outcome.divergence
    assert outcome.records_compared == result.records - 2  # all but the two inputs


def test_same_run_same_hash_on_both_backends(daily: Path, tmp_path: Path) -> None:
    lmdb_run = run(make_config(daily, tmp_path / "a", backend="lmdb"))
    sqlite_run = run(make_config(daily, tmp_path / "b.sqlite", backend="sqlite"))
    assert lmdb_run.records == sqlite_run.records
    # The configs differ only in their journal paths, which the first record carries.
    first = open_journal(tmp_path / "a").record(5).payload
    assert first == open_journal(tmp_path / "b.sqlite").record(5).payload


def test_replay_one_day_from_its_snapshot(daily: Path, tmp_path: Path) -> None:
    run(make_config(daily, tmp_path / "j"))
    journal = open_journal(tmp_path / "j")
    days = [e.day for _, e in journal.events() if type(e).__name__ == "DayClosed"]
    for day in (days[0], days[len(days) // 2], days[-1]):
        outcome = replay(journal, replay_builder, day=day)
        assert outcome.ok, (day, outcome.divergence)
        assert outcome.records_compared >= 2  # at least DayClosed + StateSnapshotted


def test_forged_but_chained_journal_fails_replay_at_that_record(
    daily: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(make_config(daily, tmp_path / "j"))
    journal = open_journal(tmp_path / "j")
    fill_seq = next(seq for seq, event in journal.events() if isinstance(event, OrderFilled))
    fill = journal.record(fill_seq).event()
    assert isinstance(fill, OrderFilled)
    forge_journal(tmp_path / "j", tmp_path / "forged", fill_seq, {"fill_px_raw": fill.fill_px_raw + 1})
    forged = open_journal(tmp_path / "forged")
    assert forged.verify().ok  # the chain itself is valid: only replay can tell
    outcome = replay(forged, replay_builder)
    assert outcome.divergence is not None
    assert outcome.divergence.seq == fill_seq
    assert isinstance(outcome.divergence.actual, OrderFilled)
    assert outcome.divergence.actual.fill_px_raw == fill.fill_px_raw
    forged.close()
    capsys.readouterr()
    assert tape(["replay", str(tmp_path / "forged")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"replay diverged at seq {fill_seq} of {tmp_path / 'forged'}: derived event differs" in out
    assert "journal: OrderFilled(" in out and "replay : OrderFilled(" in out
    # --json: the divergence with both events whole, the same exit status, stdout the data alone
    assert tape(["replay", str(tmp_path / "forged"), "--json"]) == 1
    captured = capsys.readouterr()
    diverged = json.loads(captured.out)["divergence"]
    assert "replay diverged" in captured.err
    assert (diverged["seq"], diverged["journal_record"]) == (fill_seq, "event")
    assert diverged["reason"].startswith("derived event differs")
    assert diverged["expected"]["kind"] == diverged["actual"]["kind"] == "order.filled.v1"
    assert diverged["expected"]["fill_px_raw"] == fill.fill_px_raw + 1
    assert diverged["actual"]["fill_px_raw"] == fill.fill_px_raw


def _flip_byte(journal_path: Path, seq: int) -> None:
    """Flip one byte inside record ``seq``'s payload, in place (LMDB)."""
    import lmdb

    journal = open_journal(journal_path)
    segment = next(s for s in journal.segments() if s.first_seq <= seq < s.first_seq + len(s.records))
    record = segment.records[seq - segment.first_seq]
    journal.close()
    value = bytearray(segment.hash + segment.body)
    offset = value.index(record.payload, 32) + len(record.payload) // 2
    value[offset] ^= 0x01
    env = lmdb.open(str(journal_path), max_dbs=2, map_size=1 << 40)
    with env.begin(write=True) as txn:
        txn.put(segment.first_seq.to_bytes(8, "big"), bytes(value), db=env.open_db(b"segments", txn=txn))
    env.close()


def test_flipped_byte_fails_verify_and_replay_at_that_record(daily: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run(make_config(daily, tmp_path / "j"))
    journal = open_journal(tmp_path / "j")
    seq = next(seq for seq, event in journal.events() if isinstance(event, RiskVerdict)) + 3
    journal.close()
    _flip_byte(tmp_path / "j", seq)
    assert tape(["verify", str(tmp_path / "j")]) == 1
    assert f"first bad seq {seq}" in capsys.readouterr().out.replace("\n", " ")
    outcome = replay(open_journal(tmp_path / "j"), replay_builder)
    assert outcome.divergence is not None
    assert outcome.divergence.seq == seq
    assert tape(["replay", str(tmp_path / "j")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    # It printed "journal: None" / "replay : None": the journal's path and the bad record instead.
    assert f"replay diverged at seq {seq} of {tmp_path / 'j'}: journal record is corrupt" in out
    assert f"journal: {tmp_path / 'j'}, the record at seq {seq} is corrupt" in out
    assert "None" not in out
    assert tape(["replay", str(tmp_path / "j"), "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] is False and printed["divergence"]["seq"] == seq
    assert printed["divergence"]["journal_record"] == "corrupt" and printed["divergence"]["expected"] is None
    assert tape(["replay", str(tmp_path / "j"), "--csv", "-"]) == 1
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    assert row["ok"] == "False" and row["divergence_seq"] == str(seq)
    assert row["divergence_reason"] == printed["divergence"]["reason"]


def test_replay_refuses_different_data_bytes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", symbols=2, bars=120)
    run(make_config(data, tmp_path / "j"))
    make_dataset(tmp_path / "data", symbols=2, bars=120, seed=99)  # same path, other bytes
    with pytest.raises(DatasetError, match="refuses to run on different bytes"):
        replay(open_journal(tmp_path / "j"), replay_builder)


def test_backtest_never_overwrites_a_journal(daily: Path, tmp_path: Path) -> None:
    config = make_config(daily, tmp_path / "j")
    run(config)
    with pytest.raises(Exception, match="already holds"):
        run(config)


def test_a_journal_cut_short_is_refused_with_how_to_run_again(
    daily: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backtest stopped part-way (Ctrl-C, a crash, a kill) leaves an unfinished journal; the
    same command again is refused, and the refusal says so and how to run again (it only said
    "choose a new journal path")."""
    run(make_config(daily, tmp_path / "whole"))
    killed = tmp_path / "killed"
    with open_journal(tmp_path / "whole") as whole:
        records = killed_copy(tmp_path / "whole", killed, len(whole) // 2)
    config = make_config(daily, killed)
    with pytest.raises(Exception, match=f"{records} records of a run that never finished") as refused:
        run(config)
    assert f"rm -r {killed}" in str(refused.value) and "--journal" in str(refused.value)
    with open_journal(killed) as journal:
        assert len(journal) == records  # refused before a record was written


class _OutsideThePanel(Scripted):
    """A strategy whose schedule names a step the panel does not hold (the kernel refuses it)."""

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([panel.steps], dtype=np.int64)


def test_a_run_the_kernel_refuses_writes_no_record(daily: Path, tmp_path: Path) -> None:
    """A refusal of the kernel's set-up (a schedule outside the panel) comes before the run's
    first record: no journal is left (the empty one the run created is removed) and the same path
    takes the next run. The inputs were journaled first, so the refused run left a two-record
    journal that every later run on that path was refused as a run that never finished."""
    config = make_config(daily, tmp_path / "j")
    with pytest.raises(KernelError, match="schedule has steps outside the panel"):
        run_backtest(config, _OutsideThePanel({}))
    assert not (tmp_path / "j").exists()
    assert run(config).records > 2  # the path is free for the next run
