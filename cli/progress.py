"""Rich progress bars for long work (the kernel only sees a callback), the results console, and
``write_out`` for a verb's ``--json PATH`` / ``--csv PATH`` (``-``: stdout)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()  # results


def plural(count: int, noun: str) -> str:
    """``1 backtest``, ``2 backtests``: a count and its noun (plural by an ``s``)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def write_out(path: str, text: str) -> None:
    """``text`` to the file ``path`` (its folder made), or to stdout where ``path`` is ``-``."""
    if path == "-":
        sys.stdout.write(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


_progress_console = Console(stderr=True)  # progress bars: on stderr, so piped results stay clean


def notice(text: str) -> None:
    """A one-line notice on stderr, beside the progress bars (results stay alone on stdout)."""
    _progress_console.print(f"[yellow]notice[/]: {text}", soft_wrap=True, highlight=False)


@contextmanager
def progress_bar(description: str, total: int, *, complete: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``update(done)`` (or ``update(done, total)`` where the total is learnt on the way);
    the bar redraws at most ~10 times a second. It is drawn from the first update on: work
    refused before it starts prints its one error line with no bar above it. ``complete``: the
    bar is shown full when the block ends without an exception; False leaves it at the last
    update (work that may end part-way without one: a paper session stopped by a signal)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_progress_console,
        transient=False,
    )
    task = progress.add_task(description, total=total)

    def update(done: int, new_total: int | None = None) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=new_total)

    try:
        yield update
        if complete and progress.live.is_started:
            progress.update(task, completed=progress.tasks[0].total)
    finally:
        if progress.live.is_started:
            progress.stop()
