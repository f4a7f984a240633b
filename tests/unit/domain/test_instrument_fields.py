"""Instrument fields added after the first journals: defaults decode old records; options validate."""

from __future__ import annotations

import msgspec
import pytest

from domain.instruments import Instrument
from domain.markets import OPTION_MULTIPLIER_US_EQUITY

BASE = {
    "instrument_id": 1, "symbol": "AAPL 260116C00200000", "venue": "OPRA", "asset_class": "option",
    "currency": "USD", "price_digits": 2, "tick_raw": 1, "qty_digits": 0, "lot_raw": 1,
    "multiplier": OPTION_MULTIPLIER_US_EQUITY, "underlying": "AAPL", "strike_raw": 20_000,
    "expiry_day": 20260116, "right": "call",
}  # fmt: skip


def test_a_record_without_the_new_fields_still_decodes() -> None:
    old = {k: BASE[k] for k in ("instrument_id", "symbol", "venue", "currency", "price_digits", "tick_raw")}
    old.update(asset_class="equity", qty_digits=0, lot_raw=100, multiplier=1)
    inst = msgspec.json.decode(msgspec.json.encode(old), type=Instrument)
    assert (inst.min_notional_minor, inst.underlying, inst.strike_raw, inst.expiry_day, inst.right) == (
        0, "", 0, 0, "",
    )  # fmt: skip
    assert not inst.is_option


def test_an_option_round_trips() -> None:
    inst = Instrument(**BASE)  # type: ignore[arg-type]
    assert inst.is_option and inst.multiplier == 100
    assert msgspec.json.decode(msgspec.json.encode(inst), type=Instrument) == inst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strike_raw": 0}, "strike_raw must be positive, got 0"),
        ({"right": "straddle"}, "right must be one of"),
        ({"expiry_day": 0}, "expiry_day must be a YYYYMMDD date, got 0"),
        ({"expiry_day": 20260231}, "expiry_day must be a YYYYMMDD date, got 20260231"),
        ({"underlying": ""}, "needs its underlying symbol"),
        ({"asset_class": "equity"}, "are option fields, but asset_class is 'equity'"),
        ({"min_notional_minor": -1}, "min_notional_minor must be >= 0"),
    ],
)
def test_bad_option_fields_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Instrument(**{**BASE, **change})  # type: ignore[arg-type]
