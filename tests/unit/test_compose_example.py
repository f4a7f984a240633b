"""infra/compose's instructions keep every password off the command line: the tape verbs take a
``postgresql://`` URL without one (libpq reads ``$PGPASSWORD`` or ``~/.pgpass``), as
``grant-readonly`` always did; ``rebuild`` was shown with ``postgres:...@`` in its URL."""

from __future__ import annotations

import re
from pathlib import Path

COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "compose" / "docker-compose.yml"


def test_the_compose_instructions_put_no_password_on_a_command_line() -> None:
    commands = [line.lstrip("# ").strip() for line in COMPOSE.read_text().splitlines() if "tape " in line]
    with_db = [command for command in commands if "--db postgresql://" in command]
    assert len(with_db) >= 3  # grant-readonly, rebuild, follow
    for command in with_db:
        url = re.search(r"--db (\S+)", command)
        assert url is not None and "@" in url.group(1)
        assert ":" not in url.group(1).split("://", 1)[1].split("@", 1)[0], command  # no user:password@
    assert 'export PGPASSWORD="$POSTGRES_PASSWORD"' in COMPOSE.read_text()
