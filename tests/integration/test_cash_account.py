"""Cash accounts (``[account] type = "cash"``, ``kernel.account``): a buy is paid from free cash
(working buys reserved, commission with its minimum and the market's fees included), reduced to
the whole lots that fit or refused with the numbers; no shorts. Real A-share bars (SPDB
2001-2003, stamp duty on buys then) reproduce the reported overdraft on a margin account and
show the cash account never goes below zero; a property test covers random targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import LedgerPosted, OrderFilled, RiskVerdict
from domain.ledger import cash_account
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows
from domain.riskrules import policy_from_mapping
from kernel.account import AccountConfig
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_hikyuu_day
from sim.backtest import run_backtest
from sim.fill_models import FillModel
from tests.factories import make_config, make_dataset, one_name_policy

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FEES = CnFeeRows(
    rows=[CnFeeRow(effective_from=20010101, stamp_duty_buy_e8=400_000, stamp_duty_sell_e8=400_000,
                   transfer_e8=0, handling_e8=8_700, regulatory_e8=0)],
    source="test: illustrative user rates for 2001-2003",
)  # fmt: skip
COMMISSION = FillModel(commission_e8=30_000, commission_min_minor=500, slippage_e8=10_000)


class Targets:
    """Fixed target weights, re-asked every ``every`` steps from step 5."""

    strategy_id = "targets"

    def __init__(self, weights: list[float], every: int = 7) -> None:
        self.weights, self.every = weights, every

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(5, panel.steps, self.every, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.resize(np.array(self.weights, dtype=np.float64), len(view.panel.instruments))


def _cash_after_every_posting(journal_path: Path, currency: str) -> list[int]:
    account = cash_account(currency)
    balance, seen = 0, []
    with open_journal(journal_path) as journal:
        for _, event in journal.events():
            if isinstance(event, LedgerPosted):
                balance += sum(p.amount_minor for p in event.postings if p.account == account)
                seen.append(balance)
    return seen


def _spdb(tmp_path: Path) -> Path:
    ingest(tmp_path / "lake", [SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"], parse_hikyuu_day)
    ref_start = 993_945_600_000_000_000  # 2001-07-01
    ref_end = 1_056_931_200_000_000_000  # 2003-06-30
    lake = Lake(tmp_path / "lake")
    lake.export(tmp_path / "spdb", "1d", calendar="XSHG", start_ns=ref_start, end_ns=ref_end)
    return tmp_path / "spdb"


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
def test_a_target_of_140_percent_overdraws_a_margin_account_and_not_a_cash_account(tmp_path: Path) -> None:
    dataset = _spdb(tmp_path)
    policy = policy_from_mapping({"name": {"limit_e8": 150_000_000, "action": "clip"}})  # 150% a name
    common = {"risk": policy, "currency": "CNY", "cn_fees": FEES, "fill": COMMISSION}
    margin = make_config(dataset, tmp_path / "margin", **common)  # type: ignore[arg-type]
    run_backtest(margin, Targets([1.4]))
    assert min(_cash_after_every_posting(tmp_path / "margin", "CNY")) < -300_000_00  # the reported overdraft
    cash = make_config(dataset, tmp_path / "cash", account=AccountConfig(type="cash"), **common)  # type: ignore[arg-type]
    run_backtest(cash, Targets([1.4]))
    balances = _cash_after_every_posting(tmp_path / "cash", "CNY")
    assert min(balances) >= 0
    with open_journal(tmp_path / "cash") as journal:
        events = [event for _, event in journal.events()]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and all(f.fill_qty_raw % 100 == 0 for f in fills)  # whole lots
    clipped = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "buying_power"]
    assert clipped and all(v.observed > v.limit >= v.observed_after for v in clipped)
    assert "working buys" in clipped[0].detail


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    weights=st.lists(st.floats(-1.5, 2.5, allow_nan=False), min_size=1, max_size=4),
    seed=st.integers(0, 50),
    every=st.integers(1, 9),
)
def test_no_accepted_order_leaves_a_cash_account_negative(
    tmp_path_factory: pytest.TempPathFactory, weights: list[float], seed: int, every: int
) -> None:
    tmp = tmp_path_factory.mktemp("cash")
    dataset = make_dataset(tmp / "d", seed=seed, symbols=4, bars=120)
    config = make_config(dataset, tmp / "j", account=AccountConfig(type="cash"),
                         fill=COMMISSION, risk=one_name_policy())  # type: ignore[arg-type]  # fmt: skip
    run_backtest(config, Targets(weights, every))
    assert min(_cash_after_every_posting(tmp / "j", "USD")) >= 0
    held: dict[int, int] = {}
    with open_journal(tmp / "j") as journal:
        for _, event in journal.events():
            if isinstance(event, OrderFilled):
                held[event.instrument_id] = held.get(event.instrument_id, 0) + event.side * event.fill_qty_raw
                assert held[event.instrument_id] >= 0  # never short


def test_an_unknown_account_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"account\.type must be one of"):
        AccountConfig(type="credit")
