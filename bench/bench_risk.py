"""Pre-trade risk benchmark: the full portfolio pass over a 5,000-name intent vector per step,
against one bare NumPy pass over the same arrays, measured in the same run.

    python bench/bench_risk.py [--names 5000] [--steps 2000]

Bare pass = the measures every portfolio rule needs (|w|, gross, net, per-sector and per-country
sums, perpetual long/short sums), computed once with NumPy and no enforcement.
Targets (issue 6): <= 1 ms per step and <= 5x the bare pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.instruments import Instrument
from domain.riskrules import RiskPolicy, evaluate_intent, make_intent
from kernel.pipeline import RiskStage


def per_call_ms(steps: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(steps):
            work()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=5_000)
    parser.add_argument("--steps", type=int, default=2_000)
    args = parser.parse_args()
    rng = np.random.default_rng(20240102)
    n = args.names
    arrays = (
        np.arange(n),
        rng.integers(-3_000_000, 3_000_000, n),  # every rule but net has work to do
        rng.integers(-1_000_000, 1_000_000, n),
        rng.integers(-1, 11, n),
        rng.integers(-1, 5, n),
        rng.random(n) < 0.1,
    )
    intent = make_intent(*arrays)
    policy = RiskPolicy()
    target, sectors, countries, perp = intent.target_e8, intent.sector_ids, intent.country_ids, intent.is_perp

    def bare() -> object:
        magnitude = np.abs(target)
        return (
            magnitude.max(),
            magnitude.sum(),
            target.sum(),
            np.bincount(sectors + 1, weights=magnitude, minlength=intent.n_sectors + 1),
            np.bincount(countries + 1, weights=magnitude, minlength=intent.n_countries + 1),
            target[perp & (target > 0)].sum(),
            target[perp & (target < 0)].sum(),
        )

    evaluate_intent(intent, policy)  # compile / warm
    actions = [v.action for v in evaluate_intent(intent, policy).verdicts]
    bare_ms = per_call_ms(args.steps, bare)
    full_ms = per_call_ms(args.steps, lambda: evaluate_intent(intent, policy))
    built_ms = per_call_ms(args.steps, lambda: evaluate_intent(make_intent(*arrays), policy))
    # What the kernel runs per decision: dicts of weights in, instrument groups from the master.
    ids, target_list, current_list = arrays[0].tolist(), arrays[1].tolist(), arrays[2].tolist()
    instruments = {
        iid: Instrument(
            instrument_id=iid,
            symbol=f"S{iid}",
            venue="B",
            asset_class="crypto_perp" if is_perp else "equity",
            currency="USD",
            price_digits=2,
            tick_raw=1,
            qty_digits=0,
            lot_raw=1,
            sector=f"sector{sector}" if sector >= 0 else "",
            country=f"country{country}" if country >= 0 else "",
        )
        for iid, sector, country, is_perp in zip(
            ids, arrays[3].tolist(), arrays[4].tolist(), arrays[5].tolist(), strict=True
        )
    }
    stage = RiskStage(policy, instruments)
    targets = dict(zip(ids, target_list, strict=True))
    held = dict(zip(ids, current_list, strict=True))
    kernel_ms = per_call_ms(max(1, args.steps // 4), lambda: stage.portfolio(targets, held))
    print(f"names={n} steps={args.steps} verdict actions={actions}")
    print(f"bare numpy pass            {bare_ms:8.4f} ms/step")
    print(f"evaluate_intent            {full_ms:8.4f} ms/step   ratio {full_ms / bare_ms:5.2f}x")
    print(f"make_intent + evaluate     {built_ms:8.4f} ms/step   ratio {built_ms / bare_ms:5.2f}x")
    print(f"kernel RiskStage (dicts)   {kernel_ms:8.4f} ms/step   ratio {kernel_ms / bare_ms:5.2f}x")
    print(
        f"targets: <= 1 ms/step ({'met' if full_ms <= 1 else 'MISSED'}), "
        f"<= 5x bare ({'met' if full_ms <= 5 * bare_ms else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
