"""Fixed-point values as text: money in its currency, prices and quantities at their digits.

Exact (integer arithmetic, no float) for money, prices and quantities; ratios in 1e-8
(``RATE_SCALE``) are shown as percentages. Times are the journal's UTC nanoseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain.fixed import RATE_SCALE, minor_digits

__all__ = ["counted", "day_text", "decimal", "money", "pct_e8", "utc_text"]


def counted(count: int, noun: str) -> str:
    """``1 step``, ``2 steps``: a count with thousands separators and its noun (plural by an
    ``s``; ``cli.progress.plural``'s rule, which the cockpit cannot import)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def decimal(raw: int, digits: int) -> str:
    """A raw fixed-point integer at ``digits`` as a decimal with thousands separators."""
    if digits <= 0:
        return f"{raw:,}"
    sign = "-" if raw < 0 else ""
    whole, fraction = divmod(abs(raw), 10**digits)
    return f"{sign}{whole:,}.{fraction:0{digits}d}"


def money(value_minor: int, currency: str) -> str:
    """Minor units with the currency's digits and code, e.g. ``1,234.56 USD``."""
    try:
        digits = minor_digits(currency)
    except ValueError:
        return f"{value_minor:,} {currency} (minor)"
    return f"{decimal(value_minor, digits)} {currency}"


def pct_e8(value_e8: int) -> str:
    """A 1e-8 ratio as a percentage with two decimals (exact rounding half-even is not needed
    for display; the figure is the journal's integer)."""
    return f"{value_e8 * 100 / RATE_SCALE:.2f}%"


def utc_text(ts_ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) of a journal time stamp."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def day_text(day: int) -> str:
    """YYYYMMDD as ``YYYY-MM-DD``."""
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
