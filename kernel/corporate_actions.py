"""Corporate actions applied by the kernel on their ex-date (splits, bonus shares, cash dividends).

A data set's ``actions.parquet`` rows (``domain.markets.CorporateAction``, carried by the
``Panel``) take effect at the **first step of the first session on or after the ex-date**,
before that step's matching:

1. every open order of the instrument is cancelled (``OrderCancelled`` with reason
   ``CORPORATE_ACTION: ...``): an order sized or priced before the action must not fill after it;
2. for each held instrument (ascending id), in one ledger transaction:

   * the cash dividend on the quantity held before the ex-date, ``qty x cash_e8`` rounded
     toward zero to the minor unit; income against a per-action receivable
     (``assets:receivable:dividend:{id}:{ex_day}``) when the pay day is later, or against
     cash when there is no pay day (or it is not after the ex session);
   * the split / bonus ratio: ``qty x split_to / split_from`` exactly in integers; the whole
     raw units are kept, a remaining fraction of a raw unit is paid as **cash in lieu** at
     the previous close carried through the split (``prev_close x split_from / split_to``,
     exact; the amount rounded half-even to the minor unit), releasing the same fraction of
     the cost basis (the difference is realised PnL). Without a fraction the cost basis is
     unchanged;
   * the A-share T+1 book scales with the holding (``holding == position``);
   * ``CorporateActionApplied`` with the numbers, then the ``LedgerPosted``.

3. at the first step of the pay-date session the receivable becomes cash (a ``LedgerPosted``);
   a pay day after the data ends leaves the receivable open.

Rights issues (``rights_to / rights_from`` new shares per held share at ``rights_price_e8``)
need the holder's decision, the run's ``CorporateActionConfig.rights``:

* entitlement = quantity before the ex-date x ``rights_to / rights_from``, whole shares toward
  zero (``rights_shares``; ChinaClear's per-account fraction rule: U, ``docs/markets.md``);
  a short or flat holding has none;
* ``"lapse"`` (default): nothing is bought; the ex-date price drop is the holder's loss;
* ``"subscribe"``: the whole entitlement is bought at the rights price (cost rounded up to the
  minor unit) from cash, or, when the cash after the action's dividend / cash in lieu does not
  cover it, the most whole shares it does (the rest lapses; the note says so); cash never goes
  negative. Inventory at cost against cash (``rights_subscription_postings``), the cost basis
  grows by what was paid; an A-share T+1 book counts the new shares as bought that session
  (sellable from the next session; the real listing day is later: U); tax lots get a lot
  acquired on the ex-date session (the payment is modelled there; U).

Each journals ``corporate_action.rights.v1`` (``RightsIssueApplied``) after the action's
``CorporateActionApplied`` and its ``LedgerPosted``, then the subscription's ``LedgerPosted``.

Share-structure reform rows (``CorporateAction.reform``, 股权分置改革: SPDB 2006-05-12 10送3 to
tradable holders) are applied as the bonus shares they are for a holder (the share ratio, cost
basis unchanged, cancellation reason and memo saying ``reform``) under the run's
``CorporateActionConfig.reform = "bonus"`` (default), and skipped under ``"ignore"``.

Rows whose ex-date is before the first session (the data already trades ex) or after the
last are ignored.

Dividend tax (A-shares, ``MARKET_RULES.md`` §1.5): withheld **at the sale**, first-in first-out
by lot, at the holding-period rate of the dividend's record day (the session before the ex
session). For an A-share instrument with at least one cash action whose record day the dated
table covers (from 2015-09-08), the kernel keeps FIFO lots (``state.tax_lots``: acquisition
session, shares, dividends received) from its buy fills, attaches each covered dividend to
them, scales them with splits, and on each sell fill posts the tax
(``expenses:tax:dividend:{CCY}``) in the fill's transaction. Dividends with an earlier record
day are not taxed (no rule) and the event's ``tax_note`` says so; the event's ``tax_minor`` is
0 (nothing is withheld at the ex-date). Other markets: no withholding is modelled.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import (
    CorporateActionApplied,
    Event,
    OrderFilled,
    PostingRecord,
    RightsIssueApplied,
)
from domain.fixed import Rounding, div_round, minor_digits
from domain.instruments import Instrument
from domain.ledger import Position, assert_balanced, cash_account, inventory_account, realized_account
from domain.market import Panel
from domain.markets import (
    CN_DIVIDEND_TAX,
    CorporateAction,
    Lots,
    RuleNotDefined,
    dividend_ex_postings,
    dividend_minor,
    dividend_paid_postings,
    dividend_receivable_account,
    dividend_tax_postings,
    lots_buy,
    lots_dividend,
    lots_sell,
    lots_split,
    lots_total,
    rights_affordable,
    rights_cost_minor,
    rights_shares,
    rights_subscription_postings,
    roll_to,
)
from kernel.desk import OrderDesk
from kernel.markets import MarketRules
from kernel.state import KernelState

__all__ = [
    "REFORM_DECISIONS",
    "RIGHTS_DECISIONS",
    "CorporateActionBook",
    "CorporateActionConfig",
    "SplitResult",
    "actions_of",
    "split_position",
]

CASH_E8_DIGITS = 8
Append = Callable[[Event], int]
Post = Callable[[int, str, list[PostingRecord]], None]


RIGHTS_DECISIONS = ("lapse", "subscribe")
REFORM_DECISIONS = ("bonus", "ignore")


class CorporateActionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[corporate_actions]`` of a run: the holder's decision on rights issues, and what a
    data set's share-structure reform rows (``CorporateAction.reform``) do: ``"bonus"`` (the
    default) credits a holder the reform shares as the bonus shares they are, ``"ignore"``
    leaves the holding unchanged (as if the row were not in the data set)."""

    rights: str = "lapse"
    reform: str = "bonus"

    def __post_init__(self) -> None:
        if self.rights not in RIGHTS_DECISIONS:
            raise ValueError(
                f"corporate_actions: rights must be one of {RIGHTS_DECISIONS}, got {self.rights!r}"
            )
        if self.reform not in REFORM_DECISIONS:
            raise ValueError(
                f"corporate_actions: reform must be one of {REFORM_DECISIONS}, got {self.reform!r}"
            )


def actions_of(panel: Panel) -> list[CorporateAction]:
    """The panel's corporate-action rows, in (ex_day, instrument_id) order."""
    count = panel.action_ex_day.size
    with_rights = panel.action_rights_to.size == count
    with_reform = panel.action_reform.size == count
    rows = zip(
        panel.action_instrument_id.tolist(),
        panel.action_ex_day.tolist(),
        panel.action_pay_day.tolist(),
        panel.action_cash_e8.tolist(),
        panel.action_split_to.tolist(),
        panel.action_split_from.tolist(),
        panel.action_rights_to.tolist() if with_rights else [0] * count,
        panel.action_rights_from.tolist() if with_rights else [1] * count,
        panel.action_rights_price_e8.tolist() if with_rights else [0] * count,
        panel.action_reform.tolist() if with_reform else [0] * count,
        strict=True,
    )
    return [
        CorporateAction(
            instrument_id=iid,
            ex_day=ex,
            pay_day=pay,
            cash_e8=cash,
            split_to=to,
            split_from=frm,
            rights_to=r_to,
            rights_from=r_from,
            rights_price_e8=r_px,
            reform=bool(reform),
        )
        for iid, ex, pay, cash, to, frm, r_to, r_from, r_px, reform in rows
    ]


class SplitResult(msgspec.Struct, frozen=True):
    position: Position
    cash_in_lieu_minor: int
    released_cost_minor: int


def split_position(
    instrument: Instrument, position: Position, split_to: int, split_from: int, prev_close_raw: int
) -> SplitResult:
    """``qty x split_to / split_from``: whole raw units kept (toward zero), the fraction paid in
    cash at ``prev_close x split_from / split_to`` with the same fraction of the cost released."""
    if split_to <= 0 or split_from <= 0:
        raise ValueError(f"split ratio must be positive, got {split_to}/{split_from}")
    total = position.qty_raw * split_to  # new quantity x split_from
    qty = div_round(total, split_from, Rounding.DOWN)
    remainder = total - qty * split_from  # the fraction, in units of 1/split_from raw
    if not remainder:
        return SplitResult(Position(qty, position.cost_minor if qty else 0), 0, 0)
    if prev_close_raw <= 0:
        raise ValueError(f"{instrument.symbol}: cash in lieu needs a previous close")
    # fraction (remainder / split_from raw units) x price (prev_close x split_from / split_to)
    numerator = remainder * prev_close_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    scale = split_to * 10 ** (instrument.price_digits + instrument.qty_digits)
    cash = div_round(numerator, scale, Rounding.HALF_EVEN)
    released = div_round(position.cost_minor * abs(remainder), abs(total), Rounding.HALF_EVEN)
    cost = position.cost_minor - released
    return SplitResult(Position(qty, cost if qty else 0), cash, released)


def _action_postings(
    iid: int, ccy: str, dividend: int, later: bool, ex_day: int, split: SplitResult
) -> list[PostingRecord]:
    """The dividend (receivable when paid later, else cash) and cash in lieu of an action."""
    postings: list[PostingRecord] = []
    if dividend and later:
        postings.extend(dividend_ex_postings(iid, dividend, ccy, ex_day))
    elif dividend:
        postings.append(PostingRecord(cash_account(ccy), ccy, dividend))
        postings.append(PostingRecord(f"income:dividend:{ccy}", ccy, -dividend))
    if split.cash_in_lieu_minor or split.released_cost_minor:
        cash, released = split.cash_in_lieu_minor, split.released_cost_minor
        postings.append(PostingRecord(cash_account(ccy), ccy, cash))
        postings.append(PostingRecord(inventory_account(iid), ccy, -released))
        if cash != released:
            postings.append(PostingRecord(realized_account(ccy), ccy, released - cash))
    assert_balanced(postings)
    return postings


def _covered(record_day: int) -> bool:
    """Whether the CN dividend-tax table has a rule for this record day."""
    try:
        CN_DIVIDEND_TAX.at(record_day)
    except RuleNotDefined:
        return False
    return True


def _tax_note(rules: MarketRules, instrument_id: int, record_day: int) -> str:
    if not rules.applies(instrument_id):
        return "no dividend withholding modelled for this market"
    if not record_day or not _covered(record_day):
        return f"CN dividend tax: no rule for record day {record_day} (table starts 20150908); not applied"
    return f"CN dividend tax: record day {record_day}; withheld at each sale, FIFO by lot and holding period"


class CorporateActionBook:
    """A panel's corporate actions by the step they take effect at, and their application."""

    def __init__(
        self,
        panel: Panel,
        instruments: dict[int, Instrument],
        rules: MarketRules,
        config: CorporateActionConfig | None = None,
    ) -> None:
        self._panel = panel
        self._rights = (config or CorporateActionConfig()).rights
        ignore_reform = (config or CorporateActionConfig()).reform == "ignore"
        self._instruments = instruments
        self.taxed: set[int] = set()  # A-share instruments whose lots are kept for the dividend tax
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self.ex_by_step: dict[int, list[CorporateAction]] = {}
        self.pay_by_step: dict[int, list[CorporateAction]] = {}
        self.mask: npt.NDArray[np.bool_] = np.zeros(panel.steps, dtype=np.bool_)
        if not panel.steps:
            return
        first_day = int(panel.day[0])
        for action in actions_of(panel):
            inst = instruments.get(action.instrument_id)
            if inst is None:
                raise ValueError(f"corporate action for unknown instrument {action.instrument_id}")
            if inst.multiplier != 1:
                raise ValueError(f"{inst.symbol}: corporate actions need multiplier 1 (shares)")
            step = int(np.searchsorted(panel.day, action.ex_day, side="left"))
            if action.ex_day < first_day or step >= panel.steps or (action.reform and ignore_reform):
                continue
            self.ex_by_step.setdefault(step, []).append(action)
            self.mask[step] = True
            cn_cash = action.cash_e8 and rules.applies(action.instrument_id)
            if cn_cash and step and _covered(int(panel.day[step - 1])):
                self.taxed.add(action.instrument_id)
            if action.pay_day > int(panel.day[step]):
                pay_step = int(np.searchsorted(panel.day, action.pay_day, side="left"))
                if pay_step < panel.steps:
                    self.pay_by_step.setdefault(pay_step, []).append(action)
                    self.mask[pay_step] = True

    def ex_action(self, step: int, instrument_id: int) -> CorporateAction | None:
        """The action taking effect at ``step`` for an instrument (the venue's limit reference)."""
        for action in self.ex_by_step.get(step, ()):
            if action.instrument_id == instrument_id:
                return action
        return None

    def apply(self, step: int, desk: OrderDesk) -> bool:
        """Pay-date cash, then ex-date cancellations and actions at ``step``. True when open
        orders were cancelled."""
        state = desk.state
        ts_ns = int(self._panel.ts_ns[step])
        for action in self.pay_by_step.get(step, ()):
            self._pay(ts_ns, action, state, desk.post)
        actions = self.ex_by_step.get(step, [])
        day = int(self._panel.day[step])
        ids = {action.instrument_id: action for action in actions}
        cancelled = False
        for order_id, order in list(state.open_orders.items()):
            ex = ids.get(order.instrument_id)
            if ex is None:
                continue
            reason = (
                f"CORPORATE_ACTION: ex_day={ex.ex_day}, split={ex.split_to}/{ex.split_from}, "
                f"cash_e8={ex.cash_e8}"
            )
            if ex.rights:
                reason += f", rights={ex.rights_to}/{ex.rights_from}, rights_price_e8={ex.rights_price_e8}"
            if ex.reform:
                reason += ", reform"
            desk.cancel(order_id, ts_ns, day, reason)
            cancelled = True
        for action in actions:
            self._apply(step, ts_ns, day, action, state, desk.rules, desk.journal, desk.post)
        return cancelled

    def on_fill(self, state: KernelState, day: int, fill: OrderFilled) -> list[PostingRecord]:
        """Lots of a taxed A-share instrument follow its fills; a sell pays the dividend tax
        its shares owe (postings for the fill's transaction)."""
        iid = fill.instrument_id
        if iid not in self.taxed:
            return []
        lots = state.tax_lots.get(iid, ())
        if fill.side > 0:
            state.tax_lots[iid] = lots_buy(lots, day, fill.fill_qty_raw)
            return []
        lots, tax = lots_sell(lots, day, fill.fill_qty_raw)
        if lots:
            state.tax_lots[iid] = lots
        else:
            state.tax_lots.pop(iid, None)
        return dividend_tax_postings(tax, fill.currency) if tax else []

    def _lots(self, state: KernelState, step: int, action: CorporateAction, qty_before: int) -> None:
        iid = action.instrument_id
        lots: Lots = state.tax_lots.get(iid, ())
        if lots_total(lots) != qty_before:
            raise ValueError(
                f"instrument {iid}: tax lots hold {lots_total(lots)} shares, the position {qty_before} "
                "(a position set up without its lots cannot be taxed by lot)"
            )
        record_day = int(self._panel.day[step - 1]) if step else 0
        inst = self._instruments[iid]
        if action.cash_e8 and record_day and _covered(record_day):
            lots = lots_dividend(lots, record_day, action.cash_e8, inst.qty_digits, inst.currency)
        if action.splits:
            lots = lots_split(lots, action.split_to, action.split_from)
        if lots:
            state.tax_lots[iid] = lots
        else:
            state.tax_lots.pop(iid, None)

    def _pay(self, ts_ns: int, action: CorporateAction, state: KernelState, post: Post) -> None:
        inst = self._instruments[action.instrument_id]
        account = dividend_receivable_account(action.instrument_id, action.ex_day)
        amount = state.balances.get(account, 0)
        if amount:
            memo = f"dividend paid {inst.symbol} ex {action.ex_day} pay {action.pay_day}"
            post(
                ts_ns,
                memo,
                dividend_paid_postings(action.instrument_id, amount, inst.currency, action.ex_day),
            )

    def _apply(
        self,
        step: int,
        ts_ns: int,
        day: int,
        action: CorporateAction,
        state: KernelState,
        rules: MarketRules,
        append: Append,
        post: Post,
    ) -> None:
        iid = action.instrument_id
        position = state.positions.get(iid)
        if position is None or not position.qty_raw:
            return
        inst = self._instruments[iid]
        ccy = inst.currency
        prev_close = int(self._panel.last_close[step - 1, self._column[iid]]) if step else 0
        dividend = dividend_minor(
            position.qty_raw, inst.qty_digits, action.cash_e8, CASH_E8_DIGITS, ccy, Rounding.DOWN
        )
        split = split_position(inst, position, action.split_to, action.split_from, prev_close)
        postings = _action_postings(iid, ccy, dividend, action.pay_day > day, action.ex_day, split)
        if rules.applies(iid):
            self._scale_book(state, iid, day, position.qty_raw, split.position.qty_raw, action)
        if iid in self.taxed:
            self._lots(state, step, action, position.qty_raw)
        record_day = int(self._panel.day[step - 1]) if step else day
        append(
            CorporateActionApplied(
                ts_ns=ts_ns,
                instrument_id=iid,
                ex_day=action.ex_day,
                pay_day=action.pay_day,
                split_to=action.split_to,
                split_from=action.split_from,
                cash_e8=action.cash_e8,
                qty_before_raw=position.qty_raw,
                qty_after_raw=split.position.qty_raw,
                cost_minor=split.position.cost_minor,
                dividend_minor=dividend,
                cash_in_lieu_minor=split.cash_in_lieu_minor,
                prev_close_px_raw=prev_close,
                released_cost_minor=split.released_cost_minor,
                tax_minor=0,
                tax_note=_tax_note(rules, iid, record_day) if dividend else "",
                currency=ccy,
            )
        )
        if postings:
            memo = (
                f"corporate action {inst.symbol} ex {action.ex_day}: split {action.split_to}/"
                f"{action.split_from}, cash_e8={action.cash_e8}"
            )
            if action.reform:
                memo += ", share-structure reform"
            post(ts_ns, memo, postings)
        if split.position.qty_raw:
            state.positions[iid] = split.position
        else:
            del state.positions[iid]
        if action.rights:
            self._apply_rights(ts_ns, day, action, position.qty_raw, state, rules, append, post)

    def _apply_rights(
        self,
        ts_ns: int,
        day: int,
        action: CorporateAction,
        qty_before: int,
        state: KernelState,
        rules: MarketRules,
        append: Append,
        post: Post,
    ) -> None:
        """The holder's rights decision, after the action's other effects (so a same-day cash
        dividend or cash in lieu can pay for the subscription)."""
        iid = action.instrument_id
        inst = self._instruments[iid]
        ccy = inst.currency
        entitlement = rights_shares(
            qty_before, action.rights_to, action.rights_from, inst.qty_digits, Rounding.DOWN
        )
        subscribed = 0
        if not entitlement:
            note = "no whole rights share on this holding" if qty_before > 0 else "short holding: no rights"
        elif self._rights == "lapse":
            note = 'lapsed: [corporate_actions] rights = "lapse"'
        else:
            cash = state.balances.get(cash_account(ccy), 0)
            affordable = rights_affordable(cash, inst.qty_digits, action.rights_price_e8, ccy)
            subscribed = min(entitlement, affordable)
            note = "subscribed in full"
            if subscribed < entitlement:
                note = (
                    f"cash {cash} minor {ccy} pays for {subscribed} of {entitlement} raw shares; "
                    "the rest lapsed"
                )
        paid = (
            rights_cost_minor(subscribed, inst.qty_digits, action.rights_price_e8, ccy) if subscribed else 0
        )
        position = state.positions.get(iid, Position(0, 0))
        after = Position(position.qty_raw + subscribed, position.cost_minor + paid)
        if subscribed:
            if rules.applies(iid):
                book = roll_to(state.sellable[iid], day)
                state.sellable[iid] = msgspec.structs.replace(
                    book, holding=book.holding + subscribed, bought_today=book.bought_today + subscribed
                )
            if iid in self.taxed:
                state.tax_lots[iid] = lots_buy(state.tax_lots.get(iid, ()), day, subscribed)
        append(
            RightsIssueApplied(
                ts_ns=ts_ns,
                instrument_id=iid,
                ex_day=action.ex_day,
                rights_to=action.rights_to,
                rights_from=action.rights_from,
                rights_price_e8=action.rights_price_e8,
                decision=self._rights,
                qty_before_raw=qty_before,
                entitlement_raw=entitlement,
                subscribed_raw=subscribed,
                lapsed_raw=entitlement - subscribed,
                paid_minor=paid,
                qty_after_raw=after.qty_raw,
                cost_minor=after.cost_minor,
                note=note,
                currency=ccy,
            )
        )
        if subscribed:
            memo = (
                f"rights subscription {inst.symbol} ex {action.ex_day}: {subscribed} raw shares at "
                f"rights_price_e8={action.rights_price_e8}"
            )
            post(ts_ns, memo, rights_subscription_postings(iid, paid, ccy))
            state.positions[iid] = after

    @staticmethod
    def _scale_book(
        state: KernelState, iid: int, day: int, qty_before: int, qty_after: int, action: CorporateAction
    ) -> None:
        book = state.sellable.get(iid)
        if book is None:
            raise ValueError(f"instrument {iid}: an A-share holding without its T+1 book")
        book = roll_to(book, day)
        if book.holding != qty_before or book.reserved:
            raise ValueError(
                f"instrument {iid}: T+1 book holding={book.holding} reserved={book.reserved} "
                f"does not match the position {qty_before} at the {action.ex_day} action"
            )
        bought = min(
            qty_after, div_round(book.bought_today * action.split_to, action.split_from, Rounding.DOWN)
        )
        state.sellable[iid] = msgspec.structs.replace(book, holding=qty_after, bought_today=bought)
