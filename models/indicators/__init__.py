"""Technical indicators as Numba kernels, used by name: ``indicator("rsi", period=14)``.

Every indicator has a batch form (``.batch(close)``: arrays in, arrays out, NaN during warm-up)
and an incremental form (``.stream().update(close_t)``: one bar in, that bar's value out) that
return identical floats. Formulas, warm-ups and differences from TA-Lib: docs/indicators.md.
"""

from models.indicators.registry import (
    Indicator,
    IndicatorError,
    IndicatorStream,
    Param,
    indicator,
    indicator_names,
)

__all__ = ["Indicator", "IndicatorError", "IndicatorStream", "Param", "indicator", "indicator_names"]
