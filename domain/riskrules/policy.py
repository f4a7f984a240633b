"""The risk policy: one typed value, written once as TOML, run the same in backtest, paper and live.

Portfolio limits are 1e-8 fractions of NAV (``RATE_SCALE``): ``150_000_000`` is 1.5x. Order limits
are in the order's own units (money in the NAV currency's minor unit, quantity in the instrument's
raw units) and the price band in 1e-8 of the last price. Every rule names its action:

* ``reject`` -- the names that breach keep their current exposure (never more than the target);
* ``clip``   -- each breaching name / group / side is cut back to the limit;
* ``scale``  -- the whole vector is scaled toward zero until the rule holds.

``policy_from_mapping`` turns the parsed TOML (``tomllib.load`` in the caller) into a ``RiskPolicy``
and names the offending key on every error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = [
    "GREEK_RULES",
    "LIMIT_E8_MAX",
    "GreekLimit",
    "GreekLimits",
    "OrderLimit",
    "PolicyError",
    "PortfolioLimit",
    "PriceBand",
    "RiskPolicy",
    "RuleAction",
    "policy_from_mapping",
    "policy_to_mapping",
]

LIMIT_E8_MAX = 2_000_000_000
"""Largest portfolio limit / weight magnitude (20x NAV): keeps every product in int64."""


class PolicyError(ValueError):
    """A policy value that cannot be used; the message names the key (``sector.limit_e8``)."""


class RuleAction(enum.Enum):
    REJECT = "reject"
    CLIP = "clip"
    SCALE = "scale"


class PortfolioLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit_e8: int
    action: RuleAction


class OrderLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``limit`` is in minor units (notional) or raw quantity units; 0 disables the rule."""

    limit: int
    action: RuleAction


class PriceBand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Reject (or clip the limit price onto) orders priced beyond ``band_e8`` of the last price."""

    band_e8: int
    action: RuleAction


class GreekLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A cap on an option book's greek exposure in minor units of the NAV currency; 0 disables."""

    limit: int
    action: RuleAction


_GREEK_OFF = GreekLimit(limit=0, action=RuleAction.CLIP)


class GreekLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Cash delta, gamma (per 1% move) and vega (per vol point) caps: per underlying and in total.

    All disabled by default; see ``domain.riskrules.greeks`` for the measures."""

    delta_underlying: GreekLimit = _GREEK_OFF
    gamma_underlying: GreekLimit = _GREEK_OFF
    vega_underlying: GreekLimit = _GREEK_OFF
    delta_total: GreekLimit = _GREEK_OFF
    gamma_total: GreekLimit = _GREEK_OFF
    vega_total: GreekLimit = _GREEK_OFF


GREEK_RULES = (
    "delta_underlying",
    "gamma_underlying",
    "vega_underlying",
    "delta_total",
    "gamma_total",
    "vega_total",
)


def _portfolio(limit_e8: int, action: RuleAction) -> PortfolioLimit:
    return PortfolioLimit(limit_e8=limit_e8, action=action)


class RiskPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Defaults follow issue 6: 1.5x gross/net, 10% name, 30% sector, 60% country, 0.5x perp side."""

    gross_leverage: PortfolioLimit = _portfolio(150_000_000, RuleAction.SCALE)
    net_leverage: PortfolioLimit = _portfolio(150_000_000, RuleAction.SCALE)
    name: PortfolioLimit = _portfolio(10_000_000, RuleAction.CLIP)
    sector: PortfolioLimit = _portfolio(30_000_000, RuleAction.CLIP)
    country: PortfolioLimit = _portfolio(60_000_000, RuleAction.CLIP)
    perp_side: PortfolioLimit = _portfolio(50_000_000, RuleAction.CLIP)
    order_notional: OrderLimit = OrderLimit(limit=0, action=RuleAction.CLIP)
    order_qty: OrderLimit = OrderLimit(limit=0, action=RuleAction.CLIP)
    price_band: PriceBand = PriceBand(band_e8=0, action=RuleAction.REJECT)
    greeks: GreekLimits = GreekLimits()


PORTFOLIO_RULES = ("name", "sector", "country", "perp_side", "gross_leverage", "net_leverage")
ORDER_RULES = ("order_notional", "order_qty", "price_band")


def _check_int(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise PolicyError(f"{key}: {value} is outside [{low}, {high}]")
    return value


def _check_action(key: str, value: object, allowed: tuple[RuleAction, ...]) -> RuleAction:
    names = [action.value for action in allowed]
    if value not in names:
        raise PolicyError(f"{key}: action must be one of {names}, got {value!r}")
    return RuleAction(value)


def _table(key: str, raw: object, fields: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{key}: expected a table, got {type(raw).__name__}")
    for field in sorted(raw):
        if field not in fields:
            raise PolicyError(f"{key}.{field}: unknown key (expected one of {sorted(fields)})")
    return raw


def _portfolio_rule(key: str, raw: object, default: PortfolioLimit) -> PortfolioLimit:
    table = _table(key, raw, frozenset({"limit_e8", "action"}))
    limit = _check_int(f"{key}.limit_e8", table.get("limit_e8", default.limit_e8), 1, LIMIT_E8_MAX)
    action = _check_action(f"{key}.action", table.get("action", default.action.value), tuple(RuleAction))
    return PortfolioLimit(limit_e8=limit, action=action)


def _order_rule(key: str, raw: object, default: OrderLimit) -> OrderLimit:
    table = _table(key, raw, frozenset({"limit", "action"}))
    limit = _check_int(f"{key}.limit", table.get("limit", default.limit), 0, 2**62)
    allowed = (RuleAction.REJECT, RuleAction.CLIP)
    action = _check_action(f"{key}.action", table.get("action", default.action.value), allowed)
    return OrderLimit(limit=limit, action=action)


def _band_rule(key: str, raw: object, default: PriceBand) -> PriceBand:
    table = _table(key, raw, frozenset({"band_e8", "action"}))
    band = _check_int(f"{key}.band_e8", table.get("band_e8", default.band_e8), 0, 100_000_000)
    allowed = (RuleAction.REJECT, RuleAction.CLIP)
    action = _check_action(f"{key}.action", table.get("action", default.action.value), allowed)
    return PriceBand(band_e8=band, action=action)


def _greek_rules(key: str, raw: object) -> GreekLimits:
    table = _table(key, raw, frozenset(GREEK_RULES))
    default = GreekLimits()
    values: dict[str, GreekLimit] = {}
    for name in GREEK_RULES:
        rule_key = f"{key}.{name}"
        fallback: GreekLimit = getattr(default, name)
        rule = _table(rule_key, table.get(name, {}), frozenset({"limit", "action"}))
        limit = _check_int(f"{rule_key}.limit", rule.get("limit", fallback.limit), 0, 2**62)
        action = _check_action(
            f"{rule_key}.action", rule.get("action", fallback.action.value), tuple(RuleAction)
        )
        values[name] = GreekLimit(limit=limit, action=action)
    return GreekLimits(**values)


def policy_from_mapping(raw: Mapping[str, Any], *, prefix: str = "") -> RiskPolicy:
    """Validate a parsed TOML table (e.g. the ``[risk]`` table) into a ``RiskPolicy``.

    Missing rules and keys take the defaults; unknown keys, wrong types, out-of-range limits
    and actions a rule cannot take raise ``PolicyError`` naming the key (``prefix`` is
    prepended, e.g. ``"risk."``).
    """
    default = RiskPolicy()
    known = frozenset((*PORTFOLIO_RULES, *ORDER_RULES, "greeks"))
    _table(prefix.rstrip(".") or "policy", raw, known)
    values: dict[str, Any] = {}
    for key in PORTFOLIO_RULES:
        values[key] = _portfolio_rule(f"{prefix}{key}", raw.get(key, {}), getattr(default, key))
    for key in ("order_notional", "order_qty"):
        values[key] = _order_rule(f"{prefix}{key}", raw.get(key, {}), getattr(default, key))
    values["price_band"] = _band_rule(f"{prefix}price_band", raw.get("price_band", {}), default.price_band)
    values["greeks"] = _greek_rules(f"{prefix}greeks", raw.get("greeks", {}))
    return RiskPolicy(**values)


def policy_to_mapping(policy: RiskPolicy) -> dict[str, Any]:
    """The policy as plain builtins (round-trips through ``policy_from_mapping``; for journaling)."""
    result: dict[str, Any] = msgspec.to_builtins(policy)
    return result
