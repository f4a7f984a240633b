"""The ``tape`` program's first lines: a signal while the verbs' modules are still importing.

Importing ``cli.main`` loads the whole system (Numba, Polars, the kernel) and takes about a
second; ``cli.main`` installs its own signal handling only once it runs. Without this, a Ctrl-C
in that second printed a ``KeyboardInterrupt`` traceback and the process died by SIGINT. Here a
SIGINT or SIGTERM before then prints one line and exits 130 / 143: nothing had been done.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["entry"]


def _starting(signum: int, frame: FrameType | None) -> None:
    what = "interrupted" if signum == signal.SIGINT else "terminated"
    sys.stdout.write(f"{what}: tape was still starting; nothing was done\n")
    sys.stdout.flush()
    os._exit(128 + signum)


def entry() -> None:
    """``[project.scripts] tape``: the start-up signal handlers, then ``cli.main.entry``."""
    previous = {signum: signal.signal(signum, _starting) for signum in (signal.SIGINT, signal.SIGTERM)}
    from cli.main import entry as run  # the whole system: about a second

    for signum, handler in previous.items():  # cli.main decides from these
        signal.signal(signum, handler)
    run()
