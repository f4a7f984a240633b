"""A sleeve's decision as the book's (several strategies in one book, ``kernel.sleeves``).

A strategy of several decides in its own frame: its weights are fractions of its budget, and
it trades from its own positions. ``SleeveTargets.as_book`` puts a decision through the
strategy's own risk policy, if it has one (its verdicts named ``strategy.<rule>``), then turns
it into the book's targets — the other sleeves as they stand plus this one's new weights — for
the book's risk stage, and gives back the sleeve's positions and the other sleeves' weights the
order planner needs to trade this sleeve alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument
from domain.ledger import Position
from domain.riskrules import RuleVerdict
from kernel.pipeline import RiskStage, current_weights
from kernel.setup import StrategySlot
from kernel.sleeves import Sleeve

__all__ = ["BookTargets", "SleeveTargets"]


class BookTargets(msgspec.Struct, frozen=True):
    positions: dict[int, Position]  # the sleeve's own
    others: dict[int, int]  # the other sleeves' weights (1e-8 of the book) in the names targeted
    book: dict[int, int]  # the book's targets
    verdicts: list[RuleVerdict]  # the strategy's own policy's, named strategy.<rule>


class SleeveTargets:
    def __init__(self, slots: tuple[StrategySlot, ...], instruments: Mapping[int, Instrument]) -> None:
        self._instruments = instruments
        self._risk = {
            slot.strategy.strategy_id: RiskStage(slot.policy, dict(instruments))
            for slot in slots
            if slot.policy is not None
        }

    def as_book(
        self,
        sleeve: Sleeve,
        targets: dict[int, int],
        held: dict[int, int],
        prices: dict[int, int],
        nav: int,
        *,
        round_up: bool,
    ) -> BookTargets:
        """``targets`` (1e-8 of the sleeve's budget) as the book's. ``round_up``: targets sized
        from shares or values are scaled up in magnitude, so whole lots stay whole (half-even
        otherwise). A policy that cannot evaluate raises ``RiskError``."""
        positions = {iid: Position(qty, 0) for iid, qty in sleeve.positions.items()}
        own = current_weights(positions, prices, dict(self._instruments), nav)
        verdicts: list[RuleVerdict] = []
        stage = self._risk.get(sleeve.strategy_id)
        if stage is not None:
            budget = sleeve.budget_e8
            in_budget = {iid: div_round(w * RATE_SCALE, budget, Rounding.HALF_EVEN) for iid, w in own.items()}
            targets, checked = stage.portfolio(targets, in_budget)
            verdicts = [msgspec.structs.replace(v, rule=f"strategy.{v.rule}") for v in checked]
        others = {iid: held.get(iid, 0) - own.get(iid, 0) for iid in targets}
        budget = sleeve.budget_e8
        book = {iid: others[iid] + _scaled(weight, budget, round_up) for iid, weight in targets.items()}
        return BookTargets(positions, others, book, verdicts)


def _scaled(weight: int, budget_e8: int, round_up: bool) -> int:
    if not round_up:
        return div_round(weight * budget_e8, RATE_SCALE, Rounding.HALF_EVEN)
    part = div_round(abs(weight) * budget_e8, RATE_SCALE, Rounding.CEILING)
    return part if weight >= 0 else -part
