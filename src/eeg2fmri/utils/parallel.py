"""How many cores this process may use."""

from __future__ import annotations

import os

__all__ = ["n_cores"]


def n_cores() -> int:
    """Cores this process may run on: its CPU affinity (e.g. under ``taskset``), else ``os.cpu_count()``.

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
