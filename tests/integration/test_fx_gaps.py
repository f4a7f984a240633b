"""A backtest of a two-currency book whose data set lacks rates on several days is refused
before its journal opens, naming every gap (it named the first only: a file with several gaps
was fixed one run at a time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.loop import KernelError
from tests.factories import two_currency_run


def test_a_run_with_several_rate_gaps_names_them_all_before_the_journal_opens(tmp_path: Path) -> None:
    # CNY rates on the 2nd and 4th only, each the day's rate that day alone: the 3rd, 5th and 6th lack one
    with pytest.raises(KernelError) as caught:
        two_currency_run(tmp_path, rate_days=[20240102, 20240104], stale_days_max=0)
    message = str(caught.value)
    assert "no CNY/USD rate on 20240103: the latest, on 20240102, is 1 day old" in message
    assert "3 rates missing or stale in all (fx.stale_days_max = 0)" in message
    assert (
        "CNY/USD on 3 days: 20240103 (latest on 20240102), 20240105 to 20240106 (2 days, latest on 20240104)"
        in message
    )
    assert not (tmp_path / "journal").exists()
