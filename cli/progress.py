"""Rich progress bars for long work (the kernel only sees a callback)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
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

console = Console()  # results (on stdout, as it is when printing: ``results_on_stderr``)


def plural(count: int, noun: str) -> str:
    """``1 backtest``, ``2 backtests``: a count and its noun (plural by an ``s``)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


_progress_console = Console(stderr=True)  # progress bars: on stderr, so piped results stay clean


def notice(text: str) -> None:
    """A one-line notice on stderr, beside the progress bars (results stay alone on stdout)."""
    _progress_console.print(f"[yellow]notice[/]: {text}", soft_wrap=True, highlight=False)


def write_output(path: str, text: str, *, option: str) -> None:
    """``text`` for ``--json PATH`` / ``--csv PATH``: to stdout for ``-``, else to the file (its
    folder made). The option's type (``cli.arguments.output_file``) refused an empty path and
    one that cannot be written before the verb ran; one that became unwritable since is still
    refused here naming the option (exit 2), not an ``Errno``; ``-`` never becomes a file
    called ``-``."""
    from cli.wiring import ConfigError  # here: the progress bars need none of the wiring

    if path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as error:
        raise ConfigError(f"{option} {path}: cannot write it ({error.strerror or error})") from None


def one_stdout(**outputs: str | bool | None) -> bool:
    """The verb's outputs by option name (``json=args.json, csv=args.csv``): True when one goes
    to stdout (``-``, or a flag that prints, as ``tape ingest --json``), so the tables step
    aside. Two on stdout would run together in one stream: refused naming them (exit 2),
    called before any work so nothing is done for output that cannot be given."""
    from cli.wiring import ConfigError

    on_stdout = [
        f"--{name.replace('_', '-')}" + (" -" if value == "-" else "")
        for name, value in outputs.items()
        if value is True or value == "-"
    ]
    if len(on_stdout) > 1:
        listed = ", ".join(on_stdout[:-1]) + f" and {on_stdout[-1]}"
        both, other = ("both", "the other") if len(on_stdout) == 2 else ("all", "the others")
        where = "where only one output can go"
        raise ConfigError(f"{listed} {both} write to stdout, {where}: give {other} a file")
    return bool(on_stdout)


def not_stdout(path: str | None, *, option: str, holds: str) -> None:
    """An output that cannot go to stdout (a folder of files; a parquet file read back by
    path): ``-`` refused naming the option and why (exit 2), called before any work. The
    folder types pass ``-`` on (``cli.arguments``), and it became a file or a folder named
    ``-`` in the current directory."""
    from cli.wiring import ConfigError

    if path == "-":
        raise ConfigError(f"{option} takes {holds}, so it cannot be '-' (stdout); ./- names one called '-'")


@contextmanager
def results_on_stderr(active: bool) -> Iterator[None]:
    """While ``active`` (an output goes to stdout: ``--json -``), what ``console`` prints goes to
    stderr, so stdout carries the data alone (``| jq``); the data is written after the block."""
    if not active:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


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
