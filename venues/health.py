"""A paper or live session's health at the edge: how old each name's market data is.

The kernel's stale-data trigger (``kill_switch.stale_data_ns_max``) judges the names a decision
holds or names, at the decision (``kernel.killswitch``): between decisions, or on the venue's
clock (which a name that stopped printing holds back, ``venues.bar_feed.StepAssembler``), a
silent name goes unseen. ``StaleWatch`` looks at every pass of the session's loop: a name's age
is the newest bar close any name reached (or the clock, when later) minus its own newest bar
close. The session sets the limit no shorter than a bar plus its grace period (a bar may be that
late with nothing wrong). When one passes the limit the session journals a halt (or, with
``flatten_on_trip``, a flatten) as an operator command from ``health`` with the ages in its
note, so the trip is a journaled input and replays; the watch says so once per episode (again
only after every name is fresh).

``AnswerWatch`` covers a venue that goes silent: the kernel's latency trigger
(``kill_switch.latency_ns_max``) judges an answer when it comes, so an order that is never
answered never trips it. Every pass, an order the venue has not acknowledged whose send (its
``sent`` message, as the edge handed it in) is older than the limit goes in the same way, once
per order; an order not sent yet is not judged.

``HeartbeatWatch`` judges the session's heartbeats (``paper.heartbeat_s``: a timed round trip to
the venue, journaled as ``venue.heartbeat.v1``): a round trip longer than the latency limit, or
``paper.heartbeat_misses`` heartbeats in a row the venue did not answer, go in the same way —
so a venue that stops answering, or answers ever more slowly, trips the kill switch even while
no order is waiting. Once per episode: it judges again only after a heartbeat within the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["AnswerWatch", "HeartbeatWatch", "StaleWatch"]


class StaleWatch:
    """``names``: instrument id -> symbol (for the note); ``limit_ns``: the largest age allowed."""

    def __init__(self, names: Mapping[int, str], limit_ns: int) -> None:
        if limit_ns <= 0:
            raise ValueError(f"limit_ns must be positive, got {limit_ns}")
        self.names = dict(names)
        self.limit_ns = limit_ns
        self.tripped = False
        self.episodes = 0

    def check(self, now_ns: int, newest: Mapping[int, int]) -> str | None:
        """A note naming the stale names when one just went past the limit, else None."""
        seen = [newest[iid] for iid in self.names if newest.get(iid, 0) > 0]
        if not seen:
            return None
        reference = max(now_ns, *seen)
        stale = [
            (reference - newest.get(iid, 0), iid)
            for iid in sorted(self.names)
            if newest.get(iid, 0) > 0 and reference - newest[iid] > self.limit_ns
        ]
        if not stale:
            self.tripped = False
            return None
        if self.tripped:
            return None
        self.tripped = True
        self.episodes += 1
        ages = ", ".join(f"{self.names[iid]} {age / 1e9:,.0f} s" for age, iid in sorted(stale, reverse=True))
        return f"stale data: newest bar older than {self.limit_ns / 1e9:,.0f} s: {ages}"


class AnswerWatch:
    """``limit_ns``: the longest an order may wait for the venue's first answer."""

    def __init__(self, limit_ns: int) -> None:
        if limit_ns <= 0:
            raise ValueError(f"limit_ns must be positive, got {limit_ns}")
        self.limit_ns = limit_ns
        self._reported: set[str] = set()

    def check(self, now_ns: int, waiting: Mapping[str, int]) -> str | None:
        """``waiting``: order id -> when it was sent, for the orders with no answer yet. A note
        naming those past the limit that were not reported before, else None."""
        late = sorted(
            (now_ns - sent, order_id)
            for order_id, sent in waiting.items()
            if now_ns - sent > self.limit_ns and order_id not in self._reported
        )
        if not late:
            return None
        self._reported.update(order_id for _, order_id in late)
        orders = ", ".join(f"{order_id} {age / 1e9:,.0f} s" for age, order_id in reversed(late))
        return f"no answer from the venue within {self.limit_ns / 1e9:,.0f} s: {orders}"


class HeartbeatWatch:
    """``limit_ns``: the longest round trip allowed (0: not judged); ``misses_max``: how many
    unanswered heartbeats in a row are allowed before it reports (0: not judged)."""

    def __init__(self, limit_ns: int, misses_max: int) -> None:
        if limit_ns < 0 or misses_max < 0:
            raise ValueError(f"limits must be >= 0, got limit_ns={limit_ns}, misses_max={misses_max}")
        self.limit_ns = limit_ns
        self.misses_max = misses_max
        self.misses = 0  # unanswered in a row
        self.tripped = False
        self.episodes = 0

    def check(self, ok: bool, rtt_ns: int, detail: str = "") -> str | None:
        """One heartbeat (answered in ``rtt_ns``, or not, ``detail`` saying why): a note when it
        starts an episode, else None."""
        if ok:
            self.misses = 0
            if not (self.limit_ns and rtt_ns > self.limit_ns):
                self.tripped = False
                return None
            note = (
                f"heartbeat round trip {rtt_ns / 1e6:,.3f} ms over the limit of {self.limit_ns / 1e6:,.3f} ms"
            )
        else:
            self.misses += 1
            if not (self.misses_max and self.misses >= self.misses_max):
                return None
            why = detail or "no reason given"
            note = f"{self.misses} heartbeats in a row unanswered by the venue (last: {why})"
        if self.tripped:
            return None
        self.tripped = True
        self.episodes += 1
        return note
