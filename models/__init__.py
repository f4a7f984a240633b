"""Features, strategies and (later) alpha models. Strategies emit target weights."""
