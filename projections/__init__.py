"""Journal consumers with checkpoints. The ledger projection writes plain SQL tables
(SQLite by default) that can be rebuilt from the journal at any time."""

from projections.ledger_sqlite import (
    LEDGER_SCHEMA_VERSION,
    PROJECTION_NAME,
    IllegalOrderTransition,
    ProjectionError,
    RebuildReport,
    SchemaMismatch,
    SqliteLedger,
    UnbalancedPosting,
    ddl_scripts,
    rebuild,
)

__all__ = [
    "LEDGER_SCHEMA_VERSION",
    "PROJECTION_NAME",
    "IllegalOrderTransition",
    "ProjectionError",
    "RebuildReport",
    "SchemaMismatch",
    "SqliteLedger",
    "UnbalancedPosting",
    "ddl_scripts",
    "rebuild",
]
