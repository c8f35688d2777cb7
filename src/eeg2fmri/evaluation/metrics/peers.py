"""Peer-parity metrics: the published EEG-to-fMRI package's (Calhas & Henriques) own RMSE and SSIM definitions."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from eeg2fmri.evaluation.metrics._common import (
    _CHUNK_ELEMS,
    K1,
    K2,
    _check_data_range,
    _prepare_pair,
)
from eeg2fmri.evaluation.metrics.intensity import _ssim_map
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
)

__all__ = ["calhas_rmse", "calhas_ssim"]


# --------------------------------------------------------------------------- peer parity

_CALHAS_WIN = 11
_CALHAS_SIGMA = 1.5
_CALHAS_EPS = 1e-9
_CALHAS_STEP = 3


def _calhas_volumes(y_true: ArrayLike, y_pred: ArrayLike, where: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _prepare_pair(y_true, y_pred, where, ndims=(3, 4))
    if t.ndim == 3:
        t, p = t[..., None], p[..., None]
    return t, p


def calhas_rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """RMSE as defined by the EEG-to-fMRI package (Calhas & Henriques), for parity.

    *Their* definition, not ours: the RMSE of each volume over **all** voxels
    of the grid, background included (which shrinks the error where the
    background is trivially predicted), then the mean over volumes (their
    code returns one RMSE per test volume). Our own :func:`rmse` uses the
    brain mask.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (X, Y, Z) or (X, Y, Z, n_times)

    Returns
    -------
    rmse : float
    """
    t, p = _calhas_volumes(y_true, y_pred, "calhas_rmse")
    per_vol = np.empty(t.shape[3])
    for i in range(t.shape[3]):
        d = t[..., i].astype(np.float64) - p[..., i]
        per_vol[i] = np.sqrt(np.mean(d * d))
    return float(per_vol.mean())


def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    c = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * c * c / (sigma * sigma))
    return g / g.sum()


def _valid_filter_2d(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' (unpadded) filtering of axes 0 and 1 of (H, W, N) stacks."""
    h = g.size // 2
    y = ndimage.correlate1d(x, g, axis=0, mode="constant")[h : x.shape[0] - h]
    return ndimage.correlate1d(y, g, axis=1, mode="constant")[:, h : x.shape[1] - h]


def calhas_ssim(
    y_true: ArrayLike, y_pred: ArrayLike, data_range: float | str = "peer"
) -> float:
    """Slice-wise 2D SSIM as defined by the EEG-to-fMRI package (Calhas & Henriques).

    *Their* definition, reproduced for parity with their reported numbers,
    not ours (ours is :func:`ssim3d` in the brain mask with a stated range).
    It follows their ``utils/metrics.py``:

    * both volumes are offset by 1e-9 (their guard against division by zero,
      which makes an all-zero slice pair score 1);
    * axial slices ``0, 3, 6, ...`` along the last spatial axis, namely
      ``3 * k`` for ``k < Z // 3`` (so for Z = 31 slice 30 is not used, as in
      their loop);
    * ``tf.image.ssim`` on each slice: 11x11 Gaussian window with sigma 1.5,
      no padding (the SSIM map covers only the positions where the window
      fits, i.e. shape (X - 10, Y - 10)), K1 = 0.01, K2 = 0.03, population
      moments, the map averaged over the slice;
    * the mean over the chosen slices, then over volumes.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (X, Y, Z) or (X, Y, Z, n_times)
        Observed and synthesised volumes; X, Y >= 11 and Z >= 3.
    data_range : float, "peer" or "true_range", default "peer"
        The ``max_val`` of ``tf.image.ssim``. ``"peer"``: their code's choice,
        per slice the larger of the two slices' maxima (after the offset).
        ``"true_range"``: max - min of the observed volume (per volume).
        A positive float fixes it.

    Returns
    -------
    ssim : float
        Mean over volumes (and slices).

    Raises
    ------
    Eeg2fmriInputError
        Not 3D/4D, shape mismatch, slices smaller than the 11x11 window,
        fewer than 3 slices, invalid ``data_range``, non-finite values.
    """
    where = "calhas_ssim"
    t, p = _calhas_volumes(y_true, y_pred, where)
    X, Y, Z, T = t.shape
    if X < _CALHAS_WIN or Y < _CALHAS_WIN:
        raise Eeg2fmriInputError(
            f"{where}: expected axial slices of at least {_CALHAS_WIN}x{_CALHAS_WIN} voxels (their "
            f"11x11 SSIM window, unpadded), got {X}x{Y}; this metric is only defined for such grids."
        )
    n_sl = Z // _CALHAS_STEP
    if n_sl == 0:
        raise Eeg2fmriInputError(
            f"{where}: expected at least {_CALHAS_STEP} slices along the last spatial axis (slices "
            f"3k for k < Z // 3), got Z = {Z}."
        )
    if isinstance(data_range, str):
        mode = check_choice(data_range, "data_range", ["peer", "true_range"], where=where)
        fixed = None
    else:
        mode = "fixed"
        fixed = _check_data_range(data_range, where)
    g = _gauss_1d(_CALHAS_WIN, _CALHAS_SIGMA)
    idx = np.arange(n_sl) * _CALHAS_STEP
    per_vol = np.empty(T)
    step = max(1, _CHUNK_ELEMS // (X * Y * n_sl))
    for start in range(0, T, step):
        vols = slice(start, min(start + step, T))
        nv = vols.stop - vols.start
        # (X, Y, n_sl, nv) -> (X, Y, n_sl * nv), slice-major within each volume.
        a = (np.asarray(t[:, :, idx, vols], dtype=np.float64) + _CALHAS_EPS).reshape(X, Y, -1)
        b = (np.asarray(p[:, :, idx, vols], dtype=np.float64) + _CALHAS_EPS).reshape(X, Y, -1)
        if mode == "peer":
            max_val = np.maximum(a.max(axis=(0, 1)), b.max(axis=(0, 1)))
        elif mode == "true_range":
            tv = np.asarray(t[..., vols], dtype=np.float64)
            rng_v = tv.max(axis=(0, 1, 2)) - tv.min(axis=(0, 1, 2))
            max_val = np.repeat(rng_v[None, :], n_sl, axis=0).ravel()
        else:
            max_val = np.full(a.shape[2], fixed)
        c1 = (K1 * max_val) ** 2
        c2 = (K2 * max_val) ** 2
        smap = _ssim_map(
            _valid_filter_2d(a, g), _valid_filter_2d(b, g),
            _valid_filter_2d(a * a, g), _valid_filter_2d(b * b, g), _valid_filter_2d(a * b, g),
            c1, c2,
        )
        per_slice = smap.mean(axis=(0, 1)).reshape(n_sl, nv)
        per_vol[vols] = per_slice.mean(axis=0)
    return float(per_vol.mean())
