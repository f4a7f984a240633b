"""``tape option-chain``: a data set of an underlying's real daily bars plus a Black-Scholes-priced
option chain on it (``lake.option_chain``; model-priced option bars, not market data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.arguments import output_file
from cli.progress import console, one_stdout, results_on_stderr, write_output
from cli.wiring import ConfigError
from domain.fixed import RATE_SCALE, Rounding, from_decimal_text
from lake.option_chain import OptionChainSpec, write_option_chain

__all__ = ["add_option_chain_parser", "cmd_option_chain"]


def add_option_chain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "option-chain",
        help="write an underlying's daily bars + a model-priced (Black-Scholes) option chain",
    )
    parser.add_argument("csv", help="the underlying's daily CSV (abu format: date, open..close, volume)")
    parser.add_argument("out", help="the data set folder to write")
    parser.add_argument("--underlying", required=True, help="the underlying's symbol, e.g. AAPL")
    parser.add_argument("--strikes", required=True, help="comma-separated strikes, e.g. 100,110,120")
    parser.add_argument("--expiries", required=True, help="comma-separated YYYY-MM-DD expiry sessions")
    parser.add_argument("--start", required=True, help="first session, YYYY-MM-DD")
    parser.add_argument("--end", required=True, help="last session, YYYY-MM-DD")
    parser.add_argument("--vol", required=True, help="flat annual volatility, decimal (0.30 = 30%%)")
    parser.add_argument("--rate", default="0", help="annual rate, decimal (default 0)")
    parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write the data set's path, content hash and chain as JSON "
                        "(alone or '-': stdout)")  # fmt: skip
    return parser


def _day(text: str) -> int:
    try:
        year, month, day = (int(part) for part in text.split("-"))
    except ValueError:
        raise ConfigError(f"not a YYYY-MM-DD date: {text!r}") from None
    return year * 10_000 + month * 100 + day


def _decimal(name: str, text: str, digits: int) -> int:
    try:
        return from_decimal_text(text.strip(), digits, Rounding.HALF_EVEN)
    except (ValueError, ArithmeticError):
        raise ConfigError(f"--{name}: not a decimal number: {text!r}") from None


def cmd_option_chain(args: argparse.Namespace) -> int:
    to_stdout = one_stdout(json=args.json)
    digits = len(str(RATE_SCALE)) - 1  # 1e-8
    try:
        spec = OptionChainSpec(
            underlying=args.underlying,
            strikes_raw=[_decimal("strikes", text, 2) for text in args.strikes.split(",")],
            expiry_days=[_day(text.strip()) for text in args.expiries.split(",")],
            first_day=_day(args.start),
            last_day=_day(args.end),
            vol_e8=_decimal("vol", args.vol, digits),
            rate_e8=_decimal("rate", args.rate, digits),
        )
        ref = write_option_chain(Path(args.out), Path(args.csv), spec)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        console.print(
            f"wrote {args.out}: {args.underlying} + model-priced options, NOT market data "
            f"(content hash {ref.content_hash[:16]}...)",
            soft_wrap=True,
        )
    if args.json:
        summary = {
            "dataset": str(args.out),
            "content_hash": ref.content_hash,
            "underlying": args.underlying,
            "market_data": False,  # the options' bars are Black-Scholes prices
            "strikes": [raw / 100 for raw in spec.strikes_raw],
            "expiries": [_iso(day) for day in spec.expiry_days],
            "start": _iso(spec.first_day),
            "end": _iso(spec.last_day),
            "vol": spec.vol_e8 / RATE_SCALE,
            "rate": spec.rate_e8 / RATE_SCALE,
        }
        write_output(args.json, json.dumps(summary, indent=1) + "\n", option="--json")
        if args.json != "-":
            console.print(f"wrote {args.json}", soft_wrap=True, highlight=False, markup=False)
    return 0


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
