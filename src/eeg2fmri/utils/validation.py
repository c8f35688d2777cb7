"""Validation helpers with actionable messages ("expected X, got Y; do Z")."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np


class Eeg2fmriInputError(ValueError):
    """Bad user input: the message names what was expected, what was found and the fix."""


def _where(where: str | None) -> str:
    return f"{where}: " if where else ""


def check_positive(value: Any, name: str, *, where: str | None = None, fix: str | None = None) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not np.isfinite(out) or out <= 0:
        hint = fix or f"pass a positive number for {name}"
        raise Eeg2fmriInputError(f"{_where(where)}expected {name} > 0, got {value!r}; {hint}.")
    return out


def check_positive_int(value: Any, name: str, *, where: str | None = None, fix: str | None = None) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    if not ok:
        hint = fix or f"pass a whole number >= 1 for {name}"
        raise Eeg2fmriInputError(f"{_where(where)}expected {name} to be an integer >= 1, got {value!r}; {hint}.")
    return int(value)


def check_choice(value: Any, name: str, choices: Iterable[Any], *, where: str | None = None) -> Any:
    """Raise unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        shown = ", ".join(map(repr, choices[:40])) + (" ..." if len(choices) > 40 else "")
        raise Eeg2fmriInputError(f"{_where(where)}unknown {name} {value!r}; choose one of: {shown}.")
    return value


def _given(value: Any) -> str:
    return f"a {type(value).__name__}" + (f" ({value!r})" if isinstance(value, (str, os.PathLike, int, float)) else "")


def check_instance(value: Any, types: type | tuple[type, ...], name: str, *, where: str | None = None, fix: str = "") -> Any:
    """Raise unless ``value`` is an instance of ``types``: what was expected, what was given, and ``fix`` (user test 8:
    arguments swapped or a path where an object goes gave ``AttributeError: 'str' object has no attribute ...``)."""
    if isinstance(value, types):
        return value
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    raise Eeg2fmriInputError(f"{_where(where)}expected {name} as a {names}, got {_given(value)}" + (f"; {fix}" if fix else "") + ".")


def check_like(value: Any, attrs: tuple[str, ...], name: str, expected: str, *, where: str | None = None, fix: str = "") -> Any:
    """Raise unless ``value`` has the attributes ``attrs`` of what it stands for (``expected``, e.g. "a PreparedDataset"):
    views and subclasses pass, a path or a swapped argument gets what to pass instead."""
    if all(hasattr(value, a) for a in attrs):
        return value
    raise Eeg2fmriInputError(f"{_where(where)}expected {name} as {expected}, got {_given(value)}" + (f"; {fix}" if fix else "") + ".")


def check_finite(array: np.ndarray, name: str, *, where: str | None = None) -> np.ndarray:
    """Raise if ``array`` holds NaN or Inf, saying how many and where to look."""
    bad = ~np.isfinite(array)
    if bad.any():
        raise Eeg2fmriInputError(
            f"{_where(where)}expected finite values in {name}, found {int(bad.sum())} NaN/Inf "
            f"of {array.size}; interpolate or drop the affected samples/channels before use."
        )
    return array
