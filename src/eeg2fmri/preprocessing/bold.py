"""BOLD preprocessing: brain mask, detrending/high-pass, standardisation.

:func:`compute_mask` is defined in :mod:`eeg2fmri.io.bold` (reading masked BOLD needs it) and re-exported here.
"""

from __future__ import annotations

import numpy as np

from eeg2fmri.io.bold import compute_mask

__all__ = ["compute_mask", "detrend", "non_steady_state_volumes", "Standardizer"]

#: Leading volumes searched for non-steady-state signal, and the modified z-score above which a volume is one.
NON_STEADY_MAX_VOLUMES = 50
NON_STEADY_Z = 3.5
#: ... and the least excess over the steady level (T1 saturation is several % to tens of %; noise and drift ~0.1-0.5 %).
NON_STEADY_MIN_EXCESS = 0.01


def non_steady_state_volumes(bold: np.ndarray, *, max_volumes: int = NON_STEADY_MAX_VOLUMES, threshold: float = NON_STEADY_Z,
                             min_excess: float = NON_STEADY_MIN_EXCESS) -> int:
    """Number of leading volumes whose brain signal is still above the steady state (T1 saturation).

    Before the longitudinal magnetisation reaches its steady state, the first volumes of an EPI run are
    brighter than the rest. As fMRIPrep's non-steady-state detector does, the mean signal in the mask of
    the first ``max_volumes`` volumes gets a modified z-score (``0.6745 (g - median) / MAD``, Iglewicz
    and Hoaglin); the leading volumes with a score above ``threshold`` are counted, stopping at the first
    volume below it. Only brighter volumes count, and only by at least ``min_excess`` of the steady
    level (saturation raises the signal by several % or more; with autocorrelated noise the MAD of 50
    volumes is small, and a slow 0.5 % warm-up drift alone would otherwise count). BOLD without a scanner
    baseline (demeaned or standardised: median below 20 MADs) is not searched.

    Parameters
    ----------
    bold : array, shape (n_volumes, n_voxels)
        BOLD in the mask (raw scanner units: before detrending or scaling).
    max_volumes : int
        Volumes searched from the start.
    threshold : float
        Modified z-score above which a leading volume is non-steady.
    min_excess : float
        Least relative excess over the median brain signal of the searched volumes.

    Returns
    -------
    n : int
        Leading volumes to discard (0 when none is found or the run is too short to tell, < 10 volumes).
    """
    bold = np.asarray(bold)
    if bold.ndim != 2 or bold.shape[0] < 10:
        return 0
    g = bold[: int(max_volumes)].mean(axis=1, dtype=np.float64)
    med = float(np.median(g))
    mad = float(np.median(np.abs(g - med)))
    if not np.isfinite(mad) or mad <= 0 or med <= 20 * mad:  # (no scanner baseline: brighter cannot be told)
        return 0
    z = 0.6745 * (g - med) / mad
    above = (z > threshold) & (g > med * (1.0 + min_excess))
    return int(len(above) if above.all() else np.argmin(above))


def detrend(y: np.ndarray, tr: float, *, high_pass: float | None = 1.0 / 128.0, order: int = 1) -> np.ndarray:
    """Remove polynomial trends and a discrete-cosine high-pass from each column.

    Parameters
    ----------
    y : array, shape (n_volumes, n_voxels)
    tr : float
        Repetition time in seconds.
    high_pass : float | None
        Cut-off in Hz of the cosine basis (SPM style); ``None`` skips it.
    order : int
        Polynomial order (0 = mean only).

    Returns
    -------
    y : array, shape (n_volumes, n_voxels), float32
    """
    q, _ = np.linalg.qr(drift_basis(y.shape[0], tr, high_pass=high_pass, order=order))
    y = np.asarray(y, dtype=np.float64)
    return (y - q @ (q.T @ y)).astype(np.float32)


def drift_basis(n: int, tr: float, *, high_pass: float | None = 1.0 / 128.0, order: int = 1) -> np.ndarray:
    """The slow-drift basis :func:`detrend` removes: polynomials up to ``order`` (the constant first) and the discrete
    cosines below ``high_pass`` Hz (SPM style).

    Parameters
    ----------
    n : int
        Volumes.
    tr : float
        Repetition time in seconds.
    high_pass : float | None
        Cut-off in Hz of the cosine basis; ``None``: polynomials only.
    order : int
        Polynomial order (0 = mean only).

    Returns
    -------
    basis : array, shape (n, n_columns), float64
    """
    t = np.linspace(-1, 1, n)
    cols = [t**k for k in range(order + 1)]
    if high_pass:
        n_cos = int(np.floor(2 * n * tr * high_pass))
        k = np.arange(n)
        cols += [np.cos(np.pi * (k + 0.5) * j / n) for j in range(1, n_cos + 1)]
    return np.stack(cols, axis=1)


class Standardizer:
    """Per-column z-scoring with statistics from the training data only.

    ``fit`` stores ``mean_`` and ``scale_`` (shape (n_voxels,)); constant
    columns get scale 1.
    """

    def fit(self, y: np.ndarray) -> Standardizer:
        self.mean_ = y.mean(axis=0).astype(np.float32)
        sd = y.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0).astype(np.float32)
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.mean_) / self.scale_).astype(np.float32)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return (z * self.scale_ + self.mean_).astype(np.float32)
