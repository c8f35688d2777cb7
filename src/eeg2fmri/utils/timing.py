"""Optional per-step wall-clock accounting (for benchmarks and profiling), free when nobody collects.

Code marks its steps with :func:`step`; the seconds are added up only inside
a :func:`collect_timings` block of the same thread (a context variable), so
the marks cost a dictionary lookup otherwise. When a step launches work on a
CUDA device, pass it as ``sync``: while collecting, the step waits for the
device before it stops the clock, so that the GPU time lands in the step
that launched it (this serialises the device, so collected timings can sum
to a little more than an uncollected run).

Example
-------
>>> from eeg2fmri.utils.timing import collect_timings, step
>>> with collect_timings() as t:
...     with step("read"):
...         pass
>>> sorted(t)
['read']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["collect_timings", "step"]

# when the command line started (``time.perf_counter()``, set by eeg2fmri.cli): commands that time themselves report their start-up
CLI_STARTED: float | None = None

_ACTIVE: ContextVar[dict[str, float] | None] = ContextVar("eeg2fmri_timings", default=None)


@contextmanager
def collect_timings() -> Iterator[dict[str, float]]:
    """Collect the seconds spent in every :func:`step` run inside the block (this thread).

    Yields
    ------
    timings : dict
        Step name -> seconds, filled while the block runs (steps add up;
        nested steps are counted in both).
    """
    acc: dict[str, float] = {}
    token = _ACTIVE.set(acc)
    try:
        yield acc
    finally:
        _ACTIVE.reset(token)


@contextmanager
def step(name: str, sync: Any = None) -> Iterator[None]:
    """Count the block's wall time under ``name`` when timings are collected.

    Parameters
    ----------
    name : str
    sync : torch.device | str | None
        A CUDA device to synchronise before the clock stops (only while
        collecting); anything else is ignored.
    """
    acc = _ACTIVE.get()
    if acc is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if sync is not None and getattr(sync, "type", str(sync).split(":")[0]) == "cuda":
            import torch

            torch.cuda.synchronize(sync)
        acc[name] = acc.get(name, 0.0) + time.perf_counter() - t0
