"""Whether a journal holds a finished run: its last committed record is ``run.finished.v1``.

A run killed part-way leaves a journal that ends at its last commit (a whole segment; the
records appended after it are lost) without that record: an *unfinished* run. Its prefix is
still sound, verifies and replays; every verb says it is unfinished.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.journal import Journal

__all__ = ["RUN_FINISHED_KIND", "RunStatus", "run_status"]

RUN_FINISHED_KIND = "run.finished.v1"


@dataclass(frozen=True)
class RunStatus:
    records: int
    finished: bool
    last_kind: str | None  # kind of the last committed record; None for an empty journal

    def describe(self) -> str:
        """One line for an unfinished run (empty for a finished one)."""
        if self.finished:
            return ""
        if self.records == 0:
            return "unfinished run: the journal is empty (a run stopped before its first commit)"
        return (
            f"unfinished run: the journal ends at seq {self.records - 1} ({self.last_kind}) without "
            f"{RUN_FINISHED_KIND}; the run was stopped before its end"
        )


def run_status(journal: Journal) -> RunStatus:
    """The journal's run status, from its last committed record (read, not verified)."""
    records = len(journal)
    if records == 0:
        return RunStatus(0, False, None)
    last_kind = journal.record(records - 1).kind
    return RunStatus(records, last_kind == RUN_FINISHED_KIND, last_kind)
