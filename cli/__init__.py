"""Composition root: configuration, wiring and the ``tape`` verbs."""
