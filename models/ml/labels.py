"""Labels: forward returns over a horizon, with the gap between feature time and label start
explicit and checked.

A feature row at bar ``t`` of an instrument (its value uses that instrument's bars up to ``t``)
is paired with the label ``close[t + gap + horizon] / close[t + gap] - 1``, counted in that
instrument's own bars. ``gap = 0`` starts the return at the feature bar's close (the return
accrues strictly after every bar the features read); ``gap = 1`` starts it at the next bar's
close, the first price a decision at ``t`` can trade at in Tape's daily backtests. Each label
row carries the timestamps of its feature bar (``ts_ns``), its start bar and its end bar, so
``check_labels`` can verify from the bars themselves that the distances are the declared ones
and that no label starts before its feature bar — and training can drop every label that ends
after the training window (the embargo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

__all__ = ["LabelOverlapError", "LabelSpec", "check_labels", "classify", "forward_returns"]


class LabelOverlapError(ValueError):
    """A label that overlaps its features, is not at its declared gap and horizon, or ends
    after the window it is used in."""


@dataclass(frozen=True)
class LabelSpec:
    horizon: int = 21
    gap: int = 1
    thresholds: tuple[float, ...] = ()  # classification cut points, ascending

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"label horizon must be at least one bar, got {self.horizon}")
        if self.gap < 0:
            raise ValueError(
                f"label gap must be >= 0 (a negative gap reads the features' bars), got {self.gap}"
            )
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"label thresholds must be strictly ascending, got {self.thresholds}")

    def to_json(self) -> dict[str, object]:
        return {"kind": "forward_return", "horizon": self.horizon, "gap": self.gap,
                "thresholds": list(self.thresholds)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LabelSpec:
        thresholds = data.get("thresholds", [])
        assert isinstance(thresholds, list)
        return cls(int(str(data["horizon"])), int(str(data["gap"])), tuple(float(x) for x in thresholds))


def forward_returns(frame: pl.DataFrame, spec: LabelSpec) -> pl.DataFrame:
    """``ts_ns, instrument_id, label, label_start_ts, label_end_ts`` for every bar of ``frame``
    (long bars with a raw ``close``) that has ``gap + horizon`` later bars; with thresholds,
    also ``label_class`` (how many thresholds the return exceeds)."""
    start, end = spec.gap, spec.gap + spec.horizon
    close = pl.col("close").cast(pl.Float64)
    ordered = frame.select("ts_ns", "instrument_id", "close").sort(["instrument_id", "ts_ns"])
    out = ordered.with_columns(
        (close.shift(-end) / close.shift(-start) - 1.0).over("instrument_id").alias("label"),
        pl.col("ts_ns").shift(-start).over("instrument_id").alias("label_start_ts"),
        pl.col("ts_ns").shift(-end).over("instrument_id").alias("label_end_ts"),
    ).drop("close")
    out = out.filter(pl.col("label_end_ts").is_not_null() & pl.col("label").is_finite())
    if spec.thresholds:
        out = classify(out, spec.thresholds)
    return out.sort(["ts_ns", "instrument_id"])


def classify(labels: pl.DataFrame, thresholds: Sequence[float]) -> pl.DataFrame:
    """``label_class``: the number of ``thresholds`` the ``label`` is above (0 .. len)."""
    count = pl.lit(0, dtype=pl.Int32)
    for cut in thresholds:
        count = count + (pl.col("label") > cut).cast(pl.Int32)
    return labels.with_columns(count.alias("label_class"))


def check_labels(
    labels: pl.DataFrame, bars: pl.DataFrame, spec: LabelSpec, *, window_end_ts: int | None = None
) -> None:
    """Raise ``LabelOverlapError`` unless every label row starts exactly ``gap`` bars and ends
    exactly ``gap + horizon`` bars after its feature bar, counted in its instrument's ``bars``
    (so no label starts before the last bar its features read), its value is the return
    between the closes of those two bars (and its ``label_class``, with thresholds, that
    return's class), and, with ``window_end_ts``, it ends at or before it."""
    index = bars.select("ts_ns", "instrument_id").sort(["instrument_id", "ts_ns"])
    index = index.with_columns(pl.int_range(pl.len()).over("instrument_id").alias("bar"))
    at = labels.join(index, on=["ts_ns", "instrument_id"], how="left")
    for column, alias in (("label_start_ts", "start_bar"), ("label_end_ts", "end_bar")):
        at = at.join(index.rename({"ts_ns": column, "bar": alias}), on=[column, "instrument_id"], how="left")
    bad = at.filter(
        pl.col("bar").is_null()
        | pl.col("start_bar").is_null()
        | pl.col("end_bar").is_null()
        | (pl.col("label_start_ts") < pl.col("ts_ns"))
        | (pl.col("start_bar") - pl.col("bar") != spec.gap)
        | (pl.col("end_bar") - pl.col("start_bar") != spec.horizon)
    ).sort(["ts_ns", "instrument_id"])
    if bad.height:
        row = bad.row(0, named=True)
        raise LabelOverlapError(
            f"{bad.height} label(s) not at gap {spec.gap} and horizon {spec.horizon}: first at ts_ns "
            f"{row['ts_ns']}, instrument {row['instrument_id']}: feature bar {row['bar']}, label start bar "
            f"{row['start_bar']} (ts_ns {row['label_start_ts']}), end bar {row['end_bar']}"
        )
    _check_values(labels, bars, spec)
    if window_end_ts is not None:
        late = labels.filter(pl.col("label_end_ts") > window_end_ts)
        if late.height:
            row = late.sort(["ts_ns", "instrument_id"]).row(0, named=True)
            raise LabelOverlapError(
                f"{late.height} label(s) end after the window's end {window_end_ts}: first at ts_ns "
                f"{row['ts_ns']}, instrument {row['instrument_id']}, ending {row['label_end_ts']}"
            )


def _check_values(labels: pl.DataFrame, bars: pl.DataFrame, spec: LabelSpec) -> None:
    """Every label is ``close[label_end] / close[label_start] - 1`` from the bars (bit for bit:
    the same float operations ``forward_returns`` does), so a label whose value reads other
    bars than its stamps say — one that starts at its feature bar's close, say — is caught."""
    close = bars.select("ts_ns", "instrument_id", pl.col("close").cast(pl.Float64))
    starts = close.rename({"ts_ns": "label_start_ts", "close": "start_close"})
    ends = close.rename({"ts_ns": "label_end_ts", "close": "end_close"})
    at = labels.join(starts, on=["label_start_ts", "instrument_id"], how="left")
    at = at.join(ends, on=["label_end_ts", "instrument_id"], how="left")
    at = at.with_columns((pl.col("end_close") / pl.col("start_close") - 1.0).alias("return"))
    wrong = pl.col("return").is_null() | (pl.col("return") != pl.col("label"))
    if spec.thresholds and "label_class" in labels.columns:
        expected = pl.lit(0, dtype=pl.Int32)
        for cut in spec.thresholds:
            expected = expected + (pl.col("return") > cut).cast(pl.Int32)
        wrong = wrong | (expected != pl.col("label_class"))
    bad = at.filter(wrong).sort(["ts_ns", "instrument_id"])
    if bad.height:
        row = bad.row(0, named=True)
        raise LabelOverlapError(
            f"{bad.height} label(s) not the return between their start and end closes: first at ts_ns "
            f"{row['ts_ns']}, instrument {row['instrument_id']}: label {row['label']}, but "
            f"close[{row['label_end_ts']}] / close[{row['label_start_ts']}] - 1 = {row['return']}"
        )
