"""BOLD preprocessing: brain mask, detrending/high-pass, standardisation."""

from __future__ import annotations

import warnings

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["compute_mask", "detrend", "Standardizer"]


def compute_mask(img, where: str = "BOLD") -> np.ndarray:
    """Brain mask from the data (nilearn's EPI mask of the mean image).

    Returns
    -------
    mask : array of bool, shape (X, Y, Z)
    """
    from nilearn.masking import compute_epi_mask

    # the morphological opening removes thin structures; on coarse grids it would erode the brain itself
    voxel = float(np.max(np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(0))))
    opening = 2 if voxel <= 4.0 else (1 if voxel <= 8.0 else False)
    from nilearn.exceptions import MaskWarning

    # (``catch_warnings`` is process-global and not thread-safe: prepare computes the mask in a
    # thread while the main thread reads EEG, so a warning turned into an error elsewhere can
    # still reach here; an empty-mask warning means what the check below says)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = compute_epi_mask(img, opening=opening)
        mask = np.asarray(m.get_fdata()) > 0
    except MaskWarning:
        mask = np.zeros(img.shape[:3], dtype=bool)
    if mask.sum() == 0:
        raise Eeg2fmriInputError(f"{where}: the automatic brain mask (EPI mask of the mean image) is empty; pass a mask image on the BOLD grid (prepare option mask=<path> or mask='mni').")
    return mask


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
