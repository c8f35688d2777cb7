"""Haemodynamic response functions shared by the simulator, ``ridge_hrf`` and ``eeg2fmri_net``.

* :func:`double_gamma_hrf` -- SPM-style canonical double-gamma with a
  configurable peak delay and width (dispersion); checked against
  ``nilearn.glm.first_level.spm_hrf`` in ``tests/test_library_equivalence.py``.

It lives in ``preprocessing`` (not ``simulate``) so that models use it without
importing the simulator (the data flow runs io -> preprocessing -> ... -> models).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gamma

__all__ = ["double_gamma_hrf"]


def double_gamma_hrf(
    dt: float,
    *,
    peak_delay: float = 6.0,
    undershoot_delay: float = 16.0,
    width: float = 1.0,
    undershoot_ratio: float = 1.0 / 6.0,
    length: float = 32.0,
) -> np.ndarray:
    """Sampled double-gamma HRF, normalised to unit sum.

    Parameters
    ----------
    dt : float
        Sampling step in seconds.
    peak_delay : float
        Delay of the positive response in seconds (SPM default 6 s).
    undershoot_delay : float
        Delay of the undershoot in seconds (SPM default 16 s).
    width : float
        Dispersion multiplier (1 = SPM canonical; larger = wider response).
    undershoot_ratio : float
        Amplitude ratio of undershoot to peak.
    length : float
        Kernel length in seconds.

    Returns
    -------
    hrf : array, shape (n_taps,)
        Kernel sampled at ``0, dt, 2 dt, ...``; sums to 1.
    """
    t = np.arange(0.0, length, dt)
    peak = gamma.pdf(t, peak_delay / width, scale=width)
    under = gamma.pdf(t, undershoot_delay / width, scale=width)
    h = peak - undershoot_ratio * under
    return h / h.sum()
