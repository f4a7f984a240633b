"""The projection runner: catch up from the checkpoint, then follow the journal as it grows.

Any projection with ``run(journal, batch_records_max) -> int`` and ``close()`` fits (the
ledgers, the Influx metrics). Every batch commits its rows and its checkpoint together, so
the runner's only recovery is "reconnect and run again": when the target goes away
(``TargetUnavailable``) it logs it, closes the connection, waits with exponential backoff,
reopens and resumes at ``checkpoint + 1``. Nothing is lost and nothing applied twice.

The journal is reopened on every poll: a read-only ``Journal`` sees the records committed
when it was opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kernel.journal import Journal, JournalError
from kernel.store import open_journal
from projections.base import TargetUnavailable

__all__ = ["Backoff", "FollowStats", "Runnable", "follow", "journal_not_there_yet"]

log = logging.getLogger("tape.projections")


class Runnable(Protocol):
    @property
    def checkpoint_seq(self) -> int: ...
    def run(self, journal: Journal, batch_records_max: int = ...) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Wait ``initial_s``, then ``factor`` times longer per failure, at most ``maximum_s``."""

    initial_s: float = 0.2
    maximum_s: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s:
            raise ValueError(f"need 0 < initial_s <= maximum_s, got {self}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")


@dataclass
class FollowStats:
    records_applied: int = 0
    polls: int = 0
    outages: int = 0  # times the target went away
    checkpoint_seq: int = -1


def _close_quietly(projection: Runnable | None) -> None:
    if projection is None:
        return
    try:
        projection.close()
    except Exception as error:  # the connection is already broken; closing is best effort
        log.debug("closing a broken projection connection: %s", error)


def follow(
    journal_path: Path | str,
    open_projection: Callable[[], Runnable],
    *,
    name: str = "ledger",
    batch_records_max: int = 10_000,
    poll_s: float = 0.5,
    backoff: Backoff = Backoff(),
    should_stop: Callable[[FollowStats], bool] = lambda stats: False,
    sleep: Callable[[float], None] = time.sleep,
) -> FollowStats:
    """Apply the journal to the projection until ``should_stop(stats)`` is true.

    ``should_stop`` is asked before every poll; with ``lambda s: True`` after one catch-up
    this is a one-shot ``run`` with retries. Errors other than ``TargetUnavailable`` (a bad
    record, a schema mismatch) are not retried: they propagate.
    """
    stats = FollowStats()
    projection: Runnable | None = None
    delay_s = backoff.initial_s
    try:
        while not should_stop(stats):
            stats.polls += 1
            try:
                if projection is None:
                    projection = open_projection()
                    log.info("%s: connected; resuming after seq %d", name, projection.checkpoint_seq)
                applied = _catch_up(journal_path, projection, batch_records_max)
                stats.records_applied += applied
                stats.checkpoint_seq = projection.checkpoint_seq
            except TargetUnavailable as error:
                stats.outages += 1
                log.warning("%s: target unavailable (%s); retrying in %.2fs", name, error, delay_s)
                _close_quietly(projection)
                projection = None
                sleep(delay_s)
                delay_s = min(delay_s * backoff.factor, backoff.maximum_s)
                continue
            delay_s = backoff.initial_s
            if applied == 0:
                sleep(poll_s)
    finally:
        _close_quietly(projection)
    return stats


def journal_not_there_yet(path: Path | str) -> bool:
    """Whether ``path`` is where a journal is still to be written (nothing there, an empty
    directory or file: a session that has not started or is creating it), so that a follower
    waits for it. Anything else that does not open as a journal (another file, a damaged
    store) never becomes one by waiting: the follower stops with the reason."""
    path = Path(path)
    if not path.exists():
        return True
    if path.is_dir():  # LMDB creates lock.mdb and data.mdb one after the other, data.mdb empty
        return all(entry.name == "lock.mdb" or _empty_file(entry) for entry in path.iterdir())
    return _empty_file(path)


def _empty_file(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == 0


def _catch_up(journal_path: Path | str, projection: Runnable, batch_records_max: int) -> int:
    try:
        journal = open_journal(journal_path)
    except JournalError as error:
        if not journal_not_there_yet(journal_path):
            raise  # not a journal, or a damaged one: polling it again cannot mend it
        log.debug("journal not there yet: %s", error)
        return 0
    with journal:
        return projection.run(journal, batch_records_max)
