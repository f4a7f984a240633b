"""Composition root: configuration, wiring and the ``tape`` verbs.

Importing the package picks Numba's cache directory before anything imports Numba: without
``NUMBA_CACHE_DIR`` Numba writes next to the installed sources (``__pycache__``) and every
command fails at import where those are not writable ("cannot cache function ...: no locator
available"). The choice is the process's environment, read here at the edge, never in the
kernel or domain.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["numba_cache_dir"]


def numba_cache_dir() -> Path | None:
    """A writable per-user cache directory: $XDG_CACHE_HOME/tape/numba (~/.cache/...), else
    one in the temporary directory; None when neither can be made."""
    candidates = []
    try:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        candidates.append(Path(base) / "tape" / "numba")
    except RuntimeError:  # no home directory
        pass
    user = getattr(os, "getuid", lambda: "user")()
    candidates.append(Path(tempfile.gettempdir()) / f"tape-numba-{user}")
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return None


if not os.environ.get("NUMBA_CACHE_DIR"):
    _chosen = numba_cache_dir()
    if _chosen is not None:
        os.environ["NUMBA_CACHE_DIR"] = str(_chosen)
