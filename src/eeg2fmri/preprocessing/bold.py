"""BOLD preprocessing: brain mask, detrending/high-pass, standardisation.

:func:`compute_mask` is defined in :mod:`eeg2fmri.io.bold` (reading masked BOLD needs it) and re-exported here.
"""

from __future__ import annotations

import numpy as np

from eeg2fmri.io.bold import compute_mask

__all__ = ["compute_mask", "detrend", "Standardizer"]


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
    n = y.shape[0]
    t = np.linspace(-1, 1, n)
    cols = [t**k for k in range(order + 1)]
    if high_pass:
        n_cos = int(np.floor(2 * n * tr * high_pass))
        k = np.arange(n)
        cols += [np.cos(np.pi * (k + 0.5) * j / n) for j in range(1, n_cos + 1)]
    basis = np.stack(cols, axis=1)
    q, _ = np.linalg.qr(basis)
    y = np.asarray(y, dtype=np.float64)
    return (y - q @ (q.T @ y)).astype(np.float32)


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
