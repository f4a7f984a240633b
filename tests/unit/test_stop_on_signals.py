"""A signal stops the verb even when it lands in code whose exceptions Python cannot pass on:
a weak reference's callback (the import system's module-lock clean-up is one), where the
``Stopped`` its handler raises is printed as "Exception ignored" and dropped. Seen as a flaky
contract test: a ``tape replay`` signalled at that moment printed a traceback and finished."""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref
from typing import Any

import pytest

from cli.main import Stopped, stop_on_signals


class _Thing:
    pass


def _signal_inside_a_callback(signum: int) -> None:
    """Drop the last reference to an object whose weak reference's callback signals this
    process and then runs on a while, so the handler runs inside the callback."""
    thing = _Thing()

    def callback(_: object) -> None:
        os.kill(os.getpid(), signum)
        for _ in range(10_000):  # bytecode boundaries: the pending handler runs here
            pass

    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # after the callback, where a stop can propagate
        time.sleep(0.001)


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_dropped_inside_a_callback_is_raised_after_it(signum: int) -> None:
    with stop_on_signals(), pytest.raises(Stopped) as stopped:
        _signal_inside_a_callback(signum)
    assert stopped.value.signum == signum


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="POSIX signals")
def test_without_the_hook_the_same_stop_is_dropped() -> None:
    """The test above can fail: with Python's own hook the stop is lost and the code runs on."""
    dropped: list[Any] = []
    with stop_on_signals():
        sys.unraisablehook = dropped.append
        _signal_inside_a_callback(signal.SIGTERM)  # no Stopped here
    assert [type(u.exc_value) for u in dropped] == [Stopped]
