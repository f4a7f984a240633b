"""Dated rule tables: a value per effective date, never a single "current" constant.

Days are session dates as ``YYYYMMDD`` integers (the same encoding as ``domain.market.Panel.day``).
A lookup before the first effective date raises ``RuleNotDefined``: the table does not know
the rule that applied then, and guessing would silently price a backtest wrong.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Dated", "RuleNotDefined", "day_to_date", "date_to_day", "validate_day"]

T = TypeVar("T")


class RuleNotDefined(LookupError):
    """No rule value is known for the requested day (before the table's first entry)."""


def validate_day(day: int) -> None:
    """Raise ``ValueError`` unless ``day`` is a real calendar date written as YYYYMMDD."""
    day_to_date(day)


def day_to_date(day: int) -> dt.date:
    if not 10000101 <= day <= 99991231:
        raise ValueError(f"day must be YYYYMMDD, got {day}")
    try:
        return dt.date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        raise ValueError(f"day must be YYYYMMDD, got {day}") from None


def date_to_day(date: dt.date) -> int:
    return date.year * 10000 + date.month * 100 + date.day


@dataclass(frozen=True)
class Dated(Generic[T]):
    """``(effective_from_day, value)`` entries; a value holds until the next entry's day.

    ``name`` appears in every error. ``entries`` must be strictly increasing by day.
    """

    name: str
    entries: tuple[tuple[int, T], ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError(f"{self.name}: a dated table needs at least one entry")
        days = [day for day, _ in self.entries]
        for day in days:
            validate_day(day)
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError(f"{self.name}: effective days must be strictly increasing: {days}")

    @classmethod
    def of(cls, name: str, entries: Sequence[tuple[int, T]]) -> Dated[T]:
        return cls(name, tuple(entries))

    @property
    def first_day(self) -> int:
        return self.entries[0][0]

    def at(self, day: int) -> T:
        """The value in force on ``day``."""
        validate_day(day)
        index = bisect.bisect_right([entry_day for entry_day, _ in self.entries], day) - 1
        if index < 0:
            raise RuleNotDefined(
                f"{self.name}: no rule before {self.first_day} (asked for {day}); "
                "supply a schedule that covers this date instead of guessing"
            )
        return self.entries[index][1]
