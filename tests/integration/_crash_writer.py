"""Crash-test writer: appends a deterministic event stream until it is killed.

Run as ``python tests/integration/_crash_writer.py PATH BACKEND SEED`` with the repo root
on ``PYTHONPATH``. Prints ``ready <next_seq>`` once the journal is open, then after every
``commit()`` returns prints the last committed seq (flushed), so the parent knows what
the journal promised to keep. Event ``i`` is ``event_for(i)`` so the parent can check
every surviving record's content.
"""

from __future__ import annotations

import random
import sys

from domain.events import DayClosed, Event, OrderAccepted, OrderFilled
from kernel.store import open_journal

RECORDS_PER_COMMIT_MAX_CHOICES = (7, 64, 4096)
COMMIT_SIZE_MAX = 200


def event_for(i: int) -> Event:
    """Event ``i`` of the stream; payload sizes vary with ``i``."""
    ts_ns = 1_700_000_000_000_000_000 + i * 1_000
    match i % 3:
        case 0:
            return OrderAccepted(ts_ns=ts_ns, order_id=f"o-{i}-" + "x" * (i % 41))
        case 1:
            return OrderFilled(
                ts_ns=ts_ns,
                order_id=f"o-{i}",
                instrument_id=i % 13,
                side=1 if i % 2 else -1,
                fill_qty_raw=i * 100,
                fill_px_raw=10_000 + i % 977,
                leaves_qty_raw=i % 5,
                notional_minor=i * 100 * (10_000 + i % 977),
                commission_minor=i % 17,
                currency="CNY",
            )
        case _:
            return DayClosed(
                ts_ns=ts_ns,
                day=20240101 + i % 28,
                step=i,
                nav_minor=10**9 + i,
                cash_minor=10**8 - i,
                gross_exposure_minor=i * 7,
                currency="USD",
            )


def main(path: str, backend: str, seed: int) -> None:
    rng = random.Random(seed)  # test harness: seeded commit sizes
    records_per_commit_max = rng.choice(RECORDS_PER_COMMIT_MAX_CHOICES)
    journal = open_journal(
        path, backend=backend, writable=True, records_per_commit_max=records_per_commit_max
    )
    seq = journal.next_seq
    print(f"ready {seq}", flush=True)
    while True:
        for _ in range(rng.randint(1, COMMIT_SIZE_MAX)):
            seq = journal.append(event_for(seq)) + 1
        journal.commit()
        print(seq - 1, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
