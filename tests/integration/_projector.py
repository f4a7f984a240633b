"""Crash-test projector: applies a journal to a ledger in small batches until done or killed.

Run as ``python tests/integration/_projector.py JOURNAL TARGET SCHEMA BATCH`` with the repo
root on ``PYTHONPATH``. Prints ``ready <checkpoint>`` once connected, then the checkpoint
after every committed batch, then ``done``.
"""

from __future__ import annotations

import sys

from kernel.store import open_journal
from projections import open_ledger


def main(journal_path: str, target: str, schema: str, batch_records_max: int) -> None:
    with open_ledger(target, schema=schema) as ledger, open_journal(journal_path) as journal:
        print(f"ready {ledger.checkpoint_seq}", flush=True)
        ledger.run(journal, batch_records_max, progress=lambda seq: print(seq - 1, flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
