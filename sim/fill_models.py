"""Parameters of the simulated venue: slippage, commission, participation."""

from __future__ import annotations

import msgspec

__all__ = ["FillModel"]


class FillModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates are integers in units of 1e-8 (``100_000`` = 0.1% = 10 bps)."""

    slippage_e8: int = 0
    commission_e8: int = 100_000
    commission_min_minor: int = 0
    participation_e8: int = 0  # 0 = fill the whole order; else cap at this share of bar volume

    def __post_init__(self) -> None:
        for name in ("slippage_e8", "commission_e8", "commission_min_minor", "participation_e8"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.slippage_e8 >= 100_000_000:
            raise ValueError("slippage_e8 must be below 100%")
