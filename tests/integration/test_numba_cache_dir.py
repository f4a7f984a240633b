"""`tape` picks a writable per-user Numba cache directory itself (issue 17, item 4): with no
NUMBA_CACHE_DIR set, Numba no longer writes beside the installed sources, which fails every
command at import where those are read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import numba_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def test_a_command_without_numba_cache_dir_caches_under_the_users_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    code = "import cli.main, os; print(os.environ['NUMBA_CACHE_DIR'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    chosen = Path(result.stdout.strip())
    assert chosen == tmp_path / ".cache" / "tape" / "numba"
    assert any(chosen.iterdir())  # Numba's cache index files went there, not into __pycache__


def test_an_unusable_cache_home_falls_back_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # mkdir under a file fails
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    chosen = numba_cache_dir()
    assert chosen is not None
    assert chosen.parent == tmp_path / "tmp"
    assert chosen.name.startswith("tape-numba-")


def test_a_set_numba_cache_dir_is_kept(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "mine"), "PYTHONPATH": str(ROOT)}
    code = "import cli, os; print(os.environ['NUMBA_CACHE_DIR'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.stdout.strip() == str(tmp_path / "mine")
