"""A decision replaces the working orders of the names it has a view on, and only those
(``execution.supersede``, docs/strategy_sdk.md "Targets").

A CONSTRUCTED USD book of two markets on a mixed calendar: an A-share (XSHG, CNY) and a US
stock (XNYS, USD), one bar a weekday each, the A-share's at 15:00 Shanghai (07:00 UTC) and the
US one's at the New York close (21:00 UTC). The strategy decides at every step, with a target
for the name whose market just closed and NaN ("no target") for the other, as a book of several
markets decides at each market's close. Its market orders fill at the name's next bar, which is
always after the other market's close: under ``supersede = "all"`` (how runs behaved before the
setting) that close cancels them, so nothing ever fills.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cli.wiring import replay_builder
from domain.events import (
    DatasetReferenced,
    OrderCancelled,
    OrderFilled,
    OrderSubmitted,
    ParentCreated,
    ParentDone,
    RunStarted,
    TargetsDecided,
)
from domain.fx import FxRate
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import session_intervals_ns
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import fx_table, write_dataset
from sim.backtest import BacktestConfig, FxConfig, StrategyConfig, run_backtest
from tests.factories import one_name_policy

CN = Instrument(
    instrument_id=1, symbol="CN1", venue="XSHG", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main", listing_day=20000101,
)  # fmt: skip
US = Instrument(instrument_id=2, symbol="US1", venue="XNYS", asset_class="equity", currency="USD",
                price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
DAYS = [20240304, 20240305, 20240306, 20240307, 20240308, 20240311, 20240312, 20240313]


def _dataset(path: Path) -> Path:
    rows = []
    for index, day in enumerate(DAYS):
        for inst, calendar, start in ((CN, "XSHG", 1_000), (US, "XNYS", 10_000)):
            px = start + 10 * index
            rows.append({"ts_ns": session_intervals_ns(calendar, day)[-1][1], "day": day,
                         "instrument_id": inst.instrument_id, "open": px, "high": px, "low": px,
                         "close": px, "volume": 10**9})  # fmt: skip
    rates = [FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000) for day in DAYS]
    write_dataset(path, name="constructed-two-markets", frequency="1d", calendar="mixed",
                  instruments=[CN, US], bars=pa.Table.from_pylist(rows), fx=fx_table(rates))  # fmt: skip
    return path


class AtEachClose:
    """At every step, 30% of the book in the name whose market has a bar, NaN for the other."""

    strategy_id = "at_each_close"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(panel.steps, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.where(view.valid(), 0.3, np.nan)


def _run(
    root: Path, supersede: str | None, strategy: AtEachClose | None = None, **execution_fields: object
) -> tuple[Path, list[object]]:
    if supersede is not None:
        execution_fields["supersede"] = supersede
    execution = ExecutionConfig(**execution_fields)  # type: ignore[arg-type]
    config = BacktestConfig(
        run_id="cancel-scope", dataset=str(_dataset(root / "data")), journal=str(root / "journal"),
        strategy=StrategyConfig(entry=f"{__name__}:AtEachClose"), us_regulatory_fees=False,
        fx=FxConfig(initial_cash={"CNY": "5000000"}), risk=one_name_policy(), execution=execution,
    )  # fmt: skip
    journal = run_backtest(config, strategy or AtEachClose()).journal
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
    return journal, events


def _superseded(events: list[object]) -> list[OrderCancelled]:
    return [e for e in events if isinstance(e, OrderCancelled) and e.reason == "superseded by a new decision"]


def test_under_supersede_all_the_other_markets_close_cancels_every_order_so_nothing_fills(
    tmp_path: Path,
) -> None:
    """How runs behaved before the setting (and still do with ``supersede = "all"``, the value
    a journal without it replays with): each close's decision, NaN for the other market's name,
    cancels the order sent at the other market's close before that market opens again."""
    journal, events = _run(tmp_path, "all")
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert len(submitted) == 2 * len(DAYS)  # one order a close, each market's name in turn
    assert not [e for e in events if isinstance(e, OrderFilled)]
    cancelled = _superseded(events)
    assert len(cancelled) == len(submitted) - 2  # all but the last close's two
    name_of = {e.order_id: e.instrument_id for e in submitted}
    for order, cancel in zip(submitted, cancelled, strict=False):
        assert cancel.order_id == order.order_id
        later = [e for e in submitted if e.ts_ns == cancel.ts_ns]
        assert [e.instrument_id for e in later] != [name_of[cancel.order_id]]  # the other name's close
    assert "supersede" not in json.loads(
        next(e for e in events if isinstance(e, RunStarted)).config_json
    ).get("execution", {})  # the legacy value journals the bytes of before
    with open_journal(journal) as store:
        assert replay(store, replay_builder).ok


def test_supersede_named_keeps_working_the_orders_of_names_the_decision_gives_no_view_on(
    tmp_path: Path,
) -> None:
    """``supersede = "named"``: the A-share close's decision (NaN for the US name) leaves the
    US order working, which fills at the US name's next bar, and the other way round."""
    journal, events = _run(tmp_path, "named")
    assert not _superseded(events)
    filled = {e.instrument_id for e in events if isinstance(e, OrderFilled)}
    assert filled == {CN.instrument_id, US.instrument_id}
    first_us = next(
        e for e in events if isinstance(e, OrderSubmitted) and e.instrument_id == US.instrument_id
    )
    fills = [e for e in events if isinstance(e, OrderFilled) and e.order_id == first_us.order_id]
    assert fills and fills[0].fill_qty_raw == first_us.qty_raw  # after an A-share close in between
    config = json.loads(next(e for e in events if isinstance(e, RunStarted)).config_json)
    assert config["execution"]["supersede"] == "named"
    with open_journal(journal) as store:
        assert replay(store, replay_builder).ok


class EveryName(AtEachClose):
    """A target for every name with a price (NaN only before a name's first bar)."""

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.where(view.history("last_close", 1)[0] > 0, 0.3, np.nan)


def test_supersede_named_still_replaces_the_orders_of_the_names_it_targets(tmp_path: Path) -> None:
    """A decision with a view on a name replaces its working order under either value: a
    strategy that targets both names at every close trades exactly alike under "named" and
    "all" (every record but the journaled configuration and data set path)."""
    runs = []
    for supersede in ("named", "all"):
        _, events = _run(tmp_path / supersede, supersede, EveryName())
        assert _superseded(events)
        runs.append(
            [msgspec.msgpack.encode(e) for e in events if not isinstance(e, RunStarted | DatasetReferenced)]
        )
    assert runs[0] == runs[1]


def test_a_new_runs_execution_supersede_default_journals_what_runs_did_before(tmp_path: Path) -> None:
    """The default keeps the journaled bytes of before the setting (the demo's chain heads):
    a multi-market book asks for "named" in its [execution] table (docs/strategy_sdk.md)."""
    assert ExecutionConfig().supersede == "all"
    _, events = _run(tmp_path, None)
    assert "execution" not in json.loads(next(e for e in events if isinstance(e, RunStarted)).config_json)
    assert not [e for e in events if isinstance(e, OrderFilled)]


def test_the_routers_parents_of_names_without_a_view_keep_working_under_supersede_named(
    tmp_path: Path,
) -> None:
    """A TWAP parent is ended ("cancelled") by a decision with a view on its name under either
    value, and by one without (the other market's close) only under "all"."""
    without_view = {}
    for supersede in ("all", "named"):
        _, events = _run(tmp_path / supersede, supersede, algo="twap", slices=2, window_steps=4)
        parents = {e.parent_id: e.instrument_id for e in events if isinstance(e, ParentCreated)}
        viewed = {e.ts_ns: set(e.instrument_ids) for e in events if isinstance(e, TargetsDecided)}
        cancelled = [e for e in events if isinstance(e, ParentDone) and e.reason == "cancelled"]
        assert cancelled
        without_view[supersede] = [e for e in cancelled if parents[e.parent_id] not in viewed[e.ts_ns]]
    assert without_view["all"]
    assert not without_view["named"]


def test_a_book_on_several_calendars_under_supersede_all_is_told_so(tmp_path: Path) -> None:
    """A mixed-calendar run left at the default ``supersede = "all"`` gets one notice before it
    starts (its orders in one market are cancelled by the other market's close); ``"named"``
    gets none."""
    told: list[str] = []
    config = BacktestConfig(
        run_id="told", dataset=str(_dataset(tmp_path / "data")), journal=str(tmp_path / "j1"),
        strategy=StrategyConfig(entry=f"{__name__}:AtEachClose"), us_regulatory_fees=False,
        fx=FxConfig(initial_cash={"CNY": "5000000"}), risk=one_name_policy(),
    )  # fmt: skip
    run_backtest(config, AtEachClose(), notice=told.append)
    assert len(told) == 1
    assert 'several calendars and [execution] supersede = "all"' in told[0]
    assert 'set supersede = "named"' in told[0]
    named = msgspec.structs.replace(
        config, journal=str(tmp_path / "j2"), execution=ExecutionConfig(supersede="named")
    )
    told.clear()
    run_backtest(named, AtEachClose(), notice=told.append)
    assert told == []
