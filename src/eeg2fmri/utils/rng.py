"""Explicit randomness: every function takes a seed or a Generator."""

from __future__ import annotations

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError


def check_random_state(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from an int seed, a Generator or ``None``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise Eeg2fmriInputError(f"expected seed to be a non-negative int, a numpy Generator or None, got {seed!r}.")
