"""What each screen shows, rendered from the folds the app holds (UI thread only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual.widgets import Button, DataTable, Sparkline, Static

from domain.events import AlertAcknowledged, AlertSilenced, Event, RiskVerdict
from domain.fixed import RATE_SCALE, Rounding, div_round, from_decimal_text, minor_digits
from domain.fx import to_base_minor
from domain.instruments import Instrument
from tui.describe import describe, full_text, side_text, verdict_text
from tui.fold import OrderLine
from tui.format import counted, day_text, decimal, money, pct_e8, utc_text
from tui.panes import OPERATOR_COMMANDS, SENDABLE
from tui.positions import position_lines
from tui.sources import COMMANDS_DISABLED_REASON, COMMANDS_LIVE, ExecutionLike
from tui.tables import TABLES, Row, fill_table
from tui.tail import TailPage

if TYPE_CHECKING:
    from tui.app import CockpitApp

__all__ = [
    "BLOTTER_ROWS_MAX",
    "fill",
    "refit_tables",
    "setup_tables",
    "show_centre",
    "show_orders",
    "show_positions",
    "show_quality",
    "show_alerts",
    "show_journaled_commands",
    "show_replay_journal",
    "show_command_buttons",
    "show_static_tabs",
    "show_summary",
    "show_tail",
    "show_why_chain",
    "show_why_event",
    "symbol",
]

BLOTTER_ROWS_MAX = 500  # orders the blotter lists (newest first)
SCROLLBAR_WIDTH = 2
SUMMARY_GAP = "   "  # between the report summary's two columns, where they fit side by side


def setup_tables(app: CockpitApp) -> None:
    """Every table with its header and no rows yet."""
    for table_id in TABLES:
        fill(app, table_id, [])


def fill(app: CockpitApp, table_id: str, rows: list[Row], what: str = "") -> None:
    """Fill a table with the columns that fit the terminal's width (kept for a resize)."""
    app.table_rows[table_id] = (rows, what)
    fill_table(app.query_one(table_id, DataTable), rows, table_width(app), what)


def refit_tables(app: CockpitApp) -> None:
    """After a resize: every table refilled from its rows at the new width."""
    for table_id, (rows, what) in app.table_rows.items():
        fill_table(app.query_one(table_id, DataTable), rows, table_width(app), what)
    show_summary(app)
    if app.first_screen_ready:  # the header's lines break between figures at the new width
        app.query_one("#cc-head", Static).update(
            _head_text(app, [c.nav_minor for _, c in app.data.overview.closes])
        )
        app.query_one("#cc-risk", Static).update(_risk_text(app))


def table_width(app: CockpitApp) -> int:
    """The cells a table may use: the terminal's width less the screen's and the table's
    vertical scrollbars."""
    return app.size.width - 2 * SCROLLBAR_WIDTH


def _ratio_e8(numerator: int, denominator: int) -> int:
    return div_round(numerator * RATE_SCALE, denominator, Rounding.HALF_EVEN) if denominator else 0


def symbol(app: CockpitApp, instrument_id: int) -> str:
    return app.data.symbol(instrument_id)


# --- 1 command centre ------------------------------------------------------------------------


def show_centre(app: CockpitApp) -> None:
    overview = app.data.overview
    navs = [close.nav_minor for _, close in overview.closes]
    app.query_one("#cc-head", Static).update(_head_text(app, navs))
    app.query_one("#nav-spark", Sparkline).data = [float(nav) for nav in navs[-400:]]
    drawdowns = _drawdowns_e8(navs, initial_nav_minor(app))
    app.query_one("#dd-spark", Sparkline).data = [-float(d) for d in drawdowns[-400:]]
    app.query_one("#cc-risk", Static).update(_risk_text(app))
    app.query_one("#cc-kill", Static).update(_kill_text(app))
    show_alerts(app)
    app.query_one("#cc-stale", Static).update(_staleness_text(app))
    verdicts = app.data.detail.latest_verdicts if app.data.detail is not None else overview.tail_verdicts
    _fill_verdicts(app, list(verdicts))


def _drawdowns_e8(navs: list[int], initial_minor: int) -> list[int]:
    """Each close's drawdown from the running peak, 1e-8 (0 at a new peak). The initial NAV is
    the first peak, as ``tape report`` counts it (``sim.metrics``: the NAV series starts with
    it), so a run that loses from its first day shows that loss in its drawdown."""
    peak = max(initial_minor, 0)
    drawdowns = []
    for nav in navs:
        peak = max(peak, nav)
        drawdowns.append(_ratio_e8(peak - nav, peak))
    return drawdowns


def initial_nav_minor(app: CockpitApp) -> int:
    """The initial NAV in the base: ``initial_cash`` and, in a book of several currencies, the
    ``[fx] initial_cash`` of the others at the first close's rates (as ``tape report`` counts it)."""
    overview = app.data.overview
    base = overview.currency
    text = str(overview.config.get("initial_cash", "0"))
    total = from_decimal_text(text, minor_digits(base), Rounding.HALF_EVEN)
    fx = overview.config.get("fx")
    marks = overview.first_rates
    if isinstance(fx, dict) and marks is not None:
        rates = {mark.currency: mark.rate_e8 for mark in marks.currencies}
        for currency, amount in sorted(dict(fx.get("initial_cash") or {}).items()):
            minor = from_decimal_text(str(amount), minor_digits(currency), Rounding.HALF_EVEN)
            total += to_base_minor(minor, currency, base, rates[currency])
    return total


def _head_text(app: CockpitApp, navs: list[int]) -> str:
    overview = app.data.overview
    run_id = overview.run.run_id if overview.run is not None else "?"
    state = "finished" if overview.finished is not None else "running or unfinished (no run.finished yet)"
    ccy = overview.currency
    width = text_width(app)
    head = fitted(
        [run_id, state, f"{overview.records:,} records", f"{len(navs):,} session days"], width, "  "
    )
    lines = [f"[b]{escape(run_id)}[/b]{escape(head[0][len(run_id) :])}", *map(escape, head[1:])]
    if not navs:
        return "\n".join([*lines, "no day has closed yet"])
    initial = initial_nav_minor(app)
    last = overview.closes[-1][1]
    today = navs[-1] - (navs[-2] if len(navs) > 1 else initial)
    drawdowns = _drawdowns_e8(navs, initial)
    since = (
        f"since inception {money(navs[-1] - initial, ccy)} ({pct_e8(_ratio_e8(navs[-1] - initial, initial))})"
    )
    figures = [f"NAV {money(navs[-1], ccy)} on {day_text(last.day)}", f"PnL today {money(today, ccy)}", since]
    # negative, as tape report and every research table print a drawdown
    figures += [f"drawdown now {pct_e8(-drawdowns[-1])}", f"max {pct_e8(-max(drawdowns))}"]
    lines += fitted(figures[:3], width) + fitted(figures[3:], width)
    return "\n".join(lines)


def text_width(app: CockpitApp) -> int:
    """The cells a line of a screen's text may use: the terminal's width less the screen's
    vertical scrollbar."""
    return app.size.width - SCROLLBAR_WIDTH


def fitted(parts: list[str], width: int, gap: str = "   ") -> list[str]:
    """``parts`` joined by ``gap`` into lines of at most ``width`` cells, a line breaking only
    between two parts, so a figure stays on the line of its label (the terminal wrapped
    "since inception" and its figure onto two lines at 80 columns)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(gap) + len(part) <= width:
            lines[-1] += gap + part
        else:
            lines.append(part)
    return lines


def _risk_text(app: CockpitApp) -> str:
    overview = app.data.overview
    if not overview.closes:
        return ""
    close = overview.closes[-1][1]
    ccy = close.currency
    net = close.nav_minor - close.cash_minor  # the positions' net value at the close
    gross_e8, net_e8 = _ratio_e8(close.gross_exposure_minor, close.nav_minor), _ratio_e8(net, close.nav_minor)
    gross = (
        f"gross exposure {money(close.gross_exposure_minor, ccy)}  leverage {pct_e8(gross_e8)} "
        f"/ limit {_limit(overview.limit_e8('gross_leverage'))}"
    )
    net_text = (
        f"net exposure   {money(net, ccy)}  leverage {pct_e8(net_e8)} "
        f"/ limit {_limit(overview.limit_e8('net_leverage'))}"
    )
    per_name = f"per name limit {_limit(overview.limit_e8('name'))}"
    return "\n".join(fitted([gross], text_width(app)) + fitted([net_text, per_name], text_width(app)))


def _limit(limit_e8: int) -> str:
    return pct_e8(limit_e8) if limit_e8 else "none"


def _kill_text(app: CockpitApp) -> str:
    overview = app.data.overview
    limits = (
        ", ".join(f"{k}={v}" for k, v in sorted(overview.kill_switch_limits().items()) if v)
        or "no trigger set"
    )
    colour = "green" if overview.kill_state == "armed" else "red"
    text = f"kill switch [{colour}]{overview.kill_state.upper()}[/]  ({escape(limits)})"
    if overview.last_trip is not None:
        seq, trip = overview.last_trip
        text += (
            f"\n  last trip seq {seq} at {utc_text(trip.ts_ns)}: {trip.trigger} observed {trip.observed:,} "
            f"vs limit {trip.limit:,}{' (flatten)' if trip.flatten else ''} -- {escape(trip.reason)}"
        )
    else:
        text += "\n  never tripped"
    return text


def show_alerts(app: CockpitApp) -> None:
    """The alerts ``tape alerts follow`` has firing for this journal (its state file), with
    who acknowledged each; ``a`` acknowledges the highlighted one."""
    desk = app.sources.alerts
    head = app.query_one("#cc-alerts", Static)
    table = app.query_one("#alerts", DataTable)
    if desk is None:
        table.display = False
        head.update(
            "alerts: not watched here (open with --alerts RULES: the firing alerts of tape alerts "
            "follow, a acknowledges one)"
        )
        return
    table.display = True
    alerts, error = app.data.alerts, app.data.alerts_error
    where = escape(desk.where)
    if error:
        head.update(f"alerts ({where}): [red]{escape(error)}[/]")
    elif alerts is None:
        head.update(f"alerts ({where}): reading the alert state...")
    else:
        waiting = sum(1 for alert in alerts if alert.acked_by is None)
        colour = "red" if waiting else "green"
        head.update(
            f"alerts ({where}): [{colour}]{len(alerts)} firing, {waiting} not acknowledged[/]"
            + ("; a acknowledges the highlighted one" if waiting else "")
            + _silences_text(app)
        )
    rows = [
        Row(
            str(alert.id),
            (
                str(alert.id),
                alert.severity,
                alert.rule,
                alert.key,
                utc_text(alert.fired_ts_ns),  # the event time of what fired it
                alert.acked_by or "-",
                alert.message,
            ),
        )
        for alert in alerts or []
    ]
    if app.table_rows.get("#alerts", ([], ""))[0] != rows:
        fill(app, "#alerts", rows)


def _silences_text(app: CockpitApp) -> str:
    """The silences in force, folded from the alerts journal (who set each, until when)."""
    view = app.data.alerts_view
    if view is None or not view.silences:
        return ""
    by = {e.silence_id: e.operator for _, e in view.operations if isinstance(e, AlertSilenced)}
    shown = "; ".join(
        f"{s.rule} {s.key or '*'} until {utc_text(s.until_ns)} by {by.get(s.id) or '?'}"
        for s in view.silences
    )
    return escape(f"\n  silenced ({len(view.silences)}): {shown}")


def alert_operation_lines(app: CockpitApp) -> list[str]:
    """The acknowledgements and silences of the alerts journal, newest last (at most 10)."""
    view = app.data.alerts_view
    if app.sources.alerts is None or view is None:
        return []
    lines = [f"journaled alert acknowledgements and silences ({len(view.operations)}):"]
    for seq, event in view.operations[-10:]:
        if isinstance(event, AlertAcknowledged):
            what = f"ack alert {event.alert_id} ({event.rule} {event.key})"
        elif isinstance(event, AlertSilenced):
            what = (
                f"silence {event.silence_id} {event.rule} {event.key or '*'} until {utc_text(event.until_ns)}"
            )
        else:
            what = f"unsilence {event.silence_id}"
        lines.append(f"  seq {seq} {utc_text(event.ts_ns)} {what} by {event.operator}")
    return lines


def _age(ns: int) -> str:
    """A duration in the unit that reads best."""
    seconds = ns / 1e9
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86_400:,.1f} d"


def _live_data_text(app: CockpitApp) -> str:
    """A live source's data (paper, live), from its journaled inputs: the last bars, when they
    arrived (the edge's clock), and how old they are at the newest time the journal holds."""
    overview = app.data.overview
    bars = overview.bars_event()
    refused = ", ".join(f"{reason} {n:,}" for reason, n in sorted(overview.quarantined.items()))
    refused_text = f"; inputs quarantined: {refused}" if refused else ""
    newest = max(overview.last_ts_ns, overview.newest_input_ns, bars.received_ns if bars else 0)
    if bars is None:
        return f"data: no bars received yet (newest journaled time {utc_text(newest)}){refused_text}"
    seq = overview.last_bars.seq if overview.last_bars is not None else 0
    head = (
        f"data: last bars (seq {seq:,}, {len(bars.instrument_ids)} names, {overview.bars_records:,} "
        f"steps of bars) for the step of {utc_text(bars.ts_ns)}"
    )
    if not bars.received_ns:
        return f"{head}; their arrival is not stamped (a feed without a clock){refused_text}"
    lag = bars.received_ns - bars.ts_ns
    late = f"{_age(lag)} after that step" if lag >= 0 else f"{_age(-lag)} before that step"
    stale = newest - bars.received_ns
    colour = "red" if overview.empty_passes else "green"
    return (
        f"{head}, arrived {utc_text(bars.received_ns)} ({late})\n"
        f"  staleness: [{colour}]{_age(stale)}[/] since that arrival at the newest journaled time "
        f"{utc_text(newest)}; {overview.empty_passes:,} clock advances with no bars since{refused_text}"
    )


def _venue_text(app: CockpitApp) -> str:
    sender = app.sources.commands
    session = (
        "a session is writing this journal"
        if sender is not None and sender.running()
        else "no session is writing this journal now"
    )
    overview = app.data.overview
    streams = "; ".join(
        f"{stream} {event.state} at {utc_text(event.ts_ns)}"
        for stream, (_, event) in sorted(overview.connection.items())
    )
    reconciled = overview.last_reconciled
    beat = overview.last_heartbeat
    if not streams and reconciled is None and beat is None:
        return f"venue: no connection changes or heartbeats journaled; {session}"
    lines = [
        f"venue: {streams or 'connected (no drop journaled)'}; {overview.disconnects:,} drops; {session}"
    ]
    if beat is not None:
        answer = f"[red]no answer[/] ({escape(beat.detail)})"
        last = f"round trip {beat.rtt_ns / 1e6:,.1f} ms" if beat.ok else answer
        lines.append(
            f"  heartbeat at {utc_text(beat.ts_ns)}: {last}; {overview.heartbeats_failed:,} of "
            f"{overview.heartbeats:,} unanswered"
        )
    if reconciled is not None:
        seq, found = reconciled
        colour = "red" if found.differences else "green"
        lines.append(
            f"  reconciled ({found.when}, seq {seq:,}) at {utc_text(found.ts_ns)}: [{colour}]"
            f"{counted(len(found.differences), 'difference')}[/], "
            f"{counted(found.fills_recovered, 'fill')} recovered; "
            f"{found.action}"
        )
    return "\n".join(lines)


def _staleness_text(app: CockpitApp) -> str:
    overview = app.data.overview
    dataset = overview.dataset
    last = f"last event {utc_text(overview.last_ts_ns)}" if overview.last_ts_ns else "no events"
    if overview.live_source:
        return f"{_live_data_text(app)}\n{_venue_text(app)}"
    if dataset is None:
        return f"data: no data set referenced; {last}"
    behind_ns = max(0, dataset.last_ts_ns - overview.last_ts_ns)
    mode = "following (polling the journal's length)" if app.data.sources.follow else "not following"
    return (
        f"data: {dataset.frequency} bars to {utc_text(dataset.last_ts_ns)}; {last} "
        f"({behind_ns / 3.6e12:,.1f} h of data not reached)\n"
        f"venue: no live venue (a backtest's simulated venue); {mode}"
    )


def _fill_verdicts(app: CockpitApp, verdicts: list[tuple[int, RiskVerdict]]) -> None:
    acting = [item for item in verdicts if item[1].action != "pass"]
    shown = (acting or verdicts)[-12:]
    rows = [
        Row(str(seq), (str(seq), str(verdict.step), verdict.strategy_id, verdict_text(verdict)))
        for seq, verdict in reversed(shown)
    ]
    fill(app, "#verdicts", rows, "latest acting risk verdicts" if acting else "latest risk verdicts")


def show_summary(app: CockpitApp) -> None:
    summary = app.data.summary
    if summary is None:
        return
    rows = summary.rows()
    # each column as wide as its widest label and figure (a book of several currencies has
    # figures such as "3,796,660.66 / 5,017,012.06 CNY"): two side by side only where they fit
    label_width = max([22, *(len(label) for label, _ in rows)])
    value_width = max([22, *(len(value) for _, value in rows)])
    pair = label_width + value_width
    if 2 * pair + len(SUMMARY_GAP) <= text_width(app):
        half = (len(rows) + 1) // 2
        lines = [
            f"{left[0]:<{label_width}}{left[1]:>{value_width}}{SUMMARY_GAP}"
            f"{right[0]:<{label_width}}{right[1]:>{value_width}}"
            for left, right in zip(rows[:half], [*rows[half:], ("", "")], strict=False)
        ]
    else:  # one figure a line: two side by side would wrap into each other
        lines = [f"{label:<{label_width}}{value:>{value_width}}" for label, value in rows]
    header = "[b]report[/b] (sim.metrics, the figures of `tape report`)\n"
    app.query_one("#cc-summary", Static).update(header + escape("\n".join(lines)))


# --- 2 orders ----------------------------------------------------------------------------------


def show_orders(app: CockpitApp) -> None:
    detail = app.data.detail
    if detail is None:
        return
    funnel = "  ".join(f"{name} {count:,}" for name, count in detail.funnel())
    reasons = ", ".join(f"{reason} x{count:,}" for reason, count in detail.rejection_reasons()) or "none"
    app.query_one("#funnel", Static).update(
        f"[b]funnel[/b] {funnel}\nrejections by reason: {escape(reasons)}"
    )
    text = app.query_one("#blotter-filter").value  # type: ignore[attr-defined]
    _fill_blotter(app, [line for line in detail.orders.values() if _matches(app, line, text)])


def _matches(app: CockpitApp, line: OrderLine, text: str) -> bool:
    for token in text.split():
        key, _, value = token.partition(":")
        fields = {
            "status": line.status,
            "strategy": line.strategy_id,
            "side": side_text(line.side),
            "symbol": symbol(app, line.instrument_id),
            "order": line.order_id,
        }
        if value and key in fields:
            if value.lower() not in fields[key].lower():
                return False
        elif token.lower() not in " ".join((*fields.values(), line.reason)).lower():
            return False
    return True


def _fill_blotter(app: CockpitApp, lines: list[OrderLine]) -> None:
    rows = []
    for line in reversed(lines[-BLOTTER_ROWS_MAX:]):
        inst = app.data.overview.instruments.get(line.instrument_id)
        qty_digits = inst.qty_digits if inst is not None else 0
        cells = (
            str(line.submitted_seq),
            line.order_id,
            line.strategy_id,
            symbol(app, line.instrument_id),
            side_text(line.side),
            decimal(line.qty_raw, qty_digits),
            decimal(line.filled_raw, qty_digits),
            _average_px(line, inst),
            line.status,
            line.reason,
        )
        rows.append(Row(line.order_id, cells))
    shown = min(len(lines), BLOTTER_ROWS_MAX)
    fill(app, "#blotter", rows, f"blotter: {shown:,} of {len(lines):,} matching orders, newest first")


def _average_px(line: OrderLine, inst: Instrument | None) -> str:
    """The fills' average price, from their notionals (exact to the instrument's tick digits)."""
    if not line.filled_raw or inst is None:
        return "-"
    scale = 10 ** (inst.price_digits + inst.qty_digits - minor_digits(inst.currency))
    px_raw = div_round(line.notional_minor * scale, line.filled_raw * inst.multiplier, Rounding.HALF_EVEN)
    return decimal(px_raw, inst.price_digits)


def show_quality(app: CockpitApp) -> None:
    qualities = app.data.execution
    if qualities is None:
        return
    several = len(qualities) > 1  # a book of several currencies: one block per currency
    lines = []
    for quality in qualities:
        where = f" in {quality.total.currency}" if several else ""
        lines.append(
            f"[b]execution quality{where}[/b] (shortfall and slippage vs the decision price; + is a cost)"
        )
        lines.extend(_quality_lines(app, quality))
    app.query_one("#quality", Static).update("\n".join(lines))


def _quality_lines(app: CockpitApp, quality: ExecutionLike) -> list[str]:
    """One currency's execution quality: in total, per strategy, the last days, the worst orders."""
    lines = []
    total = quality.total
    groups = [("total", total), *((f"strategy {k}", v) for k, v in quality.by_strategy.items())]
    groups += [(f"day {day_text(k)}", v) for k, v in list(quality.by_day.items())[-5:]]
    header = ("", "parents", "fill ratio", "shortfall", "slip bp", "vs arrival bp")
    table = [header] + [
        (
            name,
            f"{row.parents:,}",
            pct_e8(row.fill_ratio_e8),
            money(row.shortfall_decision_minor, row.currency),
            f"{row.slippage_decision_e8 / 10_000:+.2f}",
            f"{row.slippage_arrival_e8 / 10_000:+.2f}",
        )
        for name, row in groups
    ]
    # each column as wide as its widest cell, so a figure is never cut; a name (a strategy id)
    # too long for the room the figures leave goes on a line of its own above them
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    room = table_width(app)
    gap = " " * (2 if sum(widths) + 2 * (len(widths) - 1) <= room else 1)
    figures_width = sum(widths[1:]) + len(gap) * (len(widths) - 1)
    widths[0] = max(min(widths[0], room - figures_width), len("total"))
    for name, *figures in table:
        figures_text = "".join(f"{gap}{c:>{w}}" for c, w in zip(figures, widths[1:], strict=True))
        if len(name) > widths[0]:
            lines.append(escape(name))
            name = ""
        lines.append(escape(f"{name:<{widths[0]}}{figures_text}"))
    worst = sorted(quality.rows, key=lambda r: -r.shortfall_decision_minor)[:5]
    lines.append("worst orders by shortfall:")
    lines.extend(
        f"  {row.parent_id} {side_text(row.side)} {symbol(app, row.instrument_id)} "
        f"{money(row.shortfall_decision_minor, row.currency)} ({row.slippage_decision_e8 / 10_000:+.2f} bp)"
        for row in worst
    )
    return lines


# --- 3 positions -----------------------------------------------------------------------------


def show_positions(app: CockpitApp) -> None:
    snapshot = app.data.snapshot_event()
    head = app.query_one("#positions-head", Static)
    if snapshot is None:
        fill(app, "#positions-table", [])
        head.update("no day has closed yet: the kernel snapshots its book at each day close")
        return
    close = app.data.overview.closes[-1][1] if app.data.overview.closes else None
    step = snapshot.snapshot.next_step - 1
    marks = app.data.marks.at_step(step) if app.data.marks is not None else None
    rates = app.data.overview.last_rates
    if rates is not None and close is not None and rates.day != close.day:
        rates = None  # not this close's (the close's rates follow it): weigh nothing rather than guess
    lines = position_lines(
        snapshot.snapshot, app.data.overview.instruments, close, marks, rates, app.data.overview.currency
    )
    limit = app.data.overview.limit_e8("name")
    rows = []
    for line in lines:
        ccy = line.currency
        optional = [
            decimal(v, line.qty_digits) if v is not None else "-"
            for v in (line.held, line.locked, line.sellable)
        ]
        weight = pct_e8(line.weight_e8) if line.weight_e8 is not None else "-"
        cells = (
            line.symbol,
            ccy,
            decimal(line.qty_raw, line.qty_digits),
            *optional,
            money(line.cost_minor, ccy),
            decimal(line.mark_px_raw, line.price_digits) if line.mark_px_raw is not None else "-",
            money(line.value_minor, ccy) if line.value_minor is not None else "-",
            f"{weight}/{_limit(limit)}",
            money(line.unrealised_minor, ccy) if line.unrealised_minor is not None else "-",
        )
        rows.append(Row(str(line.instrument_id), cells))
    fill(app, "#positions-table", rows)
    marked = (
        "marked at the day's last closes" if marks is not None else "not marked yet (loading the data set)"
    )
    if app.data.sources.marks is None:
        marked = "not marked: no data set marks were given"
    last = app.data.overview.last_snapshot
    head.update(
        f"book at the close of {day_text(snapshot.day)} (kernel snapshot seq "
        f"{last.seq if last else '?'}), {len(lines)} positions, "
        f"{marked}; T+1 columns for A-shares only"
    )


# --- 4 why? ------------------------------------------------------------------------------------


def show_why_chain(app: CockpitApp, decoded: list[tuple[int, str, Event]]) -> None:
    app.why_links = []
    instruments, currency = app.data.overview.instruments, app.data.overview.currency
    rows = []
    for seq, role, event in decoded:
        kind = str(type(event).__struct_config__.tag)
        app.why_links.append((seq, role, kind, full_text(event)))
        rows.append(Row(str(seq), (str(seq), role, kind, describe(event, instruments, currency))))
    fill(app, "#why-table", rows)
    if decoded:
        show_why_event(app, 0)
    # after the refresh: the why screen may not be shown yet, and a hidden table takes no focus
    app.call_after_refresh(app.query_one("#why-table", DataTable).focus)


def show_why_event(app: CockpitApp, index: int) -> None:
    if 0 <= index < len(app.why_links):
        seq, role, kind, text = app.why_links[index]
        app.query_one("#why-event", Static).update(escape(f"seq {seq} ({role}) {kind}\n{text}"))


# --- 5 journal -------------------------------------------------------------------------------


def show_tail(app: CockpitApp, page: TailPage) -> None:
    """The journal page; a followed page that only slid on gets its new rows appended
    (``tui.tables.fill_table``)."""
    cells = [Row(str(row.seq), (str(row.seq), row.time, row.kind, row.text)) for row in page.rows]
    fill(app, "#tail", cells)
    app.query_one("#tail-head", Static).update(escape(page.head))


# --- 6 replay ----------------------------------------------------------------------------------


def show_replay_journal(app: CockpitApp, day: int) -> None:
    closes = [(seq, close) for seq, close in app.data.overview.closes if close.day == day]
    widget = app.query_one("#replay-journal", Static)
    if not closes:
        days = [close.day for _, close in app.data.overview.closes]
        span = f"{day_text(days[0])} .. {day_text(days[-1])}" if days else "none"
        widget.update(f"the journal has no close of {day_text(day)} (session days: {span})")
        return
    seq, close = closes[0]
    index = next(i for i, (s, _) in enumerate(app.data.overview.closes) if s == seq)
    previous = app.data.overview.closes[index - 1][1].nav_minor if index else initial_nav_minor(app)
    ccy = close.currency
    width = side_width(app)
    # lines break between a label and its figure, never inside one ("(day PnL" at the end of a
    # line and its figure on the next, at 80 columns)
    head = fitted(["journal", f"{day_text(day)}:", f"seq {seq:,},", f"step {close.step:,}"], width, " ")
    figures = fitted(
        [
            f"NAV {money(close.nav_minor, ccy)}",
            f"day PnL {money(close.nav_minor - previous, ccy)}",
            f"cash {money(close.cash_minor, ccy)}",
            f"gross {money(close.gross_exposure_minor, ccy)}",
        ],
        width - 2,
    )
    lines = [f"[b]journal[/b]{escape(head[0].removeprefix('journal'))}", *map(escape, head[1:])]
    widget.update("\n".join([*lines, *(f"  {escape(line)}" for line in figures)]))


def side_width(app: CockpitApp) -> int:
    """The cells a line of text may use in one of two screen halves side by side (``.sides``:
    each ``1fr`` with one cell of padding), whether or not the screen scrolls."""
    return text_width(app) // 2 - 1


# --- 7 data, 8 commands ---------------------------------------------------------------------


def show_command_buttons(app: CockpitApp) -> None:
    """halt / flatten / rearm on while a session writes the journal (``CommandSender``); pause,
    resume go to one strategy (its id typed above); acknowledge on while an alert of the alert
    state (``--alerts``) waits for one: it acknowledges the one highlighted on the command centre."""
    sender = app.sources.commands
    live = sender is not None and sender.running()
    app.query_one("#commands-reason", Static).update(COMMANDS_LIVE if live else COMMANDS_DISABLED_REASON)
    waiting = [alert for alert in app.data.alerts or [] if alert.acked_by is None]
    for command in OPERATOR_COMMANDS:
        button = app.query_one(f"#cmd-{command}", Button)
        enabled = live and command in SENDABLE
        if command == "acknowledge":  # the alert highlighted on the command centre (a)
            enabled = app.sources.alerts is not None and bool(waiting)
        button.disabled = not enabled
        button.label = command if enabled else f"{command} (disabled)"


def show_static_tabs(app: CockpitApp) -> None:
    dataset = app.data.overview.dataset
    if dataset is None:
        text = "the journal references no data set"
    else:
        text = (
            f"[b]data set[/b] {escape(dataset.uri)}\n  content hash {dataset.content_hash}\n"
            f"  {dataset.frequency} bars, calendar {dataset.calendar}, {dataset.steps:,} steps, "
            f"{dataset.instruments:,} instrument{'' if dataset.instruments == 1 else 's'}, "
            f"{utc_text(dataset.first_ts_ns)} .. {utc_text(dataset.last_ts_ns)}"
        )
    if app.data.health is not None:
        text += "\n\n[b]data health[/b]\n" + escape("\n".join(app.data.health))
    elif app.data.sources.health is not None:
        text += "\n\ndata health: reading the lake..."
    else:
        text += (
            "\n\ndata health (coverage, gaps, quarantined rows by reason) comes from the lake the "
            "data set was exported from: open the cockpit with `--lake LAKE`, or run `tape health LAKE`."
        )
    app.query_one("#data-health", Static).update(text)
    show_command_buttons(app)
    show_journaled_commands(app)


def show_journaled_commands(app: CockpitApp) -> None:
    """The commands screen's history: the run journal's operator commands and kill-switch
    events, then (with --alerts) the alerts journal's acknowledgements and silences."""
    journaled = app.data.overview.operator_commands
    lines = [f"journaled operator commands ({len(journaled)}):"]
    lines.extend(
        f"  seq {seq} {utc_text(cmd.ts_ns)} {cmd.command} by {cmd.operator} {cmd.note}"
        for seq, cmd in journaled
    )
    lines.append("kill switch history:")
    lines.extend(f"  seq {seq} {text}" for seq, text in app.data.overview.kill_events[-10:])
    lines.extend(alert_operation_lines(app))
    app.query_one("#commands-journaled", Static).update(escape("\n".join(lines)))
