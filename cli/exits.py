"""Exit statuses of every ``tape`` verb (docs/runbook.md, "Exit statuses")."""

from __future__ import annotations

from cli.progress import console
from kernel.journal import Journal
from kernel.run_status import run_status

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TERMINATED",
    "EXIT_UNFINISHED",
    "EXIT_VENUE",
    "Stopped",
    "unfinished_status",
]

EXIT_OK = 0
EXIT_DAMAGED = 1  # the journal is damaged (a bad record or store) or a replay diverged
EXIT_REFUSED = 2  # bad arguments, configuration, data or a path that is not a journal
EXIT_UNFINISHED = 3  # a sound journal of a run that never finished (no run.finished.v1)
EXIT_VENUE = 4  # tape paper / live: the venue could not be reached or refused (--resume carries on)
EXIT_INTERNAL = 70  # a bug: an unexpected exception (TAPE_TRACEBACK=1 shows its traceback)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): stopped, what was committed stays
EXIT_TERMINATED = 143  # SIGTERM: stopped as a Ctrl-C is


class Stopped(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM (``kill``, systemd, a scheduler's timeout) while a verb runs:
    it stops where it is, what was committed stays, and the verb says so in one line (exit 130
    or 143; ``cli.main``). Not a ``KeyboardInterrupt``: CPython remembers one that passed through
    some of its own frames and, at exit, kills the process with SIGINT although the verb caught
    it. A verb that handles the signals itself to stop at a clean point (``alerts follow``,
    ``scheduler``: ``cli.scheduler.stop_on_signals``) raises it once stopped there."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def unfinished_status(journal: Journal) -> int:
    """EXIT_UNFINISHED, with one line saying so, for a journal of a run that never finished."""
    status = run_status(journal)
    if status.finished:
        return EXIT_OK
    console.print(f"[yellow]{status.describe()}[/]", soft_wrap=True)
    return EXIT_UNFINISHED
