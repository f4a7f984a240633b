"""Keeping Influx small (InfluxDB 1.x): retention policies and downsampling.

``setup_retention`` makes the database's default retention policy ``raw`` (points kept
``raw_days``) and adds ``downsampled`` (kept ``keep_days``), then one continuous query that
writes, for every measurement of the raw policy, the **last** value of every field per
``every`` interval and series into the downsampled policy. Last, not mean: Tape's metrics are
cumulative counters and end-of-interval levels (NAV, fills, funnel counts), whose last value in
an interval is the value at its end. ``backfill`` runs the same query once over all time — a
continuous query only ever covers recent intervals, and a backtest's points are historical.

Everything is idempotent: an existing policy is altered to the asked duration, an existing
query replaced. InfluxDB 2.x buckets and tasks are not set up here (see docs/projections.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from projections.metrics_influx import InfluxError, InfluxV1

__all__ = ["CQ_NAME", "DOWNSAMPLED", "RAW", "RetentionPlan", "backfill", "setup_retention"]

RAW = "raw"
DOWNSAMPLED = "downsampled"
CQ_NAME = "tape_downsample"
_INTERVAL = re.compile(r"^[1-9][0-9]*(s|m|h|d)$")


@dataclass(frozen=True)
class RetentionPlan:
    raw_days: int = 30
    keep_days: int = 730
    every: str = "1h"

    def __post_init__(self) -> None:
        if self.raw_days < 1 or self.keep_days < 1:
            raise ValueError("retention: raw_days and keep_days must be at least 1")
        if not _INTERVAL.match(self.every):
            raise ValueError(f"retention: every must look like 30s, 5m, 1h or 1d, got {self.every!r}")

    def select(self, database: str, where: str = "") -> str:
        return (
            f'SELECT last(*) INTO "{database}"."{DOWNSAMPLED}".:MEASUREMENT FROM "{database}"."{RAW}"./.*/ '
            f"{where}GROUP BY time({self.every}), *"
        )


def setup_retention(influx: InfluxV1, plan: RetentionPlan) -> list[str]:
    """Create or alter the two policies and (re)create the continuous query; the statements run."""
    db = influx.database
    statements = [f'CREATE DATABASE "{db}"']
    influx.execute(statements[0])  # the policies are listed per database
    existing = {row[0] for row in _rows(influx, "SHOW RETENTION POLICIES")}
    for name, days, default in ((RAW, plan.raw_days, " DEFAULT"), (DOWNSAMPLED, plan.keep_days, "")):
        verb = "ALTER" if name in existing else "CREATE"
        policy = f'RETENTION POLICY "{name}" ON "{db}"'
        statements.append(f"{verb} {policy} DURATION {days}d REPLICATION 1{default}")
    queries = {row[0] for row in _cq_rows(influx)}
    if CQ_NAME in queries:
        statements.append(f'DROP CONTINUOUS QUERY "{CQ_NAME}" ON "{db}"')
    statements.append(f'CREATE CONTINUOUS QUERY "{CQ_NAME}" ON "{db}" BEGIN {plan.select(db)} END')
    for statement in statements[1:]:
        influx.execute(statement)
    return statements


def backfill(influx: InfluxV1, plan: RetentionPlan) -> None:
    """Downsample everything the raw policy holds now (a continuous query covers only recent
    intervals)."""
    influx.execute(plan.select(influx.database, "WHERE time >= 0 "))


def _rows(influx: InfluxV1, statement: str) -> list[list[object]]:
    series = influx.query(statement)
    return [list(values) for s in series for values in s.get("values", [])]


def _cq_rows(influx: InfluxV1) -> list[list[object]]:
    """``SHOW CONTINUOUS QUERIES`` rows of this database (one series per database)."""
    try:
        series = influx.query("SHOW CONTINUOUS QUERIES")
    except InfluxError:
        return []
    return [list(v) for s in series if s.get("name") == influx.database for v in s.get("values", [])]
