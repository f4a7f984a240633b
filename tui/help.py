"""The help screen: every key of the cockpit, and what is not built."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HELP_TEXT", "HelpScreen"]

HELP_TEXT = """\
[b]Tape cockpit -- keys[/b]

  1  command centre   NAV / drawdown, exposure and leverage vs the policy, kill switch,
                      firing alerts, data staleness, verdicts
  2  orders           funnel, rejection reasons, blotter (/ filters), execution quality
  3  positions        per instrument: qty, T+1 held / locked / sellable, value, weight, unrealised
  4  why?             fill -> order -> risk verdicts -> decision, each event decoded with its seq
  5  journal          the event stream; / filters (kind:fill instrument:SYM order:ID), g seq
  6  replay           a day's records with the book after each (n / p record, ] / \\[ step,
                      { / } the day's opening / end),
                      and a fresh kernel's replay of it beside the journal's close
  7  data             the data set the run read (--lake: `tape health` of bars, trades, quotes)
  8  commands         halt / flatten / rearm, pause / resume a strategy, to a running paper
                      session (off otherwise; each asks first, y sends it)

  w  why this row (an order, a position, a fill)     /  filter the current screen
  g  go to a sequence number or a time (UTC)          r  recompute the report folds
  a  acknowledge the alert highlighted on the command centre (--alerts RULES; y confirms)
  ?  this help                                        q  quit
  tab / shift+tab move between widgets; arrows move in tables; escape closes this help

[b]Not built[/b]: silencing an alert (`tape alerts silence`; acknowledging is `a`), a
per-instrument drill-down of the data health (`tape health LAKE --json`).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [  # noqa: RUF012 (Textual's declared class attribute)
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
        Binding("q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP_TEXT, id="help-text")
