"""Line protocol encoding and the metrics fold, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.store import open_journal
from projections.metrics_influx import MetricsState, fold_record, line
from tests.unit.projections.test_ledger_sqlite import trading_events, write_journal


def test_line_protocol_escapes_and_types() -> None:
    point = line(
        "order funnel",
        {"strategy": "mo mo,1=x", "empty": "", "a": "b"},
        {"count": 3, "rate": 0.25, "note": 'say "hi" \\ ok', "ok": True},
        1_700_000_000_000_000_123,
    )
    assert point == (
        'order\\ funnel,a=b,strategy=mo\\ mo\\,1\\=x count=3i,note="say \\"hi\\" \\\\ ok",ok=true,rate=0.25 '
        "1700000000000000123"
    )


def test_a_point_without_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        line("nav", {}, {}, 0)


def _fold(path: Path) -> list[str]:
    state = MetricsState()
    with open_journal(path) as journal:
        return [point for record in journal.records() for point in fold_record(state, record)]


def test_the_fold_counts_the_funnel_fills_nav_and_risk(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", trading_events())
    points = _fold(tmp_path / "j")
    funnel = [p for p in points if p.startswith("order_funnel,")]
    assert funnel[-1].split(" ")[1].split(",") == [
        "accepted=4i",
        "cancelled=1i",
        "expired=1i",
        f"fill_ratio={220 / 265!r}",  # (40 + 60 + 20 + 100) filled of (100 + 50 + 10 + 100 + 5)
        "filled=2i",
        "partially_filled=2i",
        "qty_filled_raw=220i",
        "qty_submitted_raw=265i",
        "reject_rate=0.2",
        "rejected=1i",
        "submitted=5i",
    ]
    nav = [p for p in points if p.startswith("nav,")]
    assert len(nav) == 2
    assert "pnl_minor=47000i" in nav[1]
    assert "drawdown_e8=0i" in nav[1]
    fills = [p for p in points if p.startswith("fills,")]
    assert len(fills) == 4
    assert fills[-1].startswith("fills,instrument_id=1,symbol=AAPL ")
    assert "fill_count=3i" in fills[-1]
    risk = [p for p in points if p.startswith("risk_events,")]
    assert risk == [
        f"risk_events,action=pass,rule=gross count=1i {risk[0].rsplit(' ', 1)[1]}",
        f"risk_events,action=clip,rule=single_name count=1i {risk[1].rsplit(' ', 1)[1]}",
    ]


def test_the_fold_is_deterministic_and_resumable_from_its_state(tmp_path: Path) -> None:
    import msgspec

    write_journal(tmp_path / "j", trading_events())
    whole = _fold(tmp_path / "j")
    with open_journal(tmp_path / "j") as journal:
        records = list(journal.records())
    state = MetricsState()
    first = [p for r in records[:12] for p in fold_record(state, r)]
    state = msgspec.json.decode(msgspec.json.encode(state), type=MetricsState)  # the checkpoint
    rest = [p for r in records[12:] for p in fold_record(state, r)]
    assert first + rest == whole
    assert whole == _fold(tmp_path / "j")
