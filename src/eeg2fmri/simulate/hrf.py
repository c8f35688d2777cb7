"""Haemodynamic response models used by the simulator (and usable on their own).

* :func:`double_gamma_hrf` — SPM-style canonical double-gamma (defined in
  :mod:`eeg2fmri.preprocessing.hrf`, re-exported here);
* :func:`balloon_bold` — the nonlinear balloon–Windkessel model
  (Buxton 1998; Friston et al. 2000) integrated with forward Euler.
"""

from __future__ import annotations

import numpy as np

from eeg2fmri.preprocessing.hrf import double_gamma_hrf

__all__ = ["balloon_bold", "double_gamma_hrf"]


def balloon_bold(
    u: np.ndarray,
    dt: float,
    *,
    kappa: float = 0.65,
    gamma_: float = 0.41,
    tau: float = 0.98,
    alpha: float = 0.32,
    rho: float = 0.34,
    v0: float = 0.02,
) -> np.ndarray:
    """BOLD signal change from neural input through the balloon model.

    Parameters
    ----------
    u : array, shape (n_times, n_regions)
        Non-negative neural input (flow-inducing drive).
    dt : float
        Integration step in seconds (<= 0.1 s recommended).
    kappa, gamma_, tau, alpha, rho, v0 : float
        Signal decay, autoregulation, transit time, Grubb exponent, resting
        oxygen extraction and resting blood volume fraction (Friston 2000).

    Returns
    -------
    bold : array, shape (n_times, n_regions)
        Fractional BOLD change.
    """
    u = np.asarray(u, dtype=float)
    s = np.zeros(u.shape[1])
    f = np.ones(u.shape[1])
    v = np.ones(u.shape[1])
    q = np.ones(u.shape[1])
    k1, k2, k3 = 7.0 * rho, 2.0, 2.0 * rho - 0.2
    out = np.empty_like(u)
    for i in range(u.shape[0]):
        ds = u[i] - kappa * s - gamma_ * (f - 1.0)
        df = s
        fout = v ** (1.0 / alpha)
        dv = (f - fout) / tau
        e = 1.0 - (1.0 - rho) ** (1.0 / f)
        dq = (f * e / rho - fout * q / v) / tau
        s = s + dt * ds
        f = np.maximum(f + dt * df, 1e-3)
        v = np.maximum(v + dt * dv, 1e-3)
        q = np.maximum(q + dt * dq, 1e-3)
        out[i] = v0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))
    return out
