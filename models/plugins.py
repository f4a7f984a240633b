"""Strategies as plug-ins: the built-in ones and the user's, found the same way.

A run names each strategy by ``name`` — an entry point in the ``tape.strategies`` group, which
is how Tape's own strategies are installed (``pyproject.toml``) and how a user's package can
offer its own — or by ``entry``: ``"package.module:Name"``, any importable class or factory.
Either is called with the configuration's ``params`` as keywords and must return an object with
the strategy port (``kernel.strategy.Strategy``): a ``strategy_id`` and ``schedule`` and
``decide`` methods. Whatever fails — a module that does not import, a name it does not have, a
parameter the strategy refuses — is a ``PluginError`` with one line that says which and why.

Replay loads the strategy the same way from the journaled configuration, so the module must
still be importable (and unchanged, for the replay to match) when the journal is replayed.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from numbers import Integral, Real
from typing import Any

from kernel.strategy import Strategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "check_strategy",
    "installed_strategies",
    "load_strategy",
    "number_param",
    "resolve_factory",
    "whole_param",
]

ENTRY_POINT_GROUP = "tape.strategies"


class PluginError(ValueError):
    """A strategy that cannot be found, imported, built or used as a strategy."""


def installed_strategies() -> dict[str, str]:
    """Strategy names in the ``tape.strategies`` entry-point group -> ``"module:attr"``."""
    found: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        previous = found.setdefault(point.name, point.value)
        if previous != point.value:
            raise PluginError(
                f"strategy {point.name!r} is installed twice, as {previous} and {point.value}; "
                "uninstall one of the packages"
            )
    return dict(sorted(found.items()))


def resolve_factory(
    *, name: str = "", entry: str = "", installed: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """The class or factory a ``name`` (installed) or an ``entry`` (``module:attr``) points at.
    ``installed``: ``installed_strategies()`` as read before (a sweep worker reads it once;
    scanning the entry points costs about 10 ms)."""
    if bool(name) == bool(entry):
        raise PluginError("give a strategy's name or its entry, one of the two")
    if name:
        installed = installed_strategies() if installed is None else installed
        if name not in installed:
            known = ", ".join(installed) or "none (is Tape installed? pip install -e .)"
            raise PluginError(f"unknown strategy {name!r}; installed: {known}")
        entry = installed[name]
    module_name, _, attr = entry.partition(":")
    if not module_name or not attr:
        raise PluginError(f'strategy entry must read "package.module:Name", got {entry!r}')
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise PluginError(f"strategy {entry}: cannot import {module_name}: {reason}") from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(f"strategy {entry}: {module_name} has no {attr!r}") from None
    if not callable(target):
        raise PluginError(f"strategy {entry}: {attr} is not a class or a function")
    return target  # type: ignore[no-any-return]


def load_strategy(
    *,
    name: str = "",
    entry: str = "",
    params: Mapping[str, Any] | None = None,
    installed: Mapping[str, str] | None = None,
) -> Strategy:
    """Build one strategy from its name or entry and its parameters, and check it is one
    (``installed``: see ``resolve_factory``)."""
    label = name or entry
    factory = resolve_factory(name=name, entry=entry, installed=installed)
    _check_params(factory, params or {}, label)
    try:
        strategy = factory(**dict(params or {}))
    except (TypeError, ValueError) as error:
        raise PluginError(f"strategy {label}: {error}") from None
    return check_strategy(strategy, label)


def _check_params(factory: Callable[..., Any], params: Mapping[str, Any], label: str) -> None:
    """A parameter the factory does not take, named with the ones it does (not Python's
    ``__init__() got an unexpected keyword argument``); a factory taking ``**kwargs`` takes any."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call says what is wrong
        return
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [name for name, p in signature.parameters.items() if p.kind in named]
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise PluginError(
            f"strategy {label}: no parameter {', '.join(map(repr, unknown))}; it takes {', '.join(accepted)}"
        )


def number_param(name: str, value: object, low: float, high: float, *, above_low: bool = False) -> float:
    """A strategy's real-number parameter (a weight...): an int or a float, not a bool or text, in
    ``[low, high]`` (``(low, high]`` with ``above_low``); else a ``ValueError`` naming it and the
    range (what ``load_strategy`` reports), not Python's ``'<' not supported between ...``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        ok = False
    else:
        ok = (low < value if above_low else low <= value) and value <= high
    if not ok:
        opening = "(" if above_low else "["
        raise ValueError(f"{name} must be a number in {opening}{low:g}, {high:g}], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def whole_param(name: str, value: object, low: int) -> int:
    """A strategy's whole-number parameter (a count of bars or sessions), at least ``low``: an int,
    not a bool, a float or text; else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def check_strategy(strategy: object, label: str) -> Strategy:
    """``strategy`` if it has the strategy port, else a ``PluginError`` naming what is missing."""
    sid = getattr(strategy, "strategy_id", None)
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise PluginError(f"strategy {label}: its strategy_id must be a non-empty str, got {sid!r}")
    if not isinstance(sid, str) or not sid:
        raise PluginError(f"strategy {label}: it has no strategy_id (a non-empty str attribute)")
    missing = [m for m in ("schedule", "decide") if not callable(getattr(strategy, m, None))]
    if missing:
        raise PluginError(f"strategy {label}: it has no {' or '.join(missing)} method")
    return strategy  # type: ignore[return-value]
