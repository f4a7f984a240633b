"""SEC Section 31 and FINRA TAF in the kernel loop: postings in a US equity sell's fill
transaction, none on buys or other venues, none when the run turns them off, and a clear
refusal for a run that starts before the dated tables do."""

from __future__ import annotations

import numpy as np
import pytest

from domain.events import Event, LedgerPosted, OrderFilled
from domain.fixed import Rounding, div_round
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import session_intervals_ns
from kernel.loop import Kernel, KernelError
from kernel.setup import RunSetup
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import ListSink, Scripted, one_name_policy


def _instrument(venue: str) -> Instrument:
    return Instrument(
        instrument_id=1,
        symbol="XYZ",
        venue=venue,
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
    )


def _panel(instrument: Instrument, days: list[int]) -> Panel:
    px = np.array([[15_000], [15_000], [15_500], [15_500]], dtype=np.int64)[: len(days)]
    return Panel(
        ts_ns=np.array([session_intervals_ns("XNYS", d)[-1][1] for d in days], dtype=np.int64),
        day=np.array(days, dtype=np.int64),
        instruments=(instrument,),
        open=px,
        high=px,
        low=px,
        close=px,
        volume=np.full(px.shape, 10**7, dtype=np.int64),
        valid=np.ones(px.shape, dtype=np.bool_),
        last_close=px.copy(),
    )


def _run(instrument: Instrument, days: list[int], start_step: int = 0, **kernel_args: bool) -> list[Event]:
    panel = _panel(instrument, days)
    sink = ListSink()
    setup = RunSetup(
        panel=panel,
        # buy at the open of the step after start_step, sell it all at the next one's
        strategy=Scripted({start_step: 0.5, start_step + 1: 0.0}),
        start_step=start_step,
        venue=SimVenue(panel, FillModel(commission_e8=0)),
        policy=one_name_policy(),
        currency="USD",
        **kernel_args,  # type: ignore[arg-type]
    )
    kernel = Kernel(setup, sink)
    kernel.begin(10_000_000)
    kernel.run(start_step)
    return sink.events


def _fill_postings(events: list[Event]) -> list[tuple[OrderFilled, dict[str, int]]]:
    """Each fill with its transaction's postings summed per account."""
    fills = {e.order_id: e for e in events if isinstance(e, OrderFilled)}
    out = []
    for e in events:
        if isinstance(e, LedgerPosted) and e.memo.startswith("fill "):
            totals: dict[str, int] = {}
            for p in e.postings:
                totals[p.account] = totals.get(p.account, 0) + p.amount_minor
            out.append((fills[e.memo.removeprefix("fill ")], totals))
    return out


def test_us_equity_sell_pays_sec_fee_and_taf() -> None:
    events = _run(_instrument("XNAS"), [20240603, 20240604, 20240605, 20240606])
    (buy, buy_postings), (sell, sell_postings) = _fill_postings(events)
    assert buy.side == 1 and not any("sec_fee" in a or "finra_taf" in a for a in buy_postings)
    assert sell.side == -1 and sell.fill_qty_raw == 333 and sell.notional_minor == 333 * 15_500
    sec = div_round(sell.notional_minor * 2_780, 10**8, Rounding.CEILING)  # $27.80 per $1M from 2024-05-22
    taf = div_round(333 * 16_600 * 100, 10**8, Rounding.CEILING)  # $0.000166 per share, 2024
    assert (sec, taf) == (144, 6)
    assert sell_postings["expenses:sec_fee:USD"] == sec
    assert sell_postings["expenses:finra_taf:USD"] == taf
    assert sell_postings["assets:cash:USD"] == sell.notional_minor - sec - taf
    assert sum(sell_postings.values()) == 0


def test_no_us_fees_on_other_venues_or_when_turned_off() -> None:
    days = [20240603, 20240604, 20240605, 20240606]
    for events in (
        _run(_instrument("SYNTH"), days),
        _run(_instrument("XNYS"), days, us_regulatory_fees=False),
    ):
        _, sell_postings = _fill_postings(events)[1]
        assert set(sell_postings) == {"assets:cash:USD", "assets:inventory:1", "income:realized:USD"}


def test_a_run_before_the_fee_tables_fails_at_start() -> None:
    days = [20231002, 20231003, 20231004, 20231005]  # SEC defined, FINRA TAF table starts 2024-01-01
    with pytest.raises(KernelError, match="set us_regulatory_fees = false"):
        _run(_instrument("ARCX"), days)
    assert _run(_instrument("ARCX"), days, us_regulatory_fees=False)


def test_a_window_is_checked_from_its_first_session_not_the_data_sets() -> None:
    """History rows before the window only warm up (no fill can happen there): a window that
    starts once both tables hold runs, with the fees, though its data set starts earlier. The
    check looked at the data set's first day and refused it."""
    days = [20231229, 20240102, 20240103, 20240104]  # FINRA TAF's table starts 2024-01-01
    with pytest.raises(KernelError, match="set us_regulatory_fees = false"):
        _run(_instrument("ARCX"), days)  # the run trades from 2023-12-29
    _, (sell, sell_postings) = _fill_postings(_run(_instrument("ARCX"), days, start_step=1))
    assert sell.side == -1
    assert sell_postings["expenses:finra_taf:USD"] == div_round(
        sell.fill_qty_raw * 16_600 * 100, 10**8, Rounding.CEILING
    )  # $0.000166 per share, 2024
    assert sell_postings["expenses:sec_fee:USD"] > 0
