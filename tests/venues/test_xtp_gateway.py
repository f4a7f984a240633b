"""The real XTP library (``vnpy_xtp``'s compiled ``TdApi`` and XTP's ``libxtptraderapi.so``)
up to its network boundary: the adapter builds its gateway on it, the library starts, and a
login to a port where nothing listens comes back as a mapped error. Going further needs an XTP
account (docs/live_ashare.md)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

if importlib.util.find_spec("vnpy_xtp") is None:  # importing it needs vnpy, which Tape does not
    pytest.skip(
        "vnpy_xtp is not installed (the optional [xtp] extra; it compiles C++: docs/live_ashare.md)",
        allow_module_level=True,
    )

from tests.factories import SPDB
from venues.ccxt_venue import VenueError
from venues.xtp_venue import load_td_api, open_xtp

pytestmark = pytest.mark.asyncio


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_td_api_loads_and_a_refused_login_maps_to_a_rule(tmp_path: Path) -> None:
    td_api = load_td_api()
    assert {"insertOrder", "cancelOrder", "queryOrdersEx", "onOrderEvent", "onTradeEvent"} <= set(dir(td_api))
    with pytest.raises(VenueError) as error:
        await open_xtp(
            [SPDB], tag="t0123456789", day=20241108, client_id=1, save_path=str(tmp_path),
            server_ip="127.0.0.1", server_port=_closed_port(), user="nobody",
            password="canary-password-xtp", software_key="canary-key-xtp", log_level=4,
        )  # fmt: skip
    assert error.value.rule == "VENUE_UNAVAILABLE" and error.value.retriable
    assert "connect server failed" in error.value.detail
    assert "canary" not in error.value.reason
