"""``Kernel._replace_order`` on an A-share: the amended open quantity is checked against T+1 as if
sent now; a refusal is journaled and leaves the order and its sellable reservation as they were;
an accepted amend reserves the new open quantity; an odd lot is refused by the lot rule."""

from __future__ import annotations

from pathlib import Path

from domain.events import Event, OrderReplaced, OrderReplaceRejected
from kernel.loop import Kernel
from kernel.setup import RunSetup
from lake.store import load_panel
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import one_name_policy
from tests.integration.test_router_backtest import Scripted, _cn_minutes


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1


def test_replace_checks_t_plus_1_and_keeps_reservations_right(tmp_path: Path) -> None:
    panel, _ = load_panel(_cn_minutes(tmp_path / "data"))
    sink = _Sink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=Scripted({0: 0.5}),
                     venue=SimVenue(panel, FillModel()),
                     policy=one_name_policy(),
                     currency="CNY",
                 ),
                 sink,
             )
    kernel.begin(100_000_000)
    kernel.run(0, 6)  # into day 2 (steps 5..9): the day-1 buy is sellable now
    held = kernel.state.positions[1].qty_raw
    assert held == 50_000
    ts = int(panel.ts_ns[5])
    kernel.desk.submit(5, ts, "manual", 1, -1, 20_000, 1000)
    (order_id,) = [oid for oid, o in kernel.state.open_orders.items() if o.side < 0]
    day = int(panel.day[5])
    assert kernel.state.sellable[1].reserved == 20_000 and kernel.state.sellable[1].day == day

    assert not kernel.desk.replace(5, order_id, 60_000, "grow past the holding")
    refused = sink.events[-1]
    assert isinstance(refused, OrderReplaceRejected)
    assert refused.reason.startswith("CN_T_PLUS_1: sellable=50000, order_qty=60000")
    assert kernel.state.open_orders[order_id].qty_raw == 20_000
    assert kernel.state.sellable[1].reserved == 20_000

    assert not kernel.desk.replace(5, order_id, 20_050, "odd lot")
    assert isinstance(sink.events[-1], OrderReplaceRejected)
    assert sink.events[-1].reason.startswith("CN_ODD_LOT: sellable=50000, order_qty=20050")
    assert kernel.state.sellable[1].reserved == 20_000

    assert kernel.desk.replace(5, order_id, 40_000, "grow within the holding")
    amended = sink.events[-1]
    assert isinstance(amended, OrderReplaced)
    assert (amended.qty_raw, amended.prev_qty_raw, amended.reason) == (
        40_000,
        20_000,
        "grow within the holding",
    )
    assert kernel.state.open_orders[order_id].qty_raw == 40_000
    assert kernel.state.sellable[1].reserved == 40_000

    kernel.run(6, panel.steps)  # the amended order fills whole at the next bar
    assert kernel.state.positions[1].qty_raw == held - 40_000
    assert order_id not in kernel.state.open_orders
    assert kernel.state.sellable[1].reserved == 0
