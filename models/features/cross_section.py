"""Cross-sectional features over the lake, in Polars: per-instrument time-series features, then
cross-sectional operators at each timestamp (rank, z-score, winsorise, neutralise by group and
by a numeric exposure such as size), written back to the lake as their own partition and cached
under a hash of their definition and inputs.

A frame here is long: one row per (``ts_ns``, ``instrument_id``) with the lake's bar columns
(raw integer prices; ``close`` etc.) and, after ``time_series``, a float ``value``.

**No look-ahead.** A time-series feature sees each instrument's bars in time order and may only
look back (``shift(n)`` with ``n >= 0``, rolling windows); the cross-sectional operators combine
rows of one timestamp only. ``check_causal`` enforces it on the data itself: the feature
computed on the bars up to a cut must equal, at every row up to the cut, the feature computed on
all the bars, at cuts spread over the timeline (early ones too, so a full-sample statistic is
caught) — a definition that reads a later bar fails with ``LookAheadError`` naming the first
row that differs. ``materialise`` runs the check before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lake.partitioned import Lake
from lake.schema import Kind
from models.features.alpha158 import ALPHA158, ALPHA158_V1, ALPHA158_VERSIONS
from models.features.windows import window_std

__all__ = [
    "FEATURE_VERSIONS",
    "FeatureSpec",
    "LookAheadError",
    "TIME_SERIES",
    "causal_cuts",
    "check_causal",
    "check_version",
    "frame_hash",
    "materialise_inputs",
    "cs_neutralise",
    "cs_rank",
    "cs_winsorise",
    "cs_zscore",
    "validate_spec",
    "feature_version",
    "materialise",
    "time_series",
]

TimeSeriesFn = Callable[[pl.DataFrame, dict[str, Any]], pl.Expr]


class LookAheadError(ValueError):
    """A feature whose value at some row changes when later bars are removed."""


def _price(column: str = "close") -> pl.Expr:
    return pl.col(column).cast(pl.Float64)


def _alpha158(name: str) -> pl.Expr:
    if name not in ALPHA158:
        raise ValueError(f"unknown Alpha158 feature {name!r}; known: {', '.join(ALPHA158)}")
    return ALPHA158[name]()


TIME_SERIES: dict[str, TimeSeriesFn] = {
    # return over `lookback` bars, skipping the latest `skip`: close[t-skip] / close[t-lookback] - 1
    "momentum": lambda _f, p: _price().shift(int(p.get("skip", 0))) / _price().shift(int(p["lookback"]))
    - 1.0,
    # rolling standard deviation of one-bar log returns over `window` bars
    "volatility": lambda _f, p: window_std((_price() / _price().shift(1)).log(), int(p["window"])),
    # close over its `window`-bar mean, less one
    "distance_from_mean": lambda _f, p: _price() / _price().rolling_mean(int(p["window"])) - 1.0,
    # log of the mean traded value over `window` bars (a size / liquidity proxy)
    "log_dollar_volume": lambda _f, p: (_price() * pl.col("volume").cast(pl.Float64))
    .rolling_mean(int(p["window"]))
    .log(),
    # one of the twenty Alpha158-style features by its Qlib name (models.features.alpha158)
    "alpha158": lambda _f, p: _alpha158(str(p["name"])),
}  # fmt: skip


# Each time-series definition's version (1 unless listed): 2 where the computation changed.
# ``volatility`` 2: the rolling standard deviation from each window alone
# (models.features.windows); version 1 (Polars' rolling_std) stays in ``_VERSION_1`` so a model
# artifact trained with it is scored with it. Alpha158's versions are per name (ALPHA158_VERSIONS).
FEATURE_VERSIONS: dict[str, int] = {"volatility": 2}
_VERSION_1: dict[str, TimeSeriesFn] = {
    "volatility": lambda _f, p: (_price() / _price().shift(1)).log().rolling_std(int(p["window"])),
    "alpha158": lambda _f, p: _alpha158_v1(str(p["name"])),
}


def _alpha158_v1(name: str) -> pl.Expr:
    return ALPHA158_V1[name]() if name in ALPHA158_V1 else _alpha158(name)


def feature_version(name: str, params: dict[str, Any]) -> int:
    """The version this code computes of the time-series feature ``name`` with ``params``."""
    if name == "alpha158":
        return ALPHA158_VERSIONS.get(str(params.get("name")), 1)
    return FEATURE_VERSIONS.get(name, 1)


def check_version(name: str, params: dict[str, Any], version: int) -> None:
    """Raise ``ValueError`` unless this code computes ``version`` (0: the current one) of the
    time-series feature ``name`` with ``params``."""
    current = feature_version(name, params)
    if version in (0, current) or (version == 1 and name in _VERSION_1):
        return
    raise ValueError(
        f"feature {name} {params} has no version {version}: this code computes version {current}"
        + (" and 1" if name in _VERSION_1 and current != 1 else "")
    )


def time_series(frame: pl.DataFrame, name: str, params: dict[str, Any], version: int = 0) -> pl.DataFrame:
    """``frame`` with a float ``value``: the named feature per instrument, in time order; with
    ``version`` (0: the current one), that version of its computation (refused if unknown)."""
    if name not in TIME_SERIES:
        raise ValueError(f"unknown feature {name!r}; known: {', '.join(sorted(TIME_SERIES))}")
    check_version(name, params, version)
    if version in (0, feature_version(name, params)):
        expression = TIME_SERIES[name](frame, params)
    else:
        expression = _VERSION_1[name](frame, params)
    ordered = frame.sort(["instrument_id", "ts_ns"])
    with_value = ordered.with_columns(expression.over("instrument_id").alias("value"))
    return with_value.sort(["ts_ns", "instrument_id"])


def _present(column: str) -> pl.Expr:
    """The column as float with NaN and +-inf as null: a missing value, skipped by every
    statistic below (Polars' aggregations skip null, not NaN) and missing (null) in that row's
    output. An infinity (``log_dollar_volume`` of a bar of no volume: log 0) made its whole
    timestamp's z-scores and residuals NaN, and passed a winsorise unclipped."""
    value = pl.col(column).cast(pl.Float64)
    return pl.when(value.is_finite()).then(value).otherwise(None)


def cs_rank(frame: pl.DataFrame, column: str = "value") -> pl.DataFrame:
    """Each row's rank within its timestamp, scaled to (0, 1]: rank / count of the present
    values (ties: average); null where the value is missing (null or NaN)."""
    value = _present(column)
    rank = value.rank("average").over("ts_ns")
    count = value.count().over("ts_ns")
    return frame.with_columns((rank / count).alias(column))


def cs_zscore(frame: pl.DataFrame, column: str = "value") -> pl.DataFrame:
    """(value - mean) / standard deviation (ddof 1) of the present values across each
    timestamp; null where the value is missing, or the timestamp has fewer than two values or
    no dispersion."""
    value = _present(column)
    mean = value.mean().over("ts_ns")
    std = value.std(ddof=1).over("ts_ns")
    z = pl.when(std > 0).then((value - mean) / std).otherwise(None)
    return frame.with_columns(z.alias(column))


def cs_winsorise(frame: pl.DataFrame, low: float, high: float, column: str = "value") -> pl.DataFrame:
    """Clip each timestamp's values to the ``low`` and ``high`` quantiles (linear) of its present
    values; a missing value stays missing (null)."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"winsorise needs 0 <= low < high <= 1, got {low}, {high}")
    value = _present(column)
    lo = value.quantile(low, "linear").over("ts_ns")
    hi = value.quantile(high, "linear").over("ts_ns")
    return frame.with_columns(value.clip(lo, hi).alias(column))


def cs_neutralise(
    frame: pl.DataFrame, *, group: str | None = None, exposure: str | None = None, column: str = "value"
) -> pl.DataFrame:
    """The value with what ``group`` (e.g. a sector code) and a numeric ``exposure`` (e.g. log
    size) explain at each timestamp removed: demeaned within (timestamp, group), then the
    residual of a one-variable least-squares fit (with intercept) on the exposure, per
    timestamp. Missing values (null or NaN) are skipped: a group's mean is that of its present
    values; the fit uses the rows where the value and the exposure are both present, so its
    residuals sum to 0 and are orthogonal to the exposure over those rows. A row with a missing
    value, group or exposure gets a missing (null) output."""
    value = _present(column)
    if group is not None:
        demeaned = value - value.mean().over(["ts_ns", group])
        value = pl.when(pl.col(group).is_not_null()).then(demeaned).otherwise(None)
    if exposure is not None:
        size = _present(exposure)
        fitted = value.is_not_null() & size.is_not_null()
        xs = pl.when(fitted).then(size).otherwise(None)
        ys = pl.when(fitted).then(value).otherwise(None)
        x = xs - xs.mean().over("ts_ns")
        y = ys - ys.mean().over("ts_ns")
        beta = (x * y).sum().over("ts_ns") / (x * x).sum().over("ts_ns")
        value = y - pl.when(beta.is_finite()).then(beta).otherwise(0.0) * x
    return frame.with_columns(value.alias(column))


# The largest window or lookback of a feature, in bars: the indicators' bound
# (models.indicators.registry.MAX_WINDOW, TA-Lib's), for the same reasons (docs/indicators.md).
MAX_WINDOW = 100_000

# Each time-series definition's parameters: name -> (required, smallest whole number); alpha158
# takes ``name``, one of ALPHA158's.
FEATURE_PARAMS: dict[str, dict[str, tuple[bool, int]]] = {
    "momentum": {"lookback": (True, 1), "skip": (False, 0)},
    "volatility": {"window": (True, 2)},
    "distance_from_mean": {"window": (True, 1)},
    "log_dollar_volume": {"window": (True, 1)},
    "alpha158": {},
}
# Each cross-sectional step's parameters: name -> required.
STEP_PARAMS: dict[str, dict[str, bool]] = {
    "rank": {},
    "zscore": {},
    "winsorise": {"low": True, "high": True},
    "neutralise": {"group": False, "exposure": False},
}


def _accepted(given: dict[str, Any], accepted: dict[str, bool], what: str) -> None:
    known = ", ".join(accepted) or "none"
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(f"{what}: unknown parameter(s) {', '.join(unknown)}; accepted: {known}")
    missing = [k for k, required in accepted.items() if required and k not in given]
    if missing:
        raise ValueError(f"{what}: needs {', '.join(missing)} (accepted: {known})")


def _whole_bars(name: str, key: str, value: Any, minimum: int) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not float(value).is_integer() or not minimum <= value <= MAX_WINDOW:
        allowed = f"a whole number of bars from {minimum} to {MAX_WINDOW}"
        raise ValueError(f"{name}: {key} must be {allowed}, got {value!r}")


def _validate_params(name: str, params: dict[str, Any]) -> None:
    if name not in TIME_SERIES:
        raise ValueError(f"unknown feature {name!r}; known: {', '.join(sorted(TIME_SERIES))}")
    if name == "alpha158":
        _accepted(params, {"name": True}, "alpha158")
        if params["name"] not in ALPHA158:
            raise ValueError(f"unknown Alpha158 feature {params['name']!r}; known: {', '.join(ALPHA158)}")
        return
    spec = FEATURE_PARAMS.get(name)
    if spec is None:  # a definition added to TIME_SERIES without a schema: its parameters unchecked
        return
    _accepted(params, {k: required for k, (required, _) in spec.items()}, name)
    for key, (_, minimum) in spec.items():
        if key in params:
            _whole_bars(name, key, params[key], minimum)
    if name == "momentum" and params.get("skip", 0) >= params["lookback"]:
        raise ValueError(f"momentum: skip must be less than lookback, got {params}")


def _validate_step(step: Any) -> None:
    if not (isinstance(step, tuple | list) and len(step) == 2 and isinstance(step[1], dict)):
        raise ValueError(f"a step is (operator, {{params}}), got {step!r}")
    operator, params = step
    if operator not in STEP_PARAMS:
        raise ValueError(f"unknown step {operator!r}; known: {', '.join(STEP_PARAMS)}")
    _accepted(params, STEP_PARAMS[operator], f"step {operator}")
    if operator == "winsorise":
        low, high = params["low"], params["high"]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not 0.0 <= low < high <= 1.0:
            raise ValueError(f"winsorise needs 0 <= low < high <= 1, got {low!r}, {high!r}")
    if operator == "neutralise" and (not params or not all(isinstance(v, str) for v in params.values())):
        raise ValueError(f"step neutralise needs a column name as group and/or exposure, got {params}")


def validate_spec(name: str, params: dict[str, Any], steps: tuple[tuple[str, dict[str, Any]], ...]) -> None:
    """Raise ``ValueError`` naming the problem and what is accepted, unless ``name``, ``params``
    and ``steps`` make a feature this code computes: a known definition with its parameters only
    (whole numbers of bars in range: a negative lookback or skip would read later bars), known
    steps with theirs."""
    _validate_params(name, params)
    for step in steps:
        _validate_step(step)


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: a time-series definition, then cross-sectional steps in order, each
    ``(operator, params)`` with operator ``rank``, ``zscore``, ``winsorise`` or ``neutralise``.
    Validated when built (``validate_spec``): ``ValueError`` naming the accepted parameters or
    steps."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: tuple[tuple[str, dict[str, Any]], ...] = ()
    version: int = 0  # the time-series definition's version; 0: the current one (FEATURE_VERSIONS)

    def __post_init__(self) -> None:
        validate_spec(self.name, self.params, self.steps)

    @property
    def resolved_version(self) -> int:
        """The version computed: ``version``, or this code's current one when 0."""
        return self.version or feature_version(self.name, self.params)

    def key(self, inputs_hash: str) -> str:
        """The cache key: a hash of the definition (its version when above 1) and of the lake's
        content."""
        definition: dict[str, Any] = {"name": self.name, "params": self.params, "steps": self.steps,
                                      "inputs": inputs_hash}  # fmt: skip
        if self.resolved_version > 1:
            definition["version"] = self.resolved_version
        if self.steps:  # the steps read +-inf as missing (a folder written before did not)
            definition["missing"] = "non-finite"
        text = json.dumps(definition, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def compute(self, frame: pl.DataFrame) -> pl.DataFrame:
        out = time_series(frame, self.name, self.params, self.version)
        for operator, params in self.steps:
            out = _STEPS[operator](out, params)
        return out.select("ts_ns", "instrument_id", "value")


_STEPS: dict[str, Callable[[pl.DataFrame, dict[str, Any]], pl.DataFrame]] = {
    "rank": lambda f, _p: cs_rank(f),
    "zscore": lambda f, _p: cs_zscore(f),
    "winsorise": lambda f, p: cs_winsorise(f, float(p["low"]), float(p["high"])),
    "neutralise": lambda f, p: cs_neutralise(f, group=p.get("group"), exposure=p.get("exposure")),
}


# Where ``check_causal`` cuts the timeline by default: fractions of the timestamps, early ones
# included. A full-sample statistic (a max, a mean, min-max scaling) differs on a prefix that
# ends before the bars that set it, so one cut late in the series only catches statistics set
# after it; six cuts from 1/32 on catch one set anywhere after the first 3%. The prefixes add
# up to 1.72 times the series, on top of the one full computation (which the check returns).
CAUSAL_CUTS: tuple[tuple[int, int], ...] = ((1, 32), (1, 16), (1, 8), (1, 4), (1, 2), (3, 4))


def causal_cuts(frame: pl.DataFrame) -> list[int]:
    """The timestamps ``check_causal`` cuts at by default (``CAUSAL_CUTS`` of the frame's
    distinct timestamps, each before the last); none for fewer than three timestamps."""
    stamps = frame.get_column("ts_ns").unique().sort()
    n = stamps.len()
    if n <= 2:
        return []
    return [int(stamps[i]) for i in sorted({min(n - 2, (n * k) // d) for k, d in CAUSAL_CUTS})]


def check_causal(
    compute: Callable[[pl.DataFrame], pl.DataFrame],
    frame: pl.DataFrame,
    cut_ts_ns: int | Sequence[int] | None = None,
) -> pl.DataFrame:
    """Raise ``LookAheadError`` unless, at each cut, ``compute`` on the bars up to the cut gives,
    at every row up to it, exactly what it gives on all the bars. The cuts: ``cut_ts_ns`` (one
    or several), by default ``causal_cuts(frame)`` (spread over the timeline, early ones
    included). Returns ``compute(frame)``, so a caller need not compute it again."""
    if cut_ts_ns is None:
        cuts = causal_cuts(frame)
    elif isinstance(cut_ts_ns, int):
        cuts = [cut_ts_ns]
    else:
        cuts = sorted(int(c) for c in cut_ts_ns)
    result = compute(frame)
    for cut in cuts:
        full = result.filter(pl.col("ts_ns") <= cut)
        prefix = compute(frame.filter(pl.col("ts_ns") <= cut))
        joined = full.join(prefix, on=["ts_ns", "instrument_id"], how="full", suffix="_prefix", coalesce=True)
        differs = joined.filter(
            ~(
                (pl.col("value").is_null() & pl.col("value_prefix").is_null())
                | (pl.col("value").is_nan() & pl.col("value_prefix").is_nan())
                | (pl.col("value") == pl.col("value_prefix"))
            ).fill_null(False)
        ).sort(["ts_ns", "instrument_id"])
        if differs.height:
            row = differs.row(0, named=True)
            raise LookAheadError(
                f"the feature reads past its row: at ts_ns {row['ts_ns']}, instrument {row['instrument_id']} "
                f"it is {row['value']} on all the bars and {row['value_prefix']} on the bars up to {cut}"
            )
    return result


def frame_hash(frame: pl.DataFrame | None) -> str:
    """A blake2b of a frame's schema and rows in a canonical order (sorted by every column), so
    the same content hashes the same whatever its row order; "" for None."""
    if frame is None:
        return ""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([[name, str(dtype)] for name, dtype in frame.schema.items()]).encode())
    digest.update(frame.sort(frame.columns, nulls_last=True).write_csv().encode())
    return digest.hexdigest()


def materialise_inputs(lake: Lake, frequency: str, extra: pl.DataFrame | None = None) -> str:
    """What ``materialise`` computes a feature from, as one hash for ``FeatureSpec.key``: the
    lake's content, the bar frequency read and the ``extra`` columns joined in."""
    inputs = {"lake": lake.content_hash, "frequency": frequency, "extra": frame_hash(extra)}
    return hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=16).hexdigest()


def materialise(lake: Lake, frequency: str, spec: FeatureSpec, *, extra: pl.DataFrame | None = None) -> Path:
    """Compute ``spec`` over the lake's ``frequency`` bars (joined with ``extra`` columns per
    (ts_ns, instrument_id) or per instrument_id, e.g. a sector), check it reads no later bar,
    and write it under ``features/<name>/<key>/`` with its definition; a feature already there
    under the same key is returned as is. The key hashes every input of the values: the spec
    (name, parameters, steps, version), the lake's content, the frequency and ``extra``'s
    content (``materialise_inputs``)."""
    folder = lake.root / "features" / spec.name / spec.key(materialise_inputs(lake, frequency, extra))
    if (folder / "feature.parquet").exists():
        return folder
    bars = lake.read(Kind.BARS, frequency)
    frame = pl.from_arrow(bars)
    assert isinstance(frame, pl.DataFrame)
    if extra is not None:
        keys = [k for k in ("ts_ns", "instrument_id") if k in extra.columns]
        frame = frame.join(extra, on=keys, how="left")
    values = check_causal(spec.compute, frame)
    folder.mkdir(parents=True, exist_ok=True)
    values.write_parquet(folder / "feature.parquet")
    definition = {"name": spec.name, "params": spec.params, "steps": spec.steps, "frequency": frequency,
                  "version": spec.resolved_version, "lake_content_hash": lake.content_hash,
                  "extra_hash": frame_hash(extra), "rows": values.height}  # fmt: skip
    (folder / "feature.json").write_text(json.dumps(definition, indent=1, sort_keys=True) + "\n")
    return folder
