"""The confirmation step of an operator action: what it will do, ``y`` to do it, ``n`` or
escape to leave it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["ConfirmScreen"]


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [  # noqa: RUF012 (Textual's declared class attribute)
        Binding("y", "answer(True)", "Yes, do it"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-text")
            yield Static("y  do it      n / escape  leave it", id="confirm-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
