"""Rights issues in the kernel, for random fills, ratios, prices, cash and decisions: every
transaction balances, the position is fills carried through each split plus the subscribed
rights, the cost basis grows by exactly what was paid, and a subscription never overdraws cash
(short cash subscribes the most whole shares it pays for)."""

from __future__ import annotations

import numpy as np
from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import CorporateActionApplied, LedgerPosted, OrderFilled, RightsIssueApplied
from domain.fixed import Rounding
from domain.instruments import Instrument
from domain.ledger import Position, fill_postings
from domain.market import Panel
from domain.markets import rights_cost_minor, rights_shares
from kernel.corporate_actions import CorporateActionConfig
from kernel.loop import Kernel
from kernel.setup import RunSetup
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import ListSink, Scripted, one_name_policy

DAY_NS = 86_400_000_000_000
START_NS = 1_577_836_800_000_000_000  # 2020-01-01 UTC
DAYS = 20
INST = Instrument(
    instrument_id=7,
    symbol="SYN",
    venue="SYNTH",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
CN = Instrument(
    instrument_id=7,
    symbol="600007",
    venue="XSHG",
    asset_class="equity",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=100,
    board="main",
)
"""An A-share: T+1 book, lots of 100, statutory fees and the dividend tax by lot (2020 days)."""

Row = tuple[int, int, int, int, int, int, int]  # index, split to/from, cash_e8, rights to/from, price_e8


def _per10(row: list[int]) -> list[int]:
    """The row as an A-share 权息 record can state it (per 10 shares at 1e-4, prices on the fen):
    10送k, cash up to 0.50 CNY (below every close), 10配k at a price in whole fen."""
    split_to, _, cash, rights_to, _, price = row
    cash = cash // 2 // 1_000_000 * 1_000_000
    if split_to == 1 and not cash and not rights_to:
        cash = 1_000_000
    return [9 + split_to, 10, cash, rights_to, 10, max(price // 1_000_000, 1) * 1_000_000]


def _panel(inst: Instrument, closes: list[int], actions: list[Row]) -> Panel:
    ts = np.array([START_NS + (i + 1) * DAY_NS for i in range(DAYS)], dtype=np.int64)
    dates = (ts - 1).astype("datetime64[ns]").astype("datetime64[D]").astype(str)
    day = np.char.replace(dates, "-", "").astype(np.int64)
    px = np.array(closes, dtype=np.int64)[:, None]
    rows = sorted({index: row if inst is INST else _per10(row) for index, *row in actions}.items())

    def column(k: int) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([r[k] for _, r in rows], dtype=np.int64)

    return Panel(
        ts_ns=ts,
        day=day,
        instruments=(inst,),
        open=px,
        high=px,
        low=px,
        close=px,
        volume=np.full((DAYS, 1), 10**9, dtype=np.int64),
        valid=np.ones((DAYS, 1), dtype=np.bool_),
        last_close=px.copy(),
        action_instrument_id=np.full(len(rows), 7, dtype=np.int64),
        action_ex_day=np.array([day[i] for i, _ in rows], dtype=np.int64),
        action_pay_day=np.zeros(len(rows), dtype=np.int64),
        action_cash_e8=column(2),
        action_split_to=column(0),
        action_split_from=column(1),
        action_rights_to=column(3),
        action_rights_from=column(4),
        action_rights_price_e8=np.array([r[5] if r[3] else 0 for _, r in rows], dtype=np.int64),
    )


action_rows = st.lists(
    st.tuples(
        st.integers(1, DAYS - 1),  # ex-date index
        st.integers(1, 6),  # split_to
        st.integers(1, 6),  # split_from
        st.integers(0, 100_000_000),  # cash per share, USD x 1e-8
        st.integers(0, 10),  # rights_to (0: none)
        st.integers(1, 10),  # rights_from
        st.integers(1, 2_000_000_000),  # rights price per share, USD x 1e-8 (up to 20.00)
    ).filter(lambda r: r[1] != r[2] or r[3] > 0 or r[4] > 0),
    max_size=5,
)


def _check_rights(
    event: RightsIssueApplied, before: int, position: Position, cash_now: int, rights: str, ccy: str
) -> None:
    """The entitlement, the decision, the cost and the holding after, from first principles."""
    assert event.qty_before_raw == before
    assert event.entitlement_raw == rights_shares(
        before, event.rights_to, event.rights_from, 0, Rounding.DOWN
    )
    assert 0 <= event.subscribed_raw <= event.entitlement_raw
    assert event.lapsed_raw == event.entitlement_raw - event.subscribed_raw
    assert event.paid_minor == rights_cost_minor(event.subscribed_raw, 0, event.rights_price_e8, ccy)
    if rights == "lapse":
        assert event.subscribed_raw == 0
    elif event.lapsed_raw:  # short of cash: one more share would overdraw it
        assert rights_cost_minor(event.subscribed_raw + 1, 0, event.rights_price_e8, ccy) > cash_now
    assert (event.qty_after_raw, event.cost_minor) == (
        position.qty_raw + event.subscribed_raw,
        position.cost_minor + event.paid_minor,
    )


@settings(max_examples=200, deadline=None)
@given(
    closes=st.lists(st.integers(100, 50_000), min_size=DAYS, max_size=DAYS),
    targets=st.dictionaries(st.integers(0, DAYS - 2), st.floats(-0.9, 0.99), min_size=1, max_size=6),
    actions=action_rows,
    cash=st.integers(10_000, 10**9),
    rights=st.sampled_from(["lapse", "subscribe"]),
    inst=st.sampled_from([INST, CN]),
)
def test_rights_keep_the_books(
    closes: list[int], targets: dict[int, float], actions: list[Row], cash: int, rights: str, inst: Instrument
) -> None:
    panel = _panel(inst, closes, actions)
    ccy = inst.currency
    cash_account = f"assets:cash:{ccy}"
    sink = ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=Scripted(targets),
                     venue=SimVenue(panel, FillModel(commission_e8=100_000)),
                     policy=one_name_policy(),
                     currency=ccy,
                     corporate_actions=CorporateActionConfig(rights=rights),
                 ),
                 sink,
             )
    kernel.begin(cash)
    kernel.run()

    position = Position()
    before = 0  # the holding before the latest action's ex-date
    balances: dict[str, int] = {}
    pending: RightsIssueApplied | None = None
    for event in sink.events:
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0, event.memo
            cash_before = balances.get(cash_account, 0)
            for p in event.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
            if event.memo.startswith("rights subscription"):
                assert pending is not None and pending.subscribed_raw
                assert balances[cash_account] == cash_before - pending.paid_minor
                assert balances[cash_account] >= 0  # never overdrawn by a subscription
                pending = None
        elif isinstance(event, OrderFilled):
            _, position = fill_postings(position, event)
        elif isinstance(event, CorporateActionApplied):
            assert event.qty_before_raw == position.qty_raw
            before = position.qty_raw
            position = Position(event.qty_after_raw, event.cost_minor)
        elif isinstance(event, RightsIssueApplied):
            _check_rights(event, before, position, balances.get(cash_account, 0), rights, ccy)
            position = Position(event.qty_after_raw, event.cost_minor)
            pending = event if event.subscribed_raw else None
            kind = "none" if not event.entitlement_raw else "full" if not event.lapsed_raw else "partial"
            note(f"{ccy} rights {rights}: {kind}")
    assert pending is None  # every subscription was posted
    state = kernel.state
    assert state.positions.get(7, Position()) == position
    assert sum(state.balances.values()) == 0
    assert state.balances.get("assets:inventory:7", 0) == position.cost_minor
    if inst is CN and position.qty_raw:  # the T+1 book and the tax lots hold the rights shares too
        assert state.sellable[7].holding == position.qty_raw
        if 7 in state.tax_lots:
            assert sum(lot.qty for lot in state.tax_lots[7]) == position.qty_raw
