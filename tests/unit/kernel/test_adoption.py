"""Holdings the book takes on from its venue (``kernel.adoption``): what may be adopted, and
where it is booked. Constructed data (``tests.factories.make_dataset``: two crypto spot names
on the 24x7 calendar)."""

from __future__ import annotations

import msgspec
import pytest

from domain.events import AdoptionReceived, CashAdopted, PositionAdopted
from domain.ledger import adjustment_account, cash_account, inventory_account
from domain.market import Panel
from kernel.adoption import Adoptions
from lake.store import load_panel
from tests.factories import make_dataset


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Panel:
    data = make_dataset(tmp_path_factory.mktemp("adopt") / "d", seed=5, symbols=2, bars=30)
    return load_panel(data)[0]


def _received(ts_ns: int, positions: list[tuple[int, int]], cash: list[tuple[str, int]]) -> AdoptionReceived:
    return AdoptionReceived(ts_ns=ts_ns, venue="binance", when="start", positions=positions, cash=cash)


def test_what_cannot_be_adopted_is_refused_with_the_reason(panel: Panel) -> None:
    instruments = {inst.instrument_id: inst for inst in panel.instruments}
    perp = msgspec.structs.replace(instruments[2], asset_class="crypto_perp")
    a_share = msgspec.structs.replace(instruments[2], asset_class="equity", venue="XSHG")
    ts = panel.ts_ns
    book = Adoptions(panel, instruments, ["USD"], sleeves=False)
    cases = [
        (_received(int(ts[5]), [(9, 1)], []), "instrument 9 is not in the run"),
        (_received(int(ts[5]), [(1, 0)], []), "a quantity of 0"),
        (_received(int(ts[5]), [], [("EUR", 100)]), "cash in 'EUR': the book keeps USD"),
        (_received(int(ts[5]), [], [("USD", 0)]), "cash of 0 USD"),
        (_received(int(ts[0]), [(1, 3)], []), "has no price before step 0"),
        (_received(int(ts[-1]) + 1, [(1, 3)], []), "after the run's last step"),
    ]
    for received, reason in cases:
        with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            book.add(received, 0)
    for other in (perp, a_share):
        refusing = Adoptions(panel, {**instruments, 2: other}, ["USD"], sleeves=False)
        with pytest.raises(ValueError, match="is not a holding an adoption sets"):
            refusing.add(_received(int(ts[5]), [(2, 1)], []), 0)
    sleeves = Adoptions(panel, instruments, ["USD"], sleeves=True)
    with pytest.raises(ValueError, match="several strategies"):
        sleeves.add(_received(int(ts[5]), [(1, 1)], []), 0)
    assert sleeves.add(_received(int(ts[5]), [], [("USD", 5)]), 0) == 5  # cash alone is fine
    assert not book.mask.any() and book.by_step == {}  # nothing refused was scheduled


def test_an_adoption_waits_for_the_first_step_not_yet_run(panel: Panel) -> None:
    instruments = {inst.instrument_id: inst for inst in panel.instruments}
    ts = panel.ts_ns
    book = Adoptions(panel, instruments, ["USD"], sleeves=False)
    early = _received(int(ts[3]), [(1, 2)], [])
    late = _received(int(ts[12]), [], [("USD", -7)])
    assert book.add(early, 10) == 10 and book.add(late, 10) == 12
    assert book.pending(10) == (early, late) and book.pending(11) == (late,) and book.pending(13) == ()


def test_the_ledger_of_an_adoption_balances_and_moves_no_cash_for_a_position() -> None:
    """A position taken on posts inventory against the adjustment account; one given up releases
    cost (like a sale) against it; cash posts cash against it."""
    from domain.ledger import Position, adopted_cash_postings, adopted_position_postings

    take = PositionAdopted(
        ts_ns=0,
        step=3,
        venue="binance",
        instrument_id=1,
        qty_raw=7,
        px_raw=250,
        value_minor=1_750,
        currency="USD",
    )
    postings, position = adopted_position_postings(Position(), take)
    assert {p.account: p.amount_minor for p in postings} == {
        inventory_account(1): 1_750,
        adjustment_account("USD"): -1_750,
    }
    assert position == Position(7, 1_750)
    give = msgspec.structs.replace(take, qty_raw=-2, value_minor=600)
    postings, position = adopted_position_postings(position, give)
    amounts = {p.account: p.amount_minor for p in postings}
    assert amounts[inventory_account(1)] == -500 and amounts[adjustment_account("USD")] == 600
    assert sum(amounts.values()) == 0 and position == Position(5, 1_250)
    assert cash_account("USD") not in amounts
    cash = adopted_cash_postings(
        CashAdopted(ts_ns=0, step=3, venue="binance", currency="USD", amount_minor=-42)
    )
    assert {p.account: p.amount_minor for p in cash} == {
        cash_account("USD"): -42,
        adjustment_account("USD"): 42,
    }
