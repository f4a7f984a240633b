"""Corporate-action adjustment: derived views over raw bars (raw stays the truth).

For each price-affecting action (cash dividend, bonus/capitalisation shares, rights at the
rights price) the exchange's ex-right reference price (``domain.markets.corporate_actions.
ex_right_reference_price``, exact integers on the tick grid) is computed from the previous
session's raw close, and the action's **ratio** is ``reference / previous close``:

* backward (后复权) factor of a bar = product of ``1 / ratio`` over actions effective on or
  before its day: the first bar keeps its raw price, later bars are scaled up;
* forward (前复权) factor = product of ``ratio`` over actions effective after its day: the last
  bar keeps its raw price, history is scaled down. ``forward = backward / backward[-1]``.

Adjusted prices are ``float64`` (``raw / 10**price_digits x factor``): they are research
views, not exchange prices, and never go back into the lake or the ledger. ``factors`` returns
the factor column alone (plus a per-action table explaining each step); ``adjust`` returns the
bars with ``open_adj .. close_adj`` float columns and the factor it used.

An action whose ex-date is not a session takes effect at the first session on or after it
(the stock was suspended); actions meeting on one session compound in ex-date order.

Share-structure reform (股权分置改革) rows: the table records the consideration that
non-tradable holders paid to tradable holders (SPDB 2006-05-12, 10送3) as a bonus, but the
total share count does not change: nothing is diluted, so the exchange formula does not
apply and the per-share price has no mechanical gap (SPDB reopened at 10.06 after closing at
10.86, not near the formula's 8.35). Such rows (bonus/capitalisation with ``total_shares``
unchanged from the previous record) are classified ``reform_transfer`` and skipped by
default (``reform="skip"``); ``reform="apply"`` treats them as ordinary bonus shares, which is
what a tradable holder's total-return series wants (TDX/hikyuu do this).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from domain.instruments import Instrument
from domain.markets.corporate_actions import (
    PER10_DIGITS,
    CnCorporateAction,
    CorporateAction,
    ex_right_reference_price,
)

__all__ = [
    "ACTION_COLUMNS",
    "REFORM_CHOICES",
    "Adjustment",
    "adjust",
    "adjusted_from_lake",
    "dataset_actions",
    "factors",
    "reform_transfers",
]

REFORM_CHOICES = ("skip", "carry", "apply")
"""``dataset_actions(reform=...)``: leave reform transfers out, keep them flagged, or keep them
as ordinary bonus rows."""
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ACTION_COLUMNS = (
    "ex_date",
    "effective_day",
    "prev_close",
    "reference",
    "ratio",
    "status",
)
"""Columns of ``Adjustment.actions``; ``status`` is ``applied``, ``reform_transfer`` (skipped),
``no_price_effect`` (share-count change only), ``before_data`` or ``after_data``."""


@dataclass(frozen=True, eq=False)
class Adjustment:
    """Per-bar factors (aligned with the input bars, sorted by day) and per-action steps."""

    day: IntArray
    backward: FloatArray
    forward: FloatArray
    actions: pa.Table

    def factor(self, mode: str) -> FloatArray:
        if mode == "backward":
            return self.backward
        if mode == "forward":
            return self.forward
        raise ValueError(f"mode must be 'backward' or 'forward', got {mode!r}")


def _action(row: dict[str, int], price_digits: int) -> CnCorporateAction:
    return CnCorporateAction(
        ex_day=int(row["ex_date"]),
        bonus_per10_e4=int(row["bonus_per10_e4"]),
        capitalization_per10_e4=int(row["capitalization_per10_e4"]),
        rights_per10_e4=int(row["rights_per10_e4"]),
        rights_price_e4=int(row["rights_price"]) * 10 ** (PER10_DIGITS - price_digits),
        cash_per10_e4=int(row["cash_per10_e4"]),
    )


def dataset_actions(
    actions: pa.Table, instrument: Instrument, *, reform: str = "skip"
) -> list[CorporateAction]:
    """One instrument's lake ``corporate_actions`` rows as data-set actions (``actions.parquet``,
    ``CorporateAction.from_cn``: 送+转 one share ratio, 派 the cash, 配 the rights ratio and
    price), in ex-date order. Share-count-only rows are left out. Share-structure reform
    transfers: left out (``reform="skip"``), kept flagged ``CorporateAction.reform`` so the
    kernel's ``[corporate_actions] reform`` decides (``"carry"``, what ``Lake.export`` writes),
    or kept as ordinary bonus rows (``"apply"``). The lake has no pay date: cash on the ex-date."""
    if reform not in REFORM_CHOICES:
        raise ValueError(f"reform must be one of {REFORM_CHOICES}, got {reform!r}")
    reforms = reform_transfers(actions) if reform != "apply" else set()
    out = []
    for row in sorted(actions.to_pylist(), key=lambda r: r["ex_date"]):
        if row["instrument_id"] != instrument.instrument_id:
            raise ValueError(f"{instrument.symbol}: an action row of instrument {row['instrument_id']}")
        action = _action(row, instrument.price_digits)
        if not action.affects_price or (reform == "skip" and action.ex_day in reforms):
            continue
        converted = CorporateAction.from_cn(instrument.instrument_id, action)
        if action.ex_day in reforms:
            converted = msgspec.structs.replace(converted, reform=True)
        out.append(converted)
    return out


def reform_transfers(actions: pa.Table) -> set[int]:
    """Ex-dates of bonus/capitalisation rows whose total share count equals the previous
    record's: share-structure reform consideration paid between holders, not a dilution."""
    rows = sorted(actions.to_pylist(), key=lambda r: r["ex_date"])
    found = set()
    for previous, row in itertools.pairwise(rows):
        shares = row["bonus_per10_e4"] + row["capitalization_per10_e4"]
        same_total = row.get("total_shares") is not None and row["total_shares"] == previous.get(
            "total_shares"
        )
        if shares and not row["rights_per10_e4"] and same_total:
            found.add(int(row["ex_date"]))
    return found


def factors(bars: pa.Table, actions: pa.Table, instrument: Instrument, *, reform: str = "skip") -> Adjustment:
    """Backward and forward factors for one instrument's daily ``bars`` (columns ``day`` and
    raw ``close``) from its ``corporate_actions`` rows (the lake contract)."""
    if reform not in ("skip", "apply"):
        raise ValueError(f"reform must be 'skip' or 'apply', got {reform!r}")
    order = np.argsort(bars.column("day").to_numpy(), kind="stable")
    day = bars.column("day").to_numpy().astype(np.int64)[order]
    close = bars.column("close").to_numpy().astype(np.int64)[order]
    reforms = reform_transfers(actions) if reform == "skip" else set()
    step = np.ones(len(day), dtype=np.float64)  # product of 1/ratio effective at each bar
    rows_out: dict[str, list[object]] = {name: [] for name in ACTION_COLUMNS}
    adjusted_close: dict[int, int] = {}  # an effective bar's running reference (same-day actions)
    for row in sorted(actions.to_pylist(), key=lambda r: r["ex_date"]):
        action = _action(row, instrument.price_digits)
        at = int(np.searchsorted(day, action.ex_day, side="left"))
        effective = int(day[at]) if at < len(day) else 0
        prev, ref, ratio, status = 0, 0, 1.0, "applied"
        if not action.affects_price:
            status = "no_price_effect"
        elif action.ex_day in reforms:
            status = "reform_transfer"
        elif at == 0:
            status = "before_data"
        elif at >= len(day):
            status = "after_data"
        else:
            prev = adjusted_close.get(at, int(close[at - 1]))
            ref = ex_right_reference_price(prev, action, instrument.price_digits, instrument.tick_raw)
            adjusted_close[at] = ref
            ratio = ref / prev
            step[at] /= ratio
        for name, value in zip(
            ACTION_COLUMNS, (action.ex_day, effective, prev, ref, ratio, status), strict=True
        ):
            rows_out[name].append(value)
    backward = np.cumprod(step)
    forward = backward / backward[-1] if len(backward) else backward
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    table = pa.table(
        rows_out,
        schema=pa.schema(
            [
                ("ex_date", pa.int32()),
                ("effective_day", pa.int32()),
                ("prev_close", pa.int64()),
                ("reference", pa.int64()),
                ("ratio", pa.float64()),
                ("status", pa.string()),
            ]
        ),
    )
    return Adjustment(day[inverse], backward[inverse], forward[inverse], table)


def adjust(
    bars: pa.Table, actions: pa.Table, instrument: Instrument, *, mode: str = "backward", reform: str = "skip"
) -> pa.Table:
    """``bars`` plus float64 ``open_adj, high_adj, low_adj, close_adj`` (currency units) and the
    ``factor`` used; the raw integer columns are left as they are."""
    adjustment = factors(bars, actions, instrument, reform=reform)
    factor = adjustment.factor(mode)
    scale = 10.0**-instrument.price_digits
    out = bars
    for name in ("open", "high", "low", "close"):
        raw = bars.column(name).to_numpy().astype(np.float64)
        out = out.append_column(f"{name}_adj", pa.array(raw * scale * factor))
    return out.append_column("factor", pa.array(factor))


def adjusted_from_lake(
    lake: object, instrument_id: int, *, mode: str = "backward", reform: str = "skip"
) -> pa.Table:
    """One instrument's daily bars from a ``lake.partitioned.Lake`` with adjusted columns."""
    from lake.partitioned import Lake, LakeError
    from lake.schema import Kind

    assert isinstance(lake, Lake)
    found = [i for i in lake.instruments() if i.instrument_id == instrument_id]
    if not found:  # was a bare StopIteration
        raise LakeError(f"{lake.root}: no instrument with id {instrument_id}")
    instrument = found[0]
    bars = lake.read(Kind.BARS, "1d", instrument_ids=[instrument_id])
    actions = lake.read(Kind.CORPORATE_ACTIONS, instrument_ids=[instrument_id])
    return adjust(bars, actions, instrument, mode=mode, reform=reform)
