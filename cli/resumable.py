"""Carrying a stopped research job on (``tape sweep``, ``tape walkforward`` and ``tape
montecarlo --perturb`` with ``--resume``): the runs its experiments table recorded stay, the
rest run.

A recorded run is kept only if it is the run its place in the job would be now — the same
configuration (the TOML, its grid and the output folder, which fixes the journal paths), data
set (content hash), engine version and journals kept or not; anything else makes a different
job, refused with the reason. A journal a stopped run left cut short is removed so the run can
write it again.
"""

from __future__ import annotations

import shlex
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.progress import console
from cli.wiring import ConfigError
from sim.backtest import ENGINE_VERSION, BacktestConfig
from sim.experiments import Experiment, ExperimentStore

__all__ = [
    "experiments_table",
    "left_clean_on_error",
    "note_other_code",
    "recorded_runs",
    "resume_command",
    "said_where",
]


def experiments_table(out: Path, resume: bool, what: str) -> Path:
    """The job's experiments table in ``out``: one already there is carried on only with
    ``resume``; ``resume`` without one is refused."""
    db = out / "experiments.sqlite"
    if db.exists() and not resume:
        raise ConfigError(
            f"{out} already holds a {what}; --resume runs what it has not recorded, or choose another "
            "--out or remove it"
        )
    if resume and not db.exists():
        raise ConfigError(f"{out} holds no {what} to resume (no experiments.sqlite); run it without --resume")
    return db


@contextmanager
def left_clean_on_error(out: Path, resume: bool) -> Iterator[None]:
    """A job started afresh (not ``resume``) that fails before it records a run (an error, not a
    stop: a run refused as it starts, exit 2) leaves nothing behind: not its experiments table,
    which held only the job's plan, so the same command run again once the TOML was fixed was
    refused ("already holds a sweep") and ``tape runs`` called it stopped; nor the folders it
    made. A job with a run recorded keeps it (``--resume``); a stop keeps the plan (its line
    says how to carry it on)."""
    made = [folder for folder in (out, out / "journals") if not folder.exists()]
    db = out / "experiments.sqlite"
    try:
        yield
    except Exception:
        if not resume and db.is_file() and not _holds_runs(db):
            for item in (db, *(db.with_name(db.name + tail) for tail in ("-wal", "-shm", "-journal"))):
                item.unlink(missing_ok=True)
            for folder in reversed(made):  # the journals a failed run began, then OUT if now empty
                if folder == out:
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
                else:
                    shutil.rmtree(folder, ignore_errors=True)
        raise


def _holds_runs(db: Path) -> bool:
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] > 0
        except sqlite3.DatabaseError:  # not a table this job wrote: left alone
            return True


def recorded_runs(
    store: ExperimentStore,
    job_id: str,
    expected: dict[str, BacktestConfig],
    hashes: dict[str, str],
    keep: bool,
    *,
    ignore: Callable[[Experiment], bool] = lambda _: False,
    changed: str = "the TOML, its grid or --out changed",
) -> dict[str, Experiment]:
    """The recorded runs by run id, each checked against ``expected`` (run id -> the run's
    configuration now) and ``hashes`` (data set -> content hash now); runs ``ignore`` names
    (ones the job runs again anyway) are left out unchecked. ``changed`` says what a job's
    command may have changed to give a run another configuration."""
    done: dict[str, Experiment] = {}
    for e in store.all():
        if e.sweep_id != job_id:
            raise ConfigError(f"{store.path} holds {e.sweep_id!r}, not {job_id!r}")
        if ignore(e):
            continue
        config = expected.get(e.run_id)
        if config is None or config.canonical_json() != e.config_json:
            raise ConfigError(
                f"{store.path}: run {e.run_id} was recorded with another configuration than it has now "
                f"({changed}): a changed job needs a new --out"
            )
        if e.dataset_hash != hashes[config.dataset]:
            raise ConfigError(
                f"the data set {config.dataset} changed since run {e.run_id} read it (content hash "
                f"{hashes[config.dataset][:16]}..., then {e.dataset_hash[:16]}...): a new --out runs it anew"
            )
        if e.engine_version != ENGINE_VERSION:
            raise ConfigError(f"run {e.run_id} was recorded by {e.engine_version}; this is {ENGINE_VERSION}")
        if bool(e.journal) != keep:
            raise ConfigError(
                f"run {e.run_id} {'kept' if e.journal else 'did not keep'} its journal; keep_journals is "
                f"{str(keep).lower()} now: a changed job needs a new --out"
            )
        done[e.run_id] = e
    return done


def resume_command(*words: object) -> str:
    """The command that carries a stopped job on, as a shell reads it: a path with a space or a
    quote in it is quoted (``tape sweep 'my sweeps/a.toml' --out ... --resume``)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def note_other_code(recorded: Iterable[Experiment], code: str) -> None:
    """Say so when recorded runs came from another code version (each row keeps its own)."""
    others = Counter(e.code_version for e in recorded if e.code_version != code)
    for other, count in sorted(others.items()):
        console.print(f"note: {count:,} recorded run(s) came from {other}; the rest run on {code}")


@contextmanager
def said_where(recorded: Callable[[], int], total: int, command: str) -> Iterator[None]:
    """On a stop (not an error): one line saying how many of ``total`` runs are recorded and the
    ``command`` that runs the rest; then the stop goes on to ``cli.main`` (its
    ``interrupted:`` / ``terminated:`` line and exit status)."""
    try:
        yield
    except Exception:
        raise
    except BaseException:
        # One line however wide the terminal: the command is copied whole (no newline inside).
        console.print(f"{recorded():,} of {total:,} runs recorded; `{command}` runs the rest", soft_wrap=True)
        raise
