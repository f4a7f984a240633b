"""A recorded venue session, played back to the kernel as an asynchronous venue.

The recording is a list of ``domain.events.VenueMessage`` in the order they were *received*
(JSON lines on disk: one message per line). ``ts_ns`` is the receive time: a message is delivered
at the first step of the panel at or after it, so the times must not decrease down the file. The
stream may be messy (duplicates, gaps, reordering, messages for unknown orders): the kernel's
venue inbox (``kernel.venue_inbox``) guards and journals it.

The venue answers nothing itself: ``submit`` returns ``None`` (the ack, or reject, is in the
recording), orders fill only through recorded fills, and replaces are refused (the kernel asks
for a replace only through the execution router, which needs a synchronous venue). Each received
message is journaled as an input, so replay never needs the recording file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
import numpy as np

from domain.events import OrderExpired, OrderFilled, OrderReplaceRejected, VenueMessage
from domain.market import Panel
from domain.orders import Order
from kernel.venue import NO_ACTIVITY

__all__ = ["RecordedVenue", "RecordingError", "read_recording", "write_recording"]

_decoder = msgspec.json.Decoder(VenueMessage)
_encoder = msgspec.json.Encoder()


class RecordingError(ValueError):
    """A recording that cannot be played back (unreadable line, times out of order or range)."""


def read_recording(path: Path) -> list[VenueMessage]:
    """Messages of a JSON-lines recording, in file order."""
    messages = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as error:
        raise RecordingError(f"recording {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            messages.append(_decoder.decode(line))
        except msgspec.DecodeError as error:
            raise RecordingError(f"recording {path} line {number}: {error}") from None
    return messages


def write_recording(path: Path, messages: Iterable[VenueMessage]) -> None:
    Path(path).write_bytes(b"".join(_encoder.encode(message) + b"\n" for message in messages))


class RecordedVenue:
    """Plays a recorded message stream to the kernel (``kernel.venue.AsyncVenuePort``)."""

    def __init__(self, panel: Panel, messages: Sequence[VenueMessage], *, pending_max: int = 1024) -> None:
        if pending_max < 0:
            raise RecordingError(f"pending_max must not be negative, got {pending_max}")
        self.pending_max = pending_max
        self._panel = panel
        times = np.array([message.ts_ns for message in messages], dtype=np.int64)
        if times.size and np.any(times[1:] < times[:-1]):
            index = int(np.flatnonzero(times[1:] < times[:-1])[0]) + 1
            raise RecordingError(
                f"recording message {index} (venue_seq {messages[index].venue_seq}) was received at "
                f"{times[index]}, before the message above it ({times[index - 1]})"
            )
        steps = np.searchsorted(panel.ts_ns, times, side="left")
        if times.size and int(steps[-1]) >= panel.steps:
            last = messages[-1]
            raise RecordingError(
                f"recording message venue_seq {last.venue_seq} at {last.ts_ns} is after the data's end"
            )
        self._by_step: dict[int, list[VenueMessage]] = {}
        for step, message in zip(steps.tolist(), messages, strict=True):
            self._by_step.setdefault(step, []).append(message)
        self._steps = np.array(sorted(self._by_step), dtype=np.int64)

    @classmethod
    def from_file(cls, panel: Panel, path: Path, *, pending_max: int = 1024) -> RecordedVenue:
        return cls(panel, read_recording(path), pending_max=pending_max)

    # --- AsyncVenuePort ----------------------------------------------------------------------

    def poll(self, step: int) -> list[VenueMessage]:
        return list(self._by_step.get(step, ()))

    def next_poll_step(self, step: int) -> int:
        index = int(np.searchsorted(self._steps, step, side="right"))
        return int(self._steps[index]) if index < self._steps.size else NO_ACTIVITY

    # --- VenuePort ---------------------------------------------------------------------------

    def submit(self, step: int, order: Order) -> None:
        """The answer is in the recording."""
        return None

    def replace(self, step: int, order: Order, qty_raw: int, limit_px_raw: int) -> OrderReplaceRejected:
        return OrderReplaceRejected(
            ts_ns=int(self._panel.ts_ns[step]),
            order_id=order.order_id,
            qty_raw=qty_raw,
            limit_px_raw=limit_px_raw,
            reason="REPLACE_UNSUPPORTED: a recorded venue only plays back its recording",
        )

    def match(self, step: int, orders: list[Order]) -> list[OrderFilled]:
        """Fills come as recorded messages, never from bars."""
        return []

    def next_activity(self, step: int, orders: list[Order]) -> int:
        return self.next_poll_step(step)

    def end_of_day(self, step: int, orders: list[Order]) -> list[OrderExpired]:
        """Expiries come as recorded messages."""
        return []
