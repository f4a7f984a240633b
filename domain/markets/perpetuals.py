"""Crypto perpetual futures: funding payments, funding times, margin and liquidation, in integers.

Funding: amount = position notional at the mark price x funding rate; a positive rate makes
longs pay shorts; only positions open at the funding timestamp pay or receive.
Margin: maintenance = notional x MMR(bracket) - maintenance amount; liquidation when the
margin balance is at or below the maintenance margin.
Source: ``MARKET_RULES.md`` section 3 (Binance USDⓈ-M, S).
"""

from __future__ import annotations

import msgspec

from domain.events import PostingRecord
from domain.fixed import RATE_SCALE, Rounding, apply_rate, div_round, minor_digits, to_decimal
from domain.instruments import Instrument
from domain.ledger import assert_balanced, cash_account

__all__ = [
    "MarginBracket",
    "check_liquidation",
    "funding_payment_minor",
    "funding_postings",
    "funding_rate_e8",
    "funding_times_ns",
    "initial_margin_minor",
    "is_liquidatable",
    "maintenance_margin_minor",
    "margin_balance_minor",
    "unrealized_pnl_minor",
]

_NS_PER_HOUR = 3_600 * 10**9

# MARKET_RULES.md §3 "Funding schedule": every 8 h at 00:00/08:00/16:00 UTC by default; many
# contracts use 4 h and capped contracts switch to 1 h since 2025-05-02. The interval is
# per-contract, per-time data (from the venue's funding-rate series), so it is an argument.
# MARKET_RULES.md §3 "Funding rate": premium clamp ±0.05%, interest 0.01% per 8 h (S).
_FUNDING_CLAMP_E8 = 50_000
_INTEREST_8H_E8 = 10_000


def funding_times_ns(start_ns: int, end_ns: int, interval_hours: int) -> list[int]:
    """Funding timestamps in ``(start_ns, end_ns]``: multiples of the interval since UTC midnight.

    Half-open so that consecutive steps never charge the same funding time twice.
    """
    if interval_hours not in (1, 2, 4, 8):
        raise ValueError(
            f"funding interval must divide a day in whole hours (1, 2, 4, 8), got {interval_hours}"
        )
    step = interval_hours * _NS_PER_HOUR
    first = (start_ns // step + 1) * step
    return list(range(first, end_ns + 1, step))


def funding_rate_e8(premium_e8: int, cap_e8: int, interest_e8: int = _INTEREST_8H_E8) -> int:
    """F = P + clamp(I - P, -0.05%, +0.05%), then clamped to the contract's cap/floor."""
    inner = max(-_FUNDING_CLAMP_E8, min(_FUNDING_CLAMP_E8, interest_e8 - premium_e8))
    return max(-cap_e8, min(cap_e8, premium_e8 + inner))


def _notional_exact(instrument: Instrument, qty_raw: int, px_raw: int) -> tuple[int, int]:
    """Signed notional as an exact fraction (numerator, denominator) in minor units."""
    numerator = qty_raw * px_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    return numerator, 10 ** (instrument.price_digits + instrument.qty_digits)


def funding_payment_minor(
    instrument: Instrument, qty_raw: int, mark_px_raw: int, rate_e8: int, rounding: Rounding
) -> int:
    """Cash change for the holder of a signed position at one funding time (negative = pays).

    ``rounding`` applies to the amount paid/received (sign kept symmetric: the payer's
    magnitude and the receiver's magnitude round the same way).
    """
    if mark_px_raw <= 0:
        raise ValueError(f"mark price must be positive, got {mark_px_raw}")
    if qty_raw == 0 or rate_e8 == 0:
        return 0
    numerator, denominator = _notional_exact(instrument, abs(qty_raw), mark_px_raw)
    magnitude = div_round(numerator * abs(rate_e8), denominator * RATE_SCALE, rounding)
    pays = (qty_raw > 0) == (rate_e8 > 0)
    return -magnitude if pays else magnitude


def funding_postings(amount_minor: int, currency: str) -> list[PostingRecord]:
    """Cash against funding income (received) or funding expense (paid)."""
    if amount_minor == 0:
        return []
    account = f"income:funding:{currency}" if amount_minor > 0 else f"expenses:funding:{currency}"
    postings = [
        PostingRecord(cash_account(currency), currency, amount_minor),
        PostingRecord(account, currency, -amount_minor),
    ]
    assert_balanced(postings)
    return postings


class MarginBracket(msgspec.Struct, frozen=True):
    """Applies to notionals up to ``notional_max_minor`` (``None`` = no upper bound)."""

    notional_max_minor: int | None
    mmr_e8: int
    maintenance_amount_minor: int = 0


def maintenance_margin_minor(
    notional_minor: int, brackets: tuple[MarginBracket, ...], rounding: Rounding
) -> int:
    """notional x MMR(bracket) - maintenance amount, for an absolute notional."""
    notional = abs(notional_minor)
    for bracket in brackets:
        if bracket.notional_max_minor is None or notional <= bracket.notional_max_minor:
            margin = apply_rate(notional, bracket.mmr_e8, rounding) - bracket.maintenance_amount_minor
            return max(margin, 0)
    raise ValueError(f"no margin bracket covers notional {notional}; the last bracket must be open-ended")


def initial_margin_minor(notional_minor: int, leverage: int, rounding: Rounding) -> int:
    if leverage <= 0:
        raise ValueError(f"leverage must be positive, got {leverage}")
    return div_round(abs(notional_minor), leverage, rounding)


def unrealized_pnl_minor(
    instrument: Instrument, qty_raw: int, entry_px_raw: int, mark_px_raw: int, rounding: Rounding
) -> int:
    """Signed qty x (mark - entry) x multiplier, in minor units."""
    numerator, denominator = _notional_exact(instrument, qty_raw, mark_px_raw - entry_px_raw)
    return div_round(numerator, denominator, rounding)


def margin_balance_minor(
    wallet_minor: int, instrument: Instrument, qty_raw: int, entry_px_raw: int, mark_px_raw: int
) -> int:
    """Wallet balance (isolated margin, or the cross account) plus unrealised PnL at the mark.

    PnL rounds toward -inf: a liquidation check never counts a fraction of a unit in our favour.
    """
    return wallet_minor + unrealized_pnl_minor(instrument, qty_raw, entry_px_raw, mark_px_raw, Rounding.FLOOR)


def is_liquidatable(margin_balance: int, maintenance_margin: int) -> bool:
    return margin_balance <= maintenance_margin


def check_liquidation(margin_balance: int, maintenance_margin: int, currency: str) -> str | None:
    """``None`` while the position is safe, else the journaled reason."""
    if not is_liquidatable(margin_balance, maintenance_margin):
        return None
    digits = minor_digits(currency)
    balance, maintenance = to_decimal(margin_balance, digits), to_decimal(maintenance_margin, digits)
    return f"PERP_LIQUIDATION: margin_balance={balance}, maintenance_margin={maintenance} {currency}"
