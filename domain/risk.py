"""Risk rules as pure functions over a decision's target weights (integers, 1e-8).

Each rule returns the weights it lets through and a ``RuleOutcome`` that the kernel
journals as a ``RiskVerdict`` event, so every "no" (and every "yes") is auditable.
"""

from __future__ import annotations

import msgspec

from domain.fixed import RATE_SCALE, Rounding, div_round

__all__ = ["RiskLimits", "RuleOutcome", "check_gross_leverage", "check_name_cap"]


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits as 1e-8 fractions of NAV: ``gross_max_e8=150_000_000`` is 1.5x."""

    gross_max_e8: int = 150_000_000
    name_max_e8: int = 100_000_000

    def __post_init__(self) -> None:
        if self.gross_max_e8 <= 0:
            raise ValueError("gross_max_e8 must be positive")
        if self.name_max_e8 <= 0:
            raise ValueError("name_max_e8 must be positive")


class RuleOutcome(msgspec.Struct, frozen=True):
    rule: str
    action: str  # "pass" | "clip" | "scale"
    limit_e8: int
    observed_e8: int
    instrument_ids: list[int]
    detail: str


def check_name_cap(
    instrument_ids: list[int], weights_e8: list[int], name_max_e8: int
) -> tuple[list[int], RuleOutcome]:
    """Clip every |weight| above the per-name cap to the cap (sign kept)."""
    clipped_ids: list[int] = []
    result: list[int] = []
    largest = 0
    for iid, weight in zip(instrument_ids, weights_e8, strict=True):
        largest = max(largest, abs(weight))
        if abs(weight) > name_max_e8:
            clipped_ids.append(iid)
            weight = name_max_e8 if weight > 0 else -name_max_e8
        result.append(weight)
    action = "clip" if clipped_ids else "pass"
    detail = f"clipped {len(clipped_ids)} names to the cap" if clipped_ids else ""
    return result, RuleOutcome("name_cap", action, name_max_e8, largest, clipped_ids, detail)


def check_gross_leverage(
    instrument_ids: list[int], weights_e8: list[int], gross_max_e8: int
) -> tuple[list[int], RuleOutcome]:
    """Scale the whole vector down (toward zero) when the gross exposure exceeds the cap."""
    gross = sum(abs(weight) for weight in weights_e8)
    if gross <= gross_max_e8:
        return list(weights_e8), RuleOutcome("gross_leverage", "pass", gross_max_e8, gross, [], "")
    scaled = [div_round(weight * gross_max_e8, gross, Rounding.DOWN) for weight in weights_e8]
    factor_e8 = div_round(gross_max_e8 * RATE_SCALE, gross, Rounding.DOWN)
    detail = f"scaled by {factor_e8}e-8"
    outcome = RuleOutcome("gross_leverage", "scale", gross_max_e8, gross, list(instrument_ids), detail)
    return scaled, outcome
