"""A-share T+1 sellable quantity and order-size (lot) rules, as pure snapshot-able values.

Shares bought in session T become sellable in session T+1; sellable = holding - bought in
the current session - quantity reserved by open sell orders.
Sources: ``MARKET_RULES.md`` section 1.3 (T+1, lots, odd-lot sells) and 6.1 (rqalpha T+1).
"""

from __future__ import annotations

import msgspec

from domain.markets._dated import Dated, validate_day
from domain.markets.cn_limits import Board

__all__ = [
    "LotRule",
    "SellableBook",
    "apply_buy_fill",
    "apply_sell_fill",
    "check_buy_qty",
    "check_sell",
    "check_sell_qty",
    "cn_lot_rule",
    "release_sell",
    "reserve_sell",
    "roll_to",
    "sellable",
]


class SellableBook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One account's T+n state for one instrument (quantities in shares, ``qty_digits == 0``).

    ``day`` is the session (YYYYMMDD) that ``bought_today`` refers to. ``t_plus`` is 1 for
    A-shares, 0 for T+0 instruments. Goes into the day snapshot as is.
    """

    day: int
    holding: int = 0
    bought_today: int = 0
    reserved: int = 0
    t_plus: int = 1

    def __post_init__(self) -> None:
        validate_day(self.day)
        if self.t_plus not in (0, 1):
            raise ValueError(f"t_plus must be 0 or 1, got {self.t_plus}")
        if self.holding < 0:
            raise ValueError(f"holding must not be negative (no A-share shorting), got {self.holding}")
        if not 0 <= self.bought_today <= self.holding:
            raise ValueError(f"bought_today={self.bought_today} outside [0, holding={self.holding}]")
        if self.reserved < 0:
            raise ValueError(f"reserved must not be negative, got {self.reserved}")


def sellable(book: SellableBook) -> int:
    """Shares that a new sell order may use now."""
    locked = book.bought_today if book.t_plus else 0
    return book.holding - locked - book.reserved


def roll_to(book: SellableBook, day: int) -> SellableBook:
    """Advance to session ``day``: yesterday's buys become sellable. Going back is an error.

    Open sell orders (``reserved``) are kept; the caller releases them when it expires orders.
    """
    validate_day(day)
    if day < book.day:
        raise ValueError(f"cannot roll a T+1 book back from {book.day} to {day}")
    if day == book.day:
        return book
    return msgspec.structs.replace(book, day=day, bought_today=0)


def apply_buy_fill(book: SellableBook, day: int, qty: int) -> SellableBook:
    """A (partial) buy fill in session ``day``."""
    if qty <= 0:
        raise ValueError(f"fill quantity must be positive, got {qty}")
    book = roll_to(book, day)
    return msgspec.structs.replace(book, holding=book.holding + qty, bought_today=book.bought_today + qty)


def check_sell(book: SellableBook, day: int, qty: int) -> str | None:
    """``None`` when a sell of ``qty`` fits the sellable quantity on ``day``, else a reason."""
    available = sellable(roll_to(book, day))
    if qty > available:
        return (
            f"CN_T_PLUS_1: sellable={available}, order_qty={qty}, "
            f"holding={book.holding}, bought_today={roll_to(book, day).bought_today}"
        )
    return None


def reserve_sell(book: SellableBook, day: int, qty: int) -> SellableBook:
    """Reserve ``qty`` for an accepted sell order. Call ``check_sell`` first; this asserts it."""
    if qty <= 0:
        raise ValueError(f"sell quantity must be positive, got {qty}")
    reason = check_sell(book, day, qty)
    if reason is not None:
        raise ValueError(reason)
    book = roll_to(book, day)
    return msgspec.structs.replace(book, reserved=book.reserved + qty)


def release_sell(book: SellableBook, day: int, qty: int) -> SellableBook:
    """Give back the unfilled rest of a sell order (cancelled, expired, rejected)."""
    book = roll_to(book, day)
    if not 0 <= qty <= book.reserved:
        raise ValueError(f"cannot release {qty}: only {book.reserved} reserved")
    return msgspec.structs.replace(book, reserved=book.reserved - qty)


def apply_sell_fill(book: SellableBook, day: int, qty: int) -> SellableBook:
    """A (partial) sell fill of a reserved order: holding and reservation both shrink."""
    book = roll_to(book, day)
    if not 0 < qty <= book.reserved:
        raise ValueError(f"sell fill of {qty} exceeds the reserved {book.reserved}")
    locked = book.bought_today if book.t_plus else 0
    holding = book.holding - qty
    assert holding >= locked, "a sell fill consumed shares bought this session (T+1)"
    bought_today = min(book.bought_today, holding)
    return msgspec.structs.replace(
        book, holding=holding, reserved=book.reserved - qty, bought_today=bought_today
    )


# --- order size (lots) ------------------------------------------------------------------------


class LotRule(msgspec.Struct, frozen=True):
    """Order size: at least ``qty_min``, then multiples of ``qty_step`` above it.

    A sell below these rules is allowed only when it carries the whole odd remainder of the
    sellable quantity in one order. ``qty_max`` is a per-order cap (``None`` = not modelled).
    """

    qty_min: int
    qty_step: int
    qty_max: int | None = None


# MARKET_RULES.md §1.3 "Tick, lots, order sizes". Main board / ChiNext 100-share lots are "U"
# (standard rule); STAR and BSE are "S" (special provisions; rqalpha constants).
_LOT_RULES: dict[Board, Dated[LotRule]] = {
    Board.MAIN: Dated.of("CN main-board lot", [(19900101, LotRule(100, 100))]),
    Board.CHINEXT: Dated.of("CN ChiNext lot", [(20091030, LotRule(100, 100))]),
    Board.STAR: Dated.of("CN STAR lot", [(20190722, LotRule(200, 1, 100_000))]),
    Board.BSE: Dated.of("CN BSE lot", [(20211115, LotRule(100, 1))]),
}


def cn_lot_rule(board: Board, day: int) -> LotRule:
    if board not in _LOT_RULES:
        raise ValueError(f"no lot rule for board {board.value}: supply one from the instrument master")
    return _LOT_RULES[board].at(day)


def _whole_lots(rule: LotRule, qty: int) -> bool:
    return qty >= rule.qty_min and (qty - rule.qty_min) % rule.qty_step == 0


def _over_max(rule: LotRule, qty: int) -> str | None:
    if rule.qty_max is not None and qty > rule.qty_max:
        return f"CN_LOT: max={rule.qty_max}, order_qty={qty}"
    return None


def check_buy_qty(rule: LotRule, qty: int) -> str | None:
    """Buys must be whole lots (odd-lot buys are not allowed)."""
    if not _whole_lots(rule, qty):
        return f"CN_LOT: min={rule.qty_min}, step={rule.qty_step}, order_qty={qty}"
    return _over_max(rule, qty)


def check_sell_qty(rule: LotRule, qty: int, sellable_qty: int) -> str | None:
    """Sells: whole lots, or an order that includes the whole odd remainder at once."""
    if qty <= 0:
        return f"CN_LOT: order_qty={qty} must be positive"
    over = _over_max(rule, qty)
    if over is not None:
        return over
    if _whole_lots(rule, qty) or qty == sellable_qty:
        return None
    odd = sellable_qty % rule.qty_step
    if rule.qty_step > 1 and odd and qty % rule.qty_step == odd:
        return None  # round lots (possibly none) plus the entire odd remainder in one order
    return f"CN_ODD_LOT: sellable={sellable_qty}, order_qty={qty}, min={rule.qty_min}, step={rule.qty_step}"
