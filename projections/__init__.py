"""Journal consumers with checkpoints. The ledger projection writes plain SQL tables (SQLite
by default, PostgreSQL for a ``postgresql://`` target) that can be rebuilt from the journal at
any time; ``audit`` checks that the live tables still equal a fresh rebuild."""

from projections.base import (
    DEFAULT_SCHEMA,
    LedgerNotFound,
    LedgerProjection,
    LedgerRebuild,
    TargetRefused,
    TargetUnavailable,
    check_identifier,
    describe_target,
    open_ledger,
    rebuild_ledger,
    refuse_foreign_target,
    require_built_ledger,
)
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
    "DEFAULT_SCHEMA",
    "LEDGER_SCHEMA_VERSION",
    "PROJECTION_NAME",
    "IllegalOrderTransition",
    "LedgerNotFound",
    "LedgerProjection",
    "LedgerRebuild",
    "ProjectionError",
    "RebuildReport",
    "SchemaMismatch",
    "SqliteLedger",
    "TargetRefused",
    "TargetUnavailable",
    "UnbalancedPosting",
    "check_identifier",
    "ddl_scripts",
    "describe_target",
    "open_ledger",
    "rebuild",
    "rebuild_ledger",
    "refuse_foreign_target",
    "require_built_ledger",
]
