"""Simulated venue, backtest runner, metrics."""
