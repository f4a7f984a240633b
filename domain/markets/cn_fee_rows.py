"""User-supplied A-share fee rates for the days the built-in tables do not cover.

The built-in tables (``fees.CN_STAMP_DUTY`` and friends) start where ``MARKET_RULES.md``
starts: a fill before the first entry of a table raises ``RuleNotDefined``. A backtest over
older data (SPDB from 1999, say) supplies its own dated rows; they are the user's values, not
verified by the project, and travel with the run's configuration into the journal.

Merge rule, per fee line (stamp duty, transfer, handling, CSRC): **built-in rows win**. A user
row dated before a built-in table's first entry goes in front of it and holds until the next
user row or the built-in start. A user row dated on or after that start must state the same
rate as the built-in row in force that day (it is then redundant and dropped); a different rate
is refused (``CnFeeRowConflict``), never silently preferred. Days before the first user row
still raise ``RuleNotDefined`` naming the table and the day. Nothing defaults to zero: every
row states every rate, and an explicit 0 is the user's statement.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import msgspec

from domain.fixed import RATE_SCALE
from domain.markets._dated import Dated, validate_day
from domain.markets.fees import CN_FEE_TABLES, CnFeeTables, SideRate

__all__ = ["CnFeeRow", "CnFeeRowConflict", "CnFeeRows", "cn_fee_tables"]

_RATES = ("stamp_duty_buy_e8", "stamp_duty_sell_e8", "transfer_e8", "handling_e8", "regulatory_e8")


class CnFeeRowConflict(ValueError):
    """A user row overlaps a built-in table and states a different rate."""


class CnFeeRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates (1e-8 of notional) in force from ``effective_from`` (YYYYMMDD) until the next row.

    Stamp duty is given per side (``0`` on a side = not charged on it); transfer, handling and
    CSRC (regulatory) fees are charged on both sides at one rate.
    """

    effective_from: int
    stamp_duty_buy_e8: int
    stamp_duty_sell_e8: int
    transfer_e8: int
    handling_e8: int
    regulatory_e8: int

    def __post_init__(self) -> None:
        try:
            validate_day(self.effective_from)
        except ValueError:
            raise ValueError(
                f"cn_fees row: effective_from must be YYYYMMDD, got {self.effective_from}"
            ) from None
        for name in _RATES:
            value = getattr(self, name)
            if not 0 <= value < RATE_SCALE:
                raise ValueError(
                    f"cn_fees row {self.effective_from}: {name} must be in [0, {RATE_SCALE}) "
                    f"(1e-8 of notional), got {value}"
                )
        buy, sell = self.stamp_duty_buy_e8, self.stamp_duty_sell_e8
        if buy and sell and buy != sell:
            raise ValueError(
                f"cn_fees row {self.effective_from}: stamp duty is one rate charged to the buyer "
                f"and/or the seller; got buy {buy} and sell {sell}"
            )

    def stamp_duty(self) -> SideRate:
        rate = self.stamp_duty_buy_e8 or self.stamp_duty_sell_e8
        return SideRate(rate, buyer=self.stamp_duty_buy_e8 > 0, seller=self.stamp_duty_sell_e8 > 0)

    def transfer(self) -> SideRate:
        return SideRate(self.transfer_e8, buyer=True, seller=True)

    def handling(self) -> SideRate:
        return SideRate(self.handling_e8, buyer=True, seller=True)

    def regulatory(self) -> SideRate:
        return SideRate(self.regulatory_e8, buyer=True, seller=True)


class CnFeeRows(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A backtest's ``[cn_fees]`` table: ``rows`` in increasing ``effective_from`` order and a
    free-text ``source`` naming where the user took the values from (journaled, not checked)."""

    rows: list[CnFeeRow] = []
    source: str = ""

    def __post_init__(self) -> None:
        cn_fee_tables(self.rows)  # refuse bad order and conflicts when the config is read


def _per_side(rate: SideRate) -> tuple[int, int]:
    """(buyer rate, seller rate): two ``SideRate`` values charge the same iff these agree."""
    return (rate.rate_e8 if rate.buyer else 0, rate.rate_e8 if rate.seller else 0)


def _merge(
    builtin: Dated[SideRate], rows: Sequence[CnFeeRow], fields: str, value_of: Callable[[CnFeeRow], SideRate]
) -> Dated[SideRate]:
    start = builtin.first_day
    front = []
    for row in rows:
        value = value_of(row)
        if row.effective_from < start:
            front.append((row.effective_from, value))
            continue
        in_force = builtin.at(row.effective_from)
        if _per_side(value) != _per_side(in_force):
            buy, sell = _per_side(value)
            builtin_buy, builtin_sell = _per_side(in_force)
            raise CnFeeRowConflict(
                f"cn_fees row {row.effective_from}: {fields} (buy {buy}, sell {sell}) disagrees with "
                f"the built-in {builtin.name} in force that day (buy {builtin_buy}, sell {builtin_sell}); "
                f"built-in rates win from {start}: drop the row or date it before {start}"
            )
    if not front:
        return builtin
    name = f"{builtin.name} (config cn_fees rows from {front[0][0]}, built-in from {start})"
    return Dated.of(name, [*front, *builtin.entries])


def cn_fee_tables(rows: Sequence[CnFeeRow], builtin: CnFeeTables = CN_FEE_TABLES) -> CnFeeTables:
    """The built-in tables with the user's rows merged in front (see the module docstring)."""
    if not rows:
        return builtin
    days = [row.effective_from for row in rows]
    if any(later <= earlier for earlier, later in itertools.pairwise(days)):
        raise ValueError(f"cn_fees rows must be in strictly increasing effective_from order, got {days}")
    return CnFeeTables(
        _merge(builtin.stamp_duty, rows, "stamp_duty_buy_e8/stamp_duty_sell_e8", CnFeeRow.stamp_duty),
        _merge(builtin.transfer, rows, "transfer_e8", CnFeeRow.transfer),
        _merge(builtin.handling, rows, "handling_e8", CnFeeRow.handling),
        _merge(builtin.regulatory, rows, "regulatory_e8", CnFeeRow.regulatory),
    )
