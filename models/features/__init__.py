"""Features and factors over panels (Numba kernels behind plain functions)."""

from models.features._factors_nb import (
    sma_cross_carry,
    sma_cross_rows_nb,
    sma_cross_state_nb,
    sma_cross_step_nb,
)

__all__ = ["sma_cross_carry", "sma_cross_rows_nb", "sma_cross_state_nb", "sma_cross_step_nb"]
