"""Features and factors over panels (Numba kernels behind plain functions)."""

from models.features._factors_nb import sma_cross_state_nb

__all__ = ["sma_cross_state_nb"]
