"""Fees, taxes and commissions as pure integer functions over dated schedules.

Amounts are integers in the currency's minor unit; rates are 1e-8 integers (``RATE_SCALE``);
per-share money amounts are 1e-8 currency units per share (``per_share_e8``). Every rounding
is named at the call site (default: exchange fee lines half-up to the cent, US regulatory fees
rounded up to the cent as brokers pass them through).
Sources: ``MARKET_RULES.md`` sections 1.5 (CN taxes/fees), 2.2 (SEC, TAF), 2.3 (borrow),
2.4 (IBKR), 3 (crypto).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from domain.fixed import RATE_SCALE, Rounding, apply_rate, div_round, minor_digits
from domain.markets._dated import Dated

__all__ = [
    "BINANCE_SPOT_VIP0",
    "BINANCE_USDM_VIP0",
    "CN_FEE_TABLES",
    "CN_HANDLING_FEE",
    "CN_REGULATORY_FEE",
    "CN_STAMP_DUTY",
    "CN_TRANSFER_FEE",
    "FINRA_TAF",
    "IBKR_PRO_FIXED",
    "IBKR_PRO_TIERED",
    "RQALPHA_DEFAULT_CN_COMMISSION",
    "SEC_SECTION31",
    "CnFeeTables",
    "CnFees",
    "CommissionSchedule",
    "MakerTaker",
    "OrderCommission",
    "SideRate",
    "TafRate",
    "TieredPerShare",
    "accrue_commission",
    "borrow_fee_minor",
    "cn_exchange_fees",
    "commission_total_minor",
    "finra_taf_minor",
    "ibkr_tiered_schedule",
    "maker_taker_fee_minor",
    "sec_fee_minor",
]

BUY = 1
SELL = -1


def _check_side(side: int) -> None:
    if side not in (BUY, SELL):
        raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side}")


def _check_amount(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


# --- China A-shares ---------------------------------------------------------------------------


class SideRate(msgspec.Struct, frozen=True):
    """A notional rate charged to the buyer and/or the seller."""

    rate_e8: int
    buyer: bool
    seller: bool

    def applies(self, side: int) -> bool:
        return self.buyer if side == BUY else self.seller


# MARKET_RULES.md §1.5 stamp duty (印花税). 0.1% both sides from 2008-04-24 is implied by
# "rate 0.1% since 2008-04-24" + seller-only from 2008-09-19; earlier rates are not in the
# reference and raise RuleNotDefined.
CN_STAMP_DUTY: Dated[SideRate] = Dated.of(
    "CN stamp duty",
    [
        (20080424, SideRate(100_000, buyer=True, seller=True)),
        (20080919, SideRate(100_000, buyer=False, seller=True)),
        (20230828, SideRate(50_000, buyer=False, seller=True)),  # 财政部 税务总局公告2023年第39号
    ],
)
# MARKET_RULES.md §1.5 transfer fee (过户费, ChinaClear), both sides.
CN_TRANSFER_FEE: Dated[SideRate] = Dated.of(
    "CN transfer fee",
    [(20150801, SideRate(2_000, True, True)), (20220429, SideRate(1_000, True, True))],
)
# MARKET_RULES.md §1.5 exchange handling fee (经手费), both sides.
CN_HANDLING_FEE: Dated[SideRate] = Dated.of(
    "CN handling fee",
    [(20150801, SideRate(4_870, True, True)), (20230828, SideRate(3_410, True, True))],
)
# MARKET_RULES.md §1.5 CSRC regulatory fee (证管费) "since 2012": the start day is U (2012-01-01 used).
CN_REGULATORY_FEE: Dated[SideRate] = Dated.of("CN CSRC fee", [(20120101, SideRate(2_000, True, True))])


@dataclass(frozen=True)
class CnFeeTables:
    """The four dated A-share fee tables one run prices its fills with (built-in by default;
    ``domain.markets.cn_fee_rows`` puts a user's rows in front of them)."""

    stamp_duty: Dated[SideRate]
    transfer: Dated[SideRate]
    handling: Dated[SideRate]
    regulatory: Dated[SideRate]


CN_FEE_TABLES = CnFeeTables(CN_STAMP_DUTY, CN_TRANSFER_FEE, CN_HANDLING_FEE, CN_REGULATORY_FEE)


class CnFees(msgspec.Struct, frozen=True):
    """One fill's statutory fee lines (CNY fen), each rounded on its own line."""

    stamp_duty_minor: int
    transfer_minor: int
    handling_minor: int
    regulatory_minor: int

    @property
    def total_minor(self) -> int:
        return self.stamp_duty_minor + self.transfer_minor + self.handling_minor + self.regulatory_minor


def _line(schedule: Dated[SideRate], side: int, day: int, notional_minor: int, rounding: Rounding) -> int:
    rate = schedule.at(day)
    return apply_rate(notional_minor, rate.rate_e8, rounding) if rate.applies(side) else 0


def cn_exchange_fees(
    side: int,
    day: int,
    notional_minor: int,
    *,
    is_fund: bool = False,
    exchange_fees_in_commission: bool = False,
    rounding: Rounding = Rounding.HALF_UP,
    tables: CnFeeTables = CN_FEE_TABLES,
) -> CnFees:
    """Stamp duty (stocks only, by side and date), transfer, handling and CSRC fees for a fill.

    ``exchange_fees_in_commission=True`` zeroes the handling and CSRC lines for brokers whose
    quoted commission is all-in (MARKET_RULES.md §1.5). ``tables`` are the dated rates (a day
    none of them covers raises ``RuleNotDefined`` naming the table and the day).
    """
    _check_side(side)
    _check_amount("notional_minor", notional_minor)
    stamp = 0 if is_fund else _line(tables.stamp_duty, side, day, notional_minor, rounding)
    transfer = _line(tables.transfer, side, day, notional_minor, rounding)
    handling = regulatory = 0
    if not exchange_fees_in_commission:
        handling = _line(tables.handling, side, day, notional_minor, rounding)
        regulatory = _line(tables.regulatory, side, day, notional_minor, rounding)
    return CnFees(stamp, transfer, handling, regulatory)


# --- broker commission with a per-order minimum --------------------------------------------------


class CommissionSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """Commission of one order: ``rate x notional + per_share x qty``, at least ``min_minor``,
    at most ``max_rate_e8 x notional`` when set (the cap wins over the minimum)."""

    currency: str
    rate_e8: int = 0
    per_share_e8: int = 0  # currency units x 1e-8 per share ($0.005 -> 500_000)
    min_minor: int = 0
    max_rate_e8: int | None = None
    rounding: Rounding = Rounding.HALF_UP

    def __post_init__(self) -> None:
        minor_digits(self.currency)
        for name in ("rate_e8", "per_share_e8", "min_minor"):
            _check_amount(name, getattr(self, name))
        if self.max_rate_e8 is not None:
            _check_amount("max_rate_e8", self.max_rate_e8)


def commission_total_minor(
    schedule: CommissionSchedule, notional_minor: int, qty_raw: int, qty_digits: int
) -> int:
    """The commission for an order whose fills add up to this notional and quantity."""
    _check_amount("notional_minor", notional_minor)
    _check_amount("qty_raw", qty_raw)
    if qty_raw == 0:
        return 0
    numerator = notional_minor * schedule.rate_e8 * 10**qty_digits
    numerator += qty_raw * schedule.per_share_e8 * 10 ** minor_digits(schedule.currency)
    fee = max(div_round(numerator, RATE_SCALE * 10**qty_digits, schedule.rounding), schedule.min_minor)
    if schedule.max_rate_e8 is not None:
        fee = min(fee, apply_rate(notional_minor, schedule.max_rate_e8, schedule.rounding))
    return fee


class OrderCommission(msgspec.Struct, frozen=True):
    """Per-order accumulator: what the order's fills so far add up to and were charged."""

    notional_minor: int = 0
    qty_raw: int = 0
    charged_minor: int = 0


def accrue_commission(
    acc: OrderCommission,
    schedule: CommissionSchedule,
    fill_notional_minor: int,
    fill_qty_raw: int,
    qty_digits: int,
) -> tuple[int, OrderCommission]:
    """Commission for one more fill of an order: the minimum is charged once per order.

    Each fill pays ``total(order so far) - already charged``, so the order's fills add up to
    exactly ``commission_total_minor`` of the whole order, whatever the partial-fill split.
    """
    notional = acc.notional_minor + fill_notional_minor
    qty = acc.qty_raw + fill_qty_raw
    total = commission_total_minor(schedule, notional, qty, qty_digits)
    fee = total - acc.charged_minor
    assert fee >= 0, "commission of an order never decreases as it fills"
    return fee, OrderCommission(notional, qty, total)


# Examples, not market rules: a broker's schedule is account configuration (effective date U).
# rqalpha defaults (MARKET_RULES.md §1.5): 0.08%, 5 CNY minimum per order.
RQALPHA_DEFAULT_CN_COMMISSION = CommissionSchedule(currency="CNY", rate_e8=80_000, min_minor=500)
# IBKR Pro Fixed (MARKET_RULES.md §2.4, P: pricing page): $0.005/share, min $1.00, max 1%.
IBKR_PRO_FIXED = CommissionSchedule(
    currency="USD", per_share_e8=500_000, min_minor=100, max_rate_e8=1_000_000, rounding=Rounding.HALF_UP
)


class TieredPerShare(msgspec.Struct, frozen=True):
    """Per-share rate tiers by month-to-date volume: ``(shares_above, per_share_e8)``."""

    tiers: tuple[tuple[int, int], ...]
    min_minor: int
    max_rate_e8: int
    currency: str


# IBKR Pro Tiered, US stocks (MARKET_RULES.md §2.4): volume tiers per month, min $0.35, max 1%.
IBKR_PRO_TIERED = TieredPerShare(
    tiers=(
        (0, 350_000),
        (300_000, 200_000),
        (3_000_000, 150_000),
        (20_000_000, 100_000),
        (100_000_000, 50_000),
    ),
    min_minor=35,
    max_rate_e8=1_000_000,
    currency="USD",
)


def ibkr_tiered_schedule(tiered: TieredPerShare, month_to_date_shares: int) -> CommissionSchedule:
    """The commission schedule for an order given the month's volume before it (exchange,
    clearing and pass-through fees of the tiered plan are separate lines, not modelled here)."""
    _check_amount("month_to_date_shares", month_to_date_shares)
    per_share = tiered.tiers[0][1]
    for shares_above, rate in tiered.tiers:
        if month_to_date_shares >= shares_above + (1 if shares_above else 0):
            per_share = rate
    return CommissionSchedule(
        currency=tiered.currency,
        per_share_e8=per_share,
        min_minor=tiered.min_minor,
        max_rate_e8=tiered.max_rate_e8,
    )


# --- US regulatory fees (sell side only) -------------------------------------------------------

# MARKET_RULES.md §2.2 SEC Section 31: rate per $1 of covered sales x 1e8 ($20.60 per $1M -> 2060).
# Rates before 2023-02-27 are not in the reference: a backtest before then must supply its own.
SEC_SECTION31: Dated[int] = Dated.of(
    "US SEC Section 31 fee",
    [(20230227, 800), (20240522, 2_780), (20250514, 0), (20260404, 2_060)],
)


class TafRate(msgspec.Struct, frozen=True):
    per_share_e8: int  # USD x 1e-8 per share ($0.000195 -> 19_500)
    cap_minor: int  # cents per trade


# MARKET_RULES.md §2.2 FINRA TAF (SR-FINRA-2024-019). The proposed 2026-10-01..12-31 fee holiday
# (SR-FINRA-2026-021, "verify before use") is deliberately NOT encoded.
FINRA_TAF: Dated[TafRate] = Dated.of(
    "US FINRA TAF",
    [
        (20240101, TafRate(16_600, 830)),
        (20260101, TafRate(19_500, 979)),
        (20270101, TafRate(23_200, 1_161)),
        (20280101, TafRate(24_000, 1_205)),
    ],
)


def sec_fee_minor(
    side: int,
    day: int,
    notional_minor: int,
    *,
    schedule: Dated[int] = SEC_SECTION31,
    rounding: Rounding = Rounding.CEILING,
) -> int:
    """SEC Section 31 fee on a sale (cents); buys pay nothing."""
    _check_side(side)
    _check_amount("notional_minor", notional_minor)
    if side == BUY:
        return 0
    return apply_rate(notional_minor, schedule.at(day), rounding)


def finra_taf_minor(
    side: int,
    day: int,
    qty_raw: int,
    qty_digits: int,
    *,
    schedule: Dated[TafRate] = FINRA_TAF,
    rounding: Rounding = Rounding.CEILING,
) -> int:
    """FINRA TAF on a sale of ``qty`` shares (cents), capped per trade; buys pay nothing."""
    _check_side(side)
    _check_amount("qty_raw", qty_raw)
    if side == BUY:
        return 0
    rate = schedule.at(day)
    fee = div_round(qty_raw * rate.per_share_e8 * 100, RATE_SCALE * 10**qty_digits, rounding)
    return min(fee, rate.cap_minor)


def borrow_fee_minor(value_minor: int, annual_rate_e8: int, days: int, rounding: Rounding) -> int:
    """Short borrow fee accrual: value x annual rate x days / 360 (MARKET_RULES.md §2.3)."""
    _check_amount("value_minor", value_minor)
    _check_amount("annual_rate_e8", annual_rate_e8)
    _check_amount("days", days)
    return div_round(value_minor * annual_rate_e8 * days, RATE_SCALE * 360, rounding)


# --- crypto maker / taker ----------------------------------------------------------------------


class MakerTaker(msgspec.Struct, frozen=True):
    maker_e8: int
    taker_e8: int

    def __post_init__(self) -> None:
        _check_amount("maker_e8", self.maker_e8)  # rebates (negative maker fees) not modelled
        _check_amount("taker_e8", self.taker_e8)


# Examples (MARKET_RULES.md §3): an account's real rates come from the venue API.
BINANCE_SPOT_VIP0 = MakerTaker(maker_e8=100_000, taker_e8=100_000)  # 0.10% / 0.10% (S)
BINANCE_USDM_VIP0 = MakerTaker(maker_e8=20_000, taker_e8=50_000)  # 0.02% / 0.05% (taker U)


def maker_taker_fee_minor(
    schedule: MakerTaker, is_maker: bool, notional_minor: int, rounding: Rounding
) -> int:
    """Trading fee in the quote currency's minor unit."""
    _check_amount("notional_minor", notional_minor)
    rate = schedule.maker_e8 if is_maker else schedule.taker_e8
    return apply_rate(notional_minor, rate, rounding)
