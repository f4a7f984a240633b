"""Corporate actions in integers: cash dividends, bonus/capitalisation shares and splits,
rights issues, the A-share ex-rights reference price, and ledger postings for each effect.

Sources: ``MARKET_RULES.md`` section 1.7 (mechanics, rqalpha HALF_UP share rounding, ex-rights
formula) and 1.5 (dividend income tax by holding period).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math

import msgspec

from domain.events import PostingRecord
from domain.fixed import RATE_SCALE, Rounding, apply_rate, div_round, from_decimal_text, minor_digits
from domain.ledger import Position, assert_balanced, cash_account, inventory_account
from domain.markets._dated import Dated, day_to_date

__all__ = [
    "CN_DIVIDEND_TAX",
    "CnCorporateAction",
    "CorporateAction",
    "DividendTaxTier",
    "Lots",
    "TaxLot",
    "apply_rights",
    "apply_split",
    "cn_dividend_tax_minor",
    "cn_dividend_tax_rate_e8",
    "dividend_ex_postings",
    "dividend_minor",
    "dividend_paid_postings",
    "dividend_receivable_account",
    "dividend_tax_postings",
    "ex_right_reference_price",
    "lots_buy",
    "lots_dividend",
    "lots_sell",
    "lots_split",
    "lots_total",
    "rights_affordable",
    "rights_cost_minor",
    "rights_entitlement",
    "rights_shares",
    "rights_subscription_postings",
    "split_quantity",
]

PER10_DIGITS = 4
"""Per-10-share fields (shares or CNY) are integers in 1e-4 units, as the hikyuu table prints them."""


def _per10(text: str) -> int:
    value = from_decimal_text(text, PER10_DIGITS, Rounding.HALF_EVEN)
    if from_decimal_text(text, PER10_DIGITS + 6, Rounding.HALF_EVEN) != value * 10**6:
        raise ValueError(f"{text!r} has more than {PER10_DIGITS} decimals")
    if value < 0:
        raise ValueError(f"corporate-action amounts must not be negative: {text!r}")
    return value


class CnCorporateAction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One A-share 权息 record, all amounts per 10 shares in 1e-4 units (3 shares -> 30_000)."""

    ex_day: int
    bonus_per10_e4: int = 0  # 送股
    capitalization_per10_e4: int = 0  # 转增
    rights_per10_e4: int = 0  # 配股
    rights_price_e4: int = 0  # 配股价, CNY x 1e4
    cash_per10_e4: int = 0  # 派息 (pre-tax), CNY x 1e4

    @classmethod
    def from_text(
        cls,
        ex_day: int,
        *,
        bonus: str = "0",
        capitalization: str = "0",
        rights: str = "0",
        rights_price: str = "0",
        cash: str = "0",
    ) -> CnCorporateAction:
        """From the decimal text of a 权息 table (exactly, no float)."""
        return cls(
            ex_day=ex_day,
            bonus_per10_e4=_per10(bonus),
            capitalization_per10_e4=_per10(capitalization),
            rights_per10_e4=_per10(rights),
            rights_price_e4=_per10(rights_price),
            cash_per10_e4=_per10(cash),
        )

    @property
    def share_ratio(self) -> tuple[int, int]:
        """Shares after / before from bonus + capitalisation: 10送3 -> (130_000, 100_000)."""
        base = 10 * 10**PER10_DIGITS
        return base + self.bonus_per10_e4 + self.capitalization_per10_e4, base

    @property
    def affects_price(self) -> bool:
        """False for share-count-only records (and a rights price without rights shares)."""
        return bool(
            self.bonus_per10_e4 or self.capitalization_per10_e4 or self.rights_per10_e4 or self.cash_per10_e4
        )


def ex_right_reference_price(
    prev_close_raw: int, action: CnCorporateAction, price_digits: int, tick_raw: int
) -> int:
    """除权除息参考价 = (prev close - cash + rights price x rights ratio) / (1 + share ratio +
    rights ratio), rounded half-up to the tick, exactly in integers. It replaces the previous
    close as the reference for the ex-date's price limits.
    """
    if prev_close_raw <= 0:
        raise ValueError(f"previous close must be positive, got {prev_close_raw}")
    # Per 10 shares, numerator in CNY x 1e8, denominator in shares x 1e4.
    numerator = prev_close_raw * 10 * 10 ** (2 * PER10_DIGITS - price_digits)
    numerator += action.rights_price_e4 * action.rights_per10_e4 - action.cash_per10_e4 * 10**PER10_DIGITS
    denominator = 10 * 10**PER10_DIGITS + action.bonus_per10_e4 + action.capitalization_per10_e4
    denominator += action.rights_per10_e4
    if numerator <= 0:
        raise ValueError(f"cash dividend exceeds the previous close: {action}")
    # ref_raw = numerator / 1e8 / (denominator / 1e4) x 10**price_digits, on the tick grid.
    scale = denominator * 10**PER10_DIGITS * tick_raw
    return div_round(numerator * 10**price_digits, scale, Rounding.HALF_UP) * tick_raw


def split_quantity(qty_raw: int, ratio_new: int, ratio_old: int, rounding: Rounding) -> int:
    """Quantity after a split / bonus: ``qty x new / old`` exactly, rounded as named.

    6,000 shares x 1.15 (ratio 115/100) is 6,900 exactly, never 6,899.
    """
    if ratio_new <= 0 or ratio_old <= 0:
        raise ValueError(f"split ratio must be positive, got {ratio_new}/{ratio_old}")
    return div_round(qty_raw * ratio_new, ratio_old, rounding)


def apply_split(position: Position, ratio_new: int, ratio_old: int, rounding: Rounding) -> Position:
    """Bonus shares / split: more shares, same total cost (the average cost falls by the ratio).

    No cash moves, so there are no postings; the inventory account keeps its cost balance.
    """
    return Position(split_quantity(position.qty_raw, ratio_new, ratio_old, rounding), position.cost_minor)


def dividend_minor(
    qty_raw: int,
    qty_digits: int,
    per_share_raw: int,
    per_share_digits: int,
    currency: str,
    rounding: Rounding,
) -> int:
    """``qty x amount per share`` in the currency's minor unit.

    For an A-share record pass ``per_share_raw=action.cash_per10_e4, per_share_digits=5``
    (per 10 shares at 1e-4 is per share at 1e-5).
    """
    numerator = qty_raw * per_share_raw * 10 ** minor_digits(currency)
    return div_round(numerator, 10 ** (qty_digits + per_share_digits), rounding)


def rights_entitlement(qty_raw: int, action: CnCorporateAction, rounding: Rounding) -> int:
    """Rights shares a holding of ``qty_raw`` shares may subscribe (qty_digits 0)."""
    return div_round(qty_raw * action.rights_per10_e4, 10 * 10**PER10_DIGITS, rounding)


def rights_shares(qty_raw: int, rights_to: int, rights_from: int, qty_digits: int, rounding: Rounding) -> int:
    """Rights shares (raw units, whole shares) a holding of ``qty_raw`` may subscribe at the
    data-set ratio ``rights_to / rights_from`` new shares per held share: 10配3 on 10,000 shares
    -> 3,000. A short or empty holding has no entitlement."""
    if rights_to < 0 or rights_from <= 0:
        raise ValueError(f"rights ratio must be non-negative over positive, got {rights_to}/{rights_from}")
    if qty_raw <= 0:
        return 0
    unit: int = 10**qty_digits
    return div_round(qty_raw * rights_to, rights_from * unit, rounding) * unit


def rights_cost_minor(qty_raw: int, qty_digits: int, price_e8: int, currency: str) -> int:
    """What ``qty_raw`` rights shares cost at ``price_e8`` (currency x 1e-8 per share), rounded
    up to the minor unit (the subscriber pays at least the exact amount)."""
    return dividend_minor(qty_raw, qty_digits, price_e8, 8, currency, Rounding.CEILING)


def rights_affordable(cash_minor: int, qty_digits: int, price_e8: int, currency: str) -> int:
    """The most whole rights shares (raw units) ``cash_minor`` pays for at ``price_e8``:
    the largest n with ``rights_cost_minor(n) <= cash_minor``."""
    if price_e8 <= 0:
        raise ValueError(f"rights price must be positive, got {price_e8}")
    if cash_minor <= 0:
        return 0
    # n whole shares cost n x price / 1e8 x 10**minor <= cash  <=>  n <= cash x 1e8 / (price x 10**minor)
    shares = div_round(cash_minor * 10**8, price_e8 * 10 ** minor_digits(currency), Rounding.DOWN)
    unit: int = 10**qty_digits
    return shares * unit


def apply_rights(position: Position, rights_qty: int, cost_minor: int) -> Position:
    """A subscribed rights issue adds shares at the subscription cost."""
    if rights_qty < 0 or cost_minor < 0:
        raise ValueError("rights quantity and cost must not be negative")
    return Position(position.qty_raw + rights_qty, position.cost_minor + cost_minor)


# --- postings -----------------------------------------------------------------------------------


def dividend_receivable_account(instrument_id: int, ex_day: int = 0) -> str:
    """The receivable of one instrument's dividends, or of one ex-date's dividend (``ex_day``)."""
    account = f"assets:receivable:dividend:{instrument_id}"
    return f"{account}:{ex_day}" if ex_day else account


def dividend_ex_postings(
    instrument_id: int, amount_minor: int, currency: str, ex_day: int = 0
) -> list[PostingRecord]:
    """On the ex-date: the dividend becomes a receivable and income (paid on the pay date)."""
    postings = [
        PostingRecord(dividend_receivable_account(instrument_id, ex_day), currency, amount_minor),
        PostingRecord(f"income:dividend:{currency}", currency, -amount_minor),
    ]
    assert_balanced(postings)
    return postings


def dividend_paid_postings(
    instrument_id: int, amount_minor: int, currency: str, ex_day: int = 0
) -> list[PostingRecord]:
    """On the pay date: the receivable turns into cash."""
    postings = [
        PostingRecord(cash_account(currency), currency, amount_minor),
        PostingRecord(dividend_receivable_account(instrument_id, ex_day), currency, -amount_minor),
    ]
    assert_balanced(postings)
    return postings


def dividend_tax_postings(tax_minor: int, currency: str) -> list[PostingRecord]:
    """Dividend tax withheld from cash (A-shares: at the sale, MARKET_RULES.md §1.5)."""
    postings = [
        PostingRecord(f"expenses:tax:dividend:{currency}", currency, tax_minor),
        PostingRecord(cash_account(currency), currency, -tax_minor),
    ]
    assert_balanced(postings)
    return postings


def rights_subscription_postings(instrument_id: int, cost_minor: int, currency: str) -> list[PostingRecord]:
    """Paying for subscribed rights shares: inventory at cost against cash."""
    postings = [
        PostingRecord(inventory_account(instrument_id), currency, cost_minor),
        PostingRecord(cash_account(currency), currency, -cost_minor),
    ]
    assert_balanced(postings)
    return postings


# --- A-share dividend income tax by holding period -----------------------------------------------


class DividendTaxTier(msgspec.Struct, frozen=True):
    """Holding up to and including ``months_max`` months pays ``rate_e8`` (None = no upper bound)."""

    months_max: int | None
    rate_e8: int


# MARKET_RULES.md §1.5 dividend income tax (individuals), record dates from 2015-09-08
# (财税[2015]101号). Earlier record dates are not in the reference.
CN_DIVIDEND_TAX: Dated[tuple[DividendTaxTier, ...]] = Dated.of(
    "CN dividend tax",
    [
        (
            20150908,
            (
                DividendTaxTier(1, 20 * RATE_SCALE // 100),
                DividendTaxTier(12, 10 * RATE_SCALE // 100),
                DividendTaxTier(None, 0),
            ),
        )
    ],
)


def _add_months(date: dt.date, months: int) -> dt.date:
    month_index = date.month - 1 + months
    year, month = date.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(date.day, calendar.monthrange(year, month)[1]))


def cn_dividend_tax_rate_e8(record_day: int, acquired_day: int, sold_day: int) -> int:
    """Tax rate for a lot bought ``acquired_day`` and sold ``sold_day``; the holding period runs
    from the acquisition day to the day before the sale (U: counting convention)."""
    acquired, sold = day_to_date(acquired_day), day_to_date(sold_day)
    if sold <= acquired:
        raise ValueError(f"sold_day {sold_day} must be after acquired_day {acquired_day}")
    held_until = sold - dt.timedelta(days=1)
    for tier in CN_DIVIDEND_TAX.at(record_day):
        if tier.months_max is None or held_until <= _add_months(acquired, tier.months_max):
            return tier.rate_e8
    raise AssertionError("the last dividend-tax tier must be unbounded")


def cn_dividend_tax_minor(
    dividend_minor_amount: int, record_day: int, acquired_day: int, sold_day: int, rounding: Rounding
) -> int:
    """Tax withheld at sale on the dividend a lot received."""
    rate = cn_dividend_tax_rate_e8(record_day, acquired_day, sold_day)
    return apply_rate(dividend_minor_amount, rate, rounding)


# --- data-set corporate actions (any market) ----------------------------------------------------

CASH_E8_DIGITS = 8
"""``CorporateAction.cash_e8`` is currency units x 1e-8 per share (0.47 USD -> 47_000_000)."""


class CorporateAction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of a data set's ``actions.parquet``: what a holder of one share before the
    ex-date receives on it.

    ``split_to / split_from`` is the exact share ratio (7-for-1 -> 7/1; A-share 10送3 ->
    13/10); ``cash_e8`` the pre-tax cash per share held before the ex-date, in currency units
    x 1e-8; ``pay_day`` the day the cash arrives (0: on the ex-date). A rights issue:
    ``rights_to / rights_from`` new shares offered per share held before the ex-date (10配3
    -> 3/10; ``0`` = none) at ``rights_price_e8`` per share (currency x 1e-8). ``reform``: a
    share-structure reform payment (股权分置改革对价, SPDB 2006-05-12 10送3): bonus shares the
    non-tradable holders pay to tradable ones, so a holder's shares grow by the ratio but the
    total share count does not and the price has no ex-rights reference; only a share ratio
    (no cash, no rights) can be one.
    """

    instrument_id: int
    ex_day: int
    pay_day: int = 0
    cash_e8: int = 0
    split_to: int = 1
    split_from: int = 1
    rights_to: int = 0
    rights_from: int = 1
    rights_price_e8: int = 0
    reform: bool = False

    def __post_init__(self) -> None:
        day_to_date(self.ex_day)
        if self.reform and (self.cash_e8 or self.rights_to or self.split_to <= self.split_from):
            raise ValueError(
                f"instrument {self.instrument_id} {self.ex_day}: a reform row is bonus shares only, got "
                f"split {self.split_to}/{self.split_from}, cash_e8={self.cash_e8}, rights_to={self.rights_to}"
            )
        if self.pay_day:
            day_to_date(self.pay_day)
            if self.pay_day < self.ex_day:
                raise ValueError(
                    f"instrument {self.instrument_id}: pay day {self.pay_day} before ex-date {self.ex_day}"
                )
        if self.cash_e8 < 0:
            raise ValueError(f"instrument {self.instrument_id} {self.ex_day}: cash_e8 must not be negative")
        if self.split_to <= 0 or self.split_from <= 0:
            raise ValueError(
                f"instrument {self.instrument_id} {self.ex_day}: split ratio must be positive, "
                f"got {self.split_to}/{self.split_from}"
            )
        if self.rights_to < 0 or self.rights_from <= 0 or self.rights_price_e8 < 0:
            raise ValueError(
                f"instrument {self.instrument_id} {self.ex_day}: rights ratio {self.rights_to}/"
                f"{self.rights_from} at {self.rights_price_e8} must be non-negative over positive"
            )
        if bool(self.rights_to) != bool(self.rights_price_e8):
            raise ValueError(
                f"instrument {self.instrument_id} {self.ex_day}: a rights issue needs both a ratio and a "
                f"price, got {self.rights_to}/{self.rights_from} at rights_price_e8={self.rights_price_e8}"
            )
        if not self.cash_e8 and self.split_to == self.split_from and not self.rights_to:
            raise ValueError(f"instrument {self.instrument_id} {self.ex_day}: the action changes nothing")

    @property
    def splits(self) -> bool:
        return self.split_to != self.split_from

    @property
    def rights(self) -> bool:
        return self.rights_to > 0

    def to_cn(self) -> CnCorporateAction:
        """The A-share per-10 form (for ``ex_right_reference_price``); the ratio and the cash must
        be exact at 1e-4 per 10 shares, as exchanges publish them."""
        base = 10 * 10**PER10_DIGITS
        bonus, rest = divmod((self.split_to - self.split_from) * base, self.split_from)
        cash, cash_rest = divmod(self.cash_e8, 10 ** (CASH_E8_DIGITS - PER10_DIGITS - 1))
        rights, rights_rest = divmod(self.rights_to * base, self.rights_from)
        price, price_rest = divmod(self.rights_price_e8, 10 ** (CASH_E8_DIGITS - PER10_DIGITS))
        if rest or cash_rest or bonus < 0 or rights_rest or price_rest:
            raise ValueError(
                f"instrument {self.instrument_id} {self.ex_day}: ratio {self.split_to}/{self.split_from}, "
                f"cash_e8={self.cash_e8} or rights {self.rights_to}/{self.rights_from} at "
                f"{self.rights_price_e8} is not an A-share per-10 action at 1e-4"
            )
        return CnCorporateAction(
            ex_day=self.ex_day,
            bonus_per10_e4=bonus,
            cash_per10_e4=cash,
            rights_per10_e4=rights,
            rights_price_e4=price,
        )

    @classmethod
    def from_cn(cls, instrument_id: int, action: CnCorporateAction, pay_day: int = 0) -> CorporateAction:
        """From an A-share record (送 and 转 become one share ratio; 配 the rights ratio and price)."""
        base = 10 * 10**PER10_DIGITS
        to, frm = base + action.bonus_per10_e4 + action.capitalization_per10_e4, base
        common = math.gcd(to, frm)
        rights_common = math.gcd(action.rights_per10_e4, base)
        return cls(
            instrument_id=instrument_id,
            ex_day=action.ex_day,
            pay_day=pay_day,
            cash_e8=action.cash_per10_e4 * 10 ** (CASH_E8_DIGITS - PER10_DIGITS - 1),
            split_to=to // common,
            split_from=frm // common,
            rights_to=action.rights_per10_e4 // rights_common,
            rights_from=base // rights_common,
            rights_price_e8=(
                action.rights_price_e4 * 10 ** (CASH_E8_DIGITS - PER10_DIGITS)
                if action.rights_per10_e4
                else 0
            ),
        )


# --- A-share dividend tax at the sale, FIFO by lot (MARKET_RULES.md §1.5) -------------------------


class TaxLot(msgspec.Struct, frozen=True, array_like=True):
    """Shares acquired in one session and the pre-tax dividends they received, as
    ``(record_day, amount_minor)`` pairs (only dividends whose record day has a tax rule)."""

    acquired_day: int
    qty: int
    dividends: tuple[tuple[int, int], ...] = ()


Lots = tuple[TaxLot, ...]


def lots_total(lots: Lots) -> int:
    return sum(lot.qty for lot in lots)


def lots_buy(lots: Lots, day: int, qty: int) -> Lots:
    """A buy fill opens (or, same session and no dividends yet, extends) the newest lot."""
    if qty <= 0:
        raise ValueError(f"buy quantity must be positive, got {qty}")
    if lots and lots[-1].acquired_day == day and not lots[-1].dividends:
        return (*lots[:-1], TaxLot(day, lots[-1].qty + qty))
    if lots and lots[-1].acquired_day > day:
        raise ValueError(f"lot acquired {lots[-1].acquired_day} is after the buy on {day}")
    return (*lots, TaxLot(day, qty))


def lots_dividend(lots: Lots, record_day: int, cash_e8: int, qty_digits: int, currency: str) -> Lots:
    """Attach a dividend to each lot. Amounts are allocated on the running quantity, so the lots
    add up exactly to ``dividend_minor`` of the whole holding (rounded toward zero)."""
    out = []
    running = received = 0
    for lot in lots:
        running += lot.qty
        upto = dividend_minor(running, qty_digits, cash_e8, 8, currency, Rounding.DOWN)
        share, received = upto - received, upto
        out.append(
            lot if not share else TaxLot(lot.acquired_day, lot.qty, (*lot.dividends, (record_day, share)))
        )
    return tuple(out)


def lots_split(lots: Lots, split_to: int, split_from: int) -> Lots:
    """Scale lots by a share ratio (bonus shares keep their lot's acquisition day, U). Allocated
    on the running quantity, so the lots add up to ``split_quantity(total, ..., DOWN)``; a lot
    left with no whole share is dropped (its fraction was paid in cash)."""
    out = []
    running = kept = 0
    for lot in lots:
        running += lot.qty
        upto = split_quantity(running, split_to, split_from, Rounding.DOWN)
        qty, kept = upto - kept, upto
        if qty:
            out.append(TaxLot(lot.acquired_day, qty, lot.dividends))
    return tuple(out)


def lots_sell(lots: Lots, sold_day: int, qty: int) -> tuple[Lots, int]:
    """Consume ``qty`` shares first-in first-out; return the lots left and the dividend tax due:
    each consumed share of a lot's dividend (pro rata, half-even) taxed at the holding-period
    rate of its record day, each line rounded half-up to the minor unit."""
    if qty <= 0:
        raise ValueError(f"sell quantity must be positive, got {qty}")
    if qty > lots_total(lots):
        raise ValueError(f"selling {qty} shares but the lots hold {lots_total(lots)}")
    remaining = qty
    tax = 0
    out = []
    for lot in lots:
        take = min(lot.qty, remaining)
        remaining -= take
        if not take:
            out.append(lot)
            continue
        left = lot.qty - take
        kept = []
        for record_day, amount in lot.dividends:
            keep = div_round(amount * left, lot.qty, Rounding.HALF_EVEN)
            consumed = amount - keep
            if consumed:
                tax += cn_dividend_tax_minor(
                    consumed, record_day, lot.acquired_day, sold_day, Rounding.HALF_UP
                )
            if keep:
                kept.append((record_day, keep))
        if left:
            out.append(TaxLot(lot.acquired_day, left, tuple(kept)))
    return tuple(out), tax
