"""Explicit randomness: every function takes a seed or a Generator."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError


def check_random_state(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from an int seed, a Generator or ``None``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise Eeg2fmriInputError(f"expected seed to be a non-negative int, a numpy Generator or None, got {seed!r}.")


#: environment variables Lightning's ``seed_everything`` sets (read by its worker processes)
_SEED_ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@contextlib.contextmanager
def preserve_global_rng() -> Iterator[None]:
    """Context that leaves the caller's global random state as it found it.

    Training seeds Python's ``random``, NumPy's legacy global generator and torch's generators (through
    Lightning's ``seed_everything``, which also sets ``PL_GLOBAL_SEED``/``PL_SEED_WORKERS`` in
    ``os.environ``) so that a fit is reproducible from its seed; a user's own random streams must not
    change because they trained a model. The states are saved on entry and restored on exit (also
    after an error): ``random``, ``numpy.random``, torch's CPU generator, the CUDA generators when CUDA
    is initialised, and those two environment variables.
    """
    import torch

    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 -- saving the legacy global state, not drawing from it
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    env = {k: os.environ.get(k) for k in _SEED_ENV}
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
