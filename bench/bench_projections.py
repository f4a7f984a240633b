"""Ledger rebuild throughput vs the raw insert rate of the same rows, SQLite and PostgreSQL.

    .venv/bin/python bench/bench_projections.py [--events 1000000] [--postgres URL]

Builds a journal of ``--events`` records (order round trips: submit, accept, fill, ledger
posting; a day close every 1,000 orders), then for each database:

* rebuild: reset + replay from seq 0 (decode, fold, checks, writes, checkpoints), without
  the checksum pass that ``rebuild_ledger`` adds (checked after timing: both databases agree);
* raw: the rows that rebuild produced, read back and written into an empty copy of the same
  schema in one transaction with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL) alone.

and prints events/s and the ratio rebuild/raw (target >= 0.5; PostgreSQL rebuild < 60 s).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from domain.events import (
    DayClosed,
    InstrumentsDefined,
    LedgerPosted,
    OrderAccepted,
    OrderFilled,
    OrderSubmitted,
)
from domain.instruments import Instrument
from domain.ledger import Position, capital_postings, fill_postings
from kernel.store import open_journal
from projections import open_ledger

T0_NS = 1_704_204_000 * 10**9
INSTRUMENTS = 50


def write_journal(path: Path, events_wanted: int) -> int:
    instruments = [
        Instrument(
            instrument_id=i,
            symbol=f"S{i:03d}",
            venue="XNAS",
            asset_class="equity",
            currency="USD",
            price_digits=2,
            tick_raw=1,
            qty_digits=0,
            lot_raw=1,
        )
        for i in range(1, INSTRUMENTS + 1)
    ]
    positions: dict[int, Position] = {}
    with open_journal(path, writable=True, records_per_commit_max=4096) as journal:
        journal.append(InstrumentsDefined(ts_ns=T0_NS, instruments=instruments))
        journal.append(
            LedgerPosted(ts_ns=T0_NS, txn_id="T0", memo="capital", postings=capital_postings(10**12, "USD"))
        )
        n = 0
        while journal.next_seq < events_wanted:
            ts_ns = T0_NS + n * 10**9
            iid = 1 + n % INSTRUMENTS
            side = 1 if (n // INSTRUMENTS) % 2 == 0 else -1
            qty, px = 10 + n % 7, 100_00 + n % 97
            order_id = f"o-{n:08d}"
            journal.append(
                OrderSubmitted(
                    ts_ns=ts_ns,
                    order_id=order_id,
                    strategy_id="bench",
                    instrument_id=iid,
                    side=side,
                    order_type="market",
                    qty_raw=qty,
                    limit_px_raw=0,
                    decision_px_raw=px,
                )
            )
            journal.append(OrderAccepted(ts_ns=ts_ns, order_id=order_id))
            fill = OrderFilled(
                ts_ns=ts_ns,
                order_id=order_id,
                instrument_id=iid,
                side=side,
                fill_qty_raw=qty,
                fill_px_raw=px,
                leaves_qty_raw=0,
                notional_minor=qty * px,
                commission_minor=100,
                currency="USD",
            )
            journal.append(fill)
            postings, positions[iid] = fill_postings(positions.get(iid, Position()), fill)
            journal.append(LedgerPosted(ts_ns=ts_ns, txn_id=f"T{n + 1}", memo="fill", postings=postings))
            if n % 1000 == 999:
                journal.append(
                    DayClosed(
                        ts_ns=ts_ns,
                        day=20_000_000 + n // 1000,
                        step=n,
                        nav_minor=10**12,
                        cash_minor=10**12,
                        gross_exposure_minor=0,
                        currency="USD",
                    )
                )
            n += 1
        return journal.next_seq


def _timed(function: object, *args: object, **kwargs: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start, result


def rebuild_only(journal_path: Path, target: Path | str, schema: str = "tape_ledger") -> int:
    """``rebuild_ledger`` without its final checksum pass (the raw baseline has none)."""
    with (
        open_journal(journal_path) as journal,
        open_ledger(target, schema=schema, check_schema=False) as ledger,
    ):
        ledger.reset()
        return ledger.run(journal)


def _tables(ledger: object) -> dict[str, list[tuple[object, ...]]]:
    names = [n for n in ledger.table_checksums() if n not in ("schema_version", "checkpoint")]  # type: ignore[attr-defined]
    return {name: list(ledger.ordered_rows(name)) for name in names}  # type: ignore[attr-defined]


def raw_sqlite(path: Path, tables: dict[str, list[tuple[object, ...]]]) -> float:
    with open_ledger(path):
        pass  # creates the empty schema
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    db.execute("BEGIN")
    for name, rows in tables.items():
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def raw_postgres(url: str, schema: str, tables: dict[str, list[tuple[object, ...]]]) -> float:
    import psycopg

    from projections.ledger_postgres import drop_schema

    drop_schema(url, schema)
    with open_ledger(url, schema=schema):
        pass
    with psycopg.connect(url) as connection:
        connection.execute(f'SET search_path TO "{schema}"')  # type: ignore[arg-type]
        start = time.perf_counter()
        with connection.cursor() as cursor:
            for name, rows in tables.items():
                with cursor.copy(f"COPY {name} FROM STDIN") as copy:  # type: ignore[arg-type]
                    for row in rows:
                        copy.write_row(row)
        connection.commit()
        elapsed = time.perf_counter() - start
    drop_schema(url, schema)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tape-bench-"))
    try:
        build_s, events = _timed(write_journal, root / "journal", args.events)
        print(f"journal: {events:,} events written in {build_s:.1f}s")
        rebuild_s, _ = _timed(rebuild_only, root / "journal", root / "ledger.sqlite")
        with open_ledger(root / "ledger.sqlite") as ledger:
            checksums = ledger.table_checksums()
            tables = _tables(ledger)
        rows = sum(map(len, tables.values()))
        raw_s = raw_sqlite(root / "raw.sqlite", tables)
        print(
            f"sqlite   rebuild {rebuild_s:6.1f}s {events / rebuild_s:>10,.0f} events/s | raw executemany "
            f"{raw_s:6.1f}s ({rows:,} rows) {events / raw_s:>10,.0f} events/s | ratio {raw_s / rebuild_s:.2f}"
        )
        if args.postgres:
            from projections.ledger_postgres import drop_schema

            rebuild_s, _ = _timed(rebuild_only, root / "journal", args.postgres, schema="bench_rebuild")
            with open_ledger(args.postgres, schema="bench_rebuild") as ledger:
                assert ledger.table_checksums() == checksums, "PostgreSQL and SQLite checksums differ"
            drop_schema(args.postgres, "bench_rebuild")
            raw_s = raw_postgres(args.postgres, "bench_raw", tables)
            print(
                f"postgres rebuild {rebuild_s:6.1f}s {events / rebuild_s:>10,.0f} events/s | raw COPY       "
                f"{raw_s:6.1f}s ({rows:,} rows) {events / raw_s:>10,.0f} events/s "
                f"| ratio {raw_s / rebuild_s:.2f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
