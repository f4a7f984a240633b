"""Crash drill for ``tape backtest`` (issue 17's crash goal): SIGKILL a real backtest process at
seeded random moments and check that nothing it had committed is lost or changed.

One reference run (not killed) gives the whole journal. Each trial starts the same backtest into
a fresh journal while this process watches it through its own read-only opens: the longest
journal it sees before the kill is what the backtest had *committed* then (a reader sees only
committed transactions). After a seeded random delay the writer is SIGKILLed, and the drill
checks that

* the killed journal holds at least those records (nothing committed was lost);
* it verifies clean (``Journal.verify``: hash chain and per-record checksums, no tail repair);
* each of its records is byte for byte the reference run's record at the same seq (a prefix of
  the run: no record changed, none torn);
* ``tape verify`` exits 3 (an unfinished run) or 0 (killed after its last commit), never 1;
* every ``--replay-every``-th trial, ``tape replay`` re-derives it (exit 3 or 0).

Run: ``nice .venv/bin/python bench/drill_backtest_kills.py [--minutes 20] [--seed 17]``; a line
per trial, then a summary; exits 1 if any check fails. The run is a minute-bar SMA backtest large
enough for several commits (a backtest commits every 4,096 records), so kills land before the
first commit, between commits, during one, and after the last.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from kernel.journal import JournalError  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from lake.synth import synth_dataset  # noqa: E402

CONFIG = """run_id = "backtest-kill-drill"
seed = 11
dataset = "{data}"
journal = "{journal}"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = {{ fast = 5, slow = 30, weight = 0.9 }}
"""
EXIT_OK, EXIT_DAMAGED, EXIT_REFUSED, EXIT_UNFINISHED = 0, 1, 2, 3


def _length(path: Path) -> int:
    """Records committed in the journal at ``path`` as an independent reader sees them (0: none
    yet, or the writer is still creating it)."""
    if not (path / "data.mdb").exists():
        return 0
    try:
        with open_journal(path) as journal:
            return len(journal)
    except JournalError:
        return 0


def _tape(*args: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, env=env, check=False, timeout=600
    )
    return done.returncode


def _backtest(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cli.main", "backtest", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _reference(config: Path, journal: Path) -> tuple[list[bytes], float, float]:
    """The whole run's record payloads, when its journal appeared and how long the run took."""
    started = time.monotonic()
    process = _backtest(config)
    appeared = 0.0
    while process.poll() is None:
        if not appeared and (journal / "data.mdb").exists():
            appeared = time.monotonic() - started
        time.sleep(0.01)
    if process.returncode != EXIT_OK:
        raise SystemExit(f"the reference backtest failed (exit {process.returncode})")
    with open_journal(journal) as store:
        whole = [record.payload for record in store.records()]
    return whole, appeared, time.monotonic() - started


def _kill(config: Path, journal: Path, delay_s: float) -> int:
    """Start the backtest, watch what it commits, SIGKILL it after ``delay_s``; returns the most
    records a reader saw committed before the kill."""
    process = _backtest(config)
    kill_at = time.monotonic() + delay_s
    seen = 0
    while time.monotonic() < kill_at and process.poll() is None:
        seen = max(seen, _length(journal))
        time.sleep(0.01)
    process.kill()
    process.wait()
    return seen


def _check(journal: Path, whole: list[bytes], seen: int, replay: bool) -> tuple[int, str, list[str]]:
    """(records kept, what the verbs said, problems) of a killed run's journal."""
    problems: list[str] = []
    with open_journal(journal) as store:
        kept = len(store)
        result = store.verify()
        payloads = [record.payload for record in store.records()]
        if store.tail_repair is not None:
            problems.append(f"tail repaired: {store.tail_repair}")
    if kept < seen:
        problems.append(f"LOST committed records: a reader saw {seen:,} committed, {kept:,} kept")
    if not result.ok:
        problems.append(f"verify: {result}")
    if payloads != whole[:kept]:
        first = next(i for i, (a, b) in enumerate(zip(payloads, whole, strict=False)) if a != b)
        problems.append(f"record {first} differs from the reference run")
    status = _tape("verify", str(journal))
    said = f"verify exit {status}"
    if status not in (EXIT_OK, EXIT_UNFINISHED):
        problems.append(f"tape verify exit {status}")
    if replay:
        replay_status = _tape("replay", str(journal))
        said += f", replay exit {replay_status}"
        if replay_status not in (EXIT_OK, EXIT_UNFINISHED):
            problems.append(f"tape replay exit {replay_status}")
    return kept, said, problems


def _half_made(journal: Path, config: Path, seen: int, error: str) -> tuple[str, list[str]]:
    """A kill while the backtest created its journal (an LMDB environment with no Tape journal
    in it): nothing can have been committed; ``tape verify`` must refuse it in one line (exit 2),
    and what a rerun of the backtest into it answers is reported."""
    problems = [f"LOST committed records: a reader saw {seen:,}"] if seen else []
    status = _tape("verify", str(journal))
    if status != EXIT_REFUSED:
        problems.append(f"tape verify exit {status} ({error})")
    rerun = _tape("backtest", str(config))
    return f"verify exit {status}, a rerun of the backtest into it exit {rerun}", problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="stop starting trials after this")
    parser.add_argument("--trials", type=int, default=100_000, help="at most this many trials")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--bars", type=int, default=40_000, help="minute bars per symbol")
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--replay-every", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # the drill's own schedule: seeded, printed per trial
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tape-backtest-kills-") as tmp:
        root = Path(tmp)
        data = root / "data"
        synth_dataset(
            data, seed=args.seed, symbols=args.symbols, bars=args.bars, frequency="1m",
            calendar="24x7", start="2021-01-04",
        )  # fmt: skip
        journal = root / "journal"  # every trial the same config, so the same records
        config = root / "run.toml"
        config.write_text(CONFIG.format(data=data, journal=journal))
        whole, appeared_s, run_s = _reference(config, journal)
        shutil.rmtree(journal)
        low, high = max(0.0, appeared_s - 0.3), run_s * 1.05
        print(
            f"reference run: {len(whole):,} records in {run_s:.1f} s (journal from {appeared_s:.1f} s); "
            f"kills drawn in {low:.1f}..{high:.1f} s; load {os.getloadavg()[0]:.2f}"
        )
        deadline = time.monotonic() + args.minutes * 60
        failures: list[str] = []
        outcomes = {
            "before the journal": 0,
            "while creating the journal": 0,
            "nothing committed": 0,
            "unfinished": 0,
            "finished": 0,
        }
        trials = replays = 0
        while trials < args.trials and time.monotonic() < deadline:
            trials += 1
            delay_s = rng.uniform(low, high)
            seen = _kill(config, journal, delay_s)
            if not (journal / "data.mdb").exists():
                outcomes["before the journal"] += 1
                print(f"trial {trials:4d}: killed at {delay_s:5.2f} s, before the journal existed")
                continue
            try:
                open_journal(journal).close()
            except JournalError as error:  # killed while it created the journal: no Tape journal yet
                outcomes["while creating the journal"] += 1
                said, problems = _half_made(journal, config, seen, str(error))
                print(f"trial {trials:4d}: killed at {delay_s:5.2f} s while it created the journal; {said}")
                if problems:
                    failures.append(f"trial {trials} (seed {args.seed}): " + "; ".join(problems))
                shutil.rmtree(journal, ignore_errors=True)
                continue
            replay = trials % args.replay_every == 0
            replays += replay
            kept, said, problems = _check(journal, whole, seen, replay)
            kind = "finished" if kept == len(whole) else "unfinished" if kept else "nothing committed"
            outcomes[kind] += 1
            print(
                f"trial {trials:4d}: killed at {delay_s:5.2f} s; {kept:7,} of {len(whole):,} records kept, "
                f"{seen:7,} seen committed; {said}" + (" FAILED: " + "; ".join(problems) if problems else ""),
                flush=True,
            )
            if problems:
                failures.append(f"trial {trials} (seed {args.seed}): " + "; ".join(problems))
            shutil.rmtree(journal)
        print(
            f"{trials} trials in {(time.perf_counter() - started) / 60:.1f} min: "
            + ", ".join(f"{n} {what}" for what, n in outcomes.items())
            + f"; {replays} replayed; {len(failures)} failed; load {os.getloadavg()[0]:.2f}"
        )
        for failure in failures:
            print(failure)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
