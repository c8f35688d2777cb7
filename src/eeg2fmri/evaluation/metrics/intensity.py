"""Intensity errors inside a brain mask with an explicit data range: RMSE, MAE, PSNR, 3D SSIM."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from eeg2fmri.evaluation.metrics._common import (
    _CHUNK_ELEMS,
    K1,
    K2,
    _as_mask,
    _as_real_array,
    _check_data_range,
    _prepare_pair,
    _select,
)
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
    check_positive,
)

__all__ = ["mae", "psnr", "rmse", "ssim3d", "ssim3d_series"]


# --------------------------------------------------------------------------- intensity errors


def rmse(y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Root mean squared error over the (in-mask) values.

    Parameters
    ----------
    y_true, y_pred : array_like, any shape, e.g. (X, Y, Z), (X, Y, Z, n_times) or
        (n_times, n_voxels)
    mask : array_like of bool, optional
        Shape of the data, or its spatial part: ``(X, Y, Z)`` for 4D data,
        ``(n_voxels,)`` for 2D data. ``None`` uses every value (our reports use
        the brain mask; see :func:`calhas_rmse` for the peers' whole-grid RMSE).

    Returns
    -------
    rmse : float
    """
    t, p = _select(*_prepare_pair(y_true, y_pred, "rmse", finite=False), mask, "rmse")
    check_finite(t, "y_true", where="rmse")
    check_finite(p, "y_pred", where="rmse")
    d = t.astype(np.float64) - p
    return float(np.sqrt(np.mean(d * d)))


def mae(y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean absolute error over the (in-mask) values.

    Parameters
    ----------
    y_true, y_pred : array_like, any shape
    mask : array_like of bool, optional
        As in :func:`rmse`.

    Returns
    -------
    mae : float
    """
    t, p = _select(*_prepare_pair(y_true, y_pred, "mae", finite=False), mask, "mae")
    check_finite(t, "y_true", where="mae")
    check_finite(p, "y_pred", where="mae")
    return float(np.mean(np.abs(t.astype(np.float64) - p)))


def psnr(
    y_true: ArrayLike, y_pred: ArrayLike, data_range: float, mask: ArrayLike | None = None
) -> float:
    """Peak signal-to-noise ratio, ``10 log10(data_range**2 / MSE)`` in dB.

    Parameters
    ----------
    y_true, y_pred : array_like, any shape
    data_range : float
        The intensity range, required and explicit (a PSNR without a stated
        range cannot be compared); e.g. the range of ``y_true`` in the mask.
    mask : array_like of bool, optional
        As in :func:`rmse`.

    Returns
    -------
    psnr : float
        ``inf`` when the prediction is exact.

    Raises
    ------
    Eeg2fmriInputError
        Shape or mask mismatch, ``data_range <= 0``, non-finite values.
    """
    dr = _check_data_range(data_range, "psnr")
    t, p = _select(*_prepare_pair(y_true, y_pred, "psnr", finite=False), mask, "psnr")
    check_finite(t, "y_true", where="psnr")
    check_finite(p, "y_pred", where="psnr")
    d = t.astype(np.float64) - p
    mse = float(np.mean(d * d))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(dr * dr / mse))


# --------------------------------------------------------------------------- SSIM


def _ssim_map(mu_a, mu_b, e_aa, e_bb, e_ab, c1, c2) -> np.ndarray:
    """SSIM index from local (weighted) moments; exactly 1 where both images agree."""
    mu_ab = mu_a * mu_b
    num = (2.0 * mu_ab + c1) * (2.0 * (e_ab - mu_ab) + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * ((e_aa - mu_a * mu_a) + (e_bb - mu_b * mu_b) + c2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _ssim3d_volumes(
    a: np.ndarray, b: np.ndarray, dr: float, mask: np.ndarray | None, sigma: float, truncate: float
) -> np.ndarray:
    """Mean in-mask SSIM per volume of (X, Y, Z, T) arrays -> (T,)."""
    c1 = (K1 * dr) ** 2
    c2 = (K2 * dr) ** 2
    n_vol = a.shape[3]
    per_vol = max(1, int(np.prod(a.shape[:3])))
    step = max(1, _CHUNK_ELEMS // per_vol)
    sig = (sigma, sigma, sigma, 0.0)
    out = np.empty(n_vol)
    for start in range(0, n_vol, step):
        sl = slice(start, min(start + step, n_vol))
        x = np.array(a[..., sl], dtype=np.float64)
        y = np.array(b[..., sl], dtype=np.float64)

        def filt(v: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(v, sigma=sig, truncate=truncate, mode="reflect")

        smap = _ssim_map(filt(x), filt(y), filt(x * x), filt(y * y), filt(x * y), c1, c2)
        if mask is None:
            out[sl] = smap.reshape(-1, smap.shape[3]).mean(axis=0)
        else:
            out[sl] = smap[mask].mean(axis=0)
    return out


def _prepare_ssim3d(
    vol_a: ArrayLike, vol_b: ArrayLike, data_range: float, mask: ArrayLike | None,
    sigma: float, truncate: float, ndim: int, where: str,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None, float, float]:
    dr = _check_data_range(data_range, where)
    sig = check_positive(sigma, "sigma", where=where, fix="pass the Gaussian window's width in voxels, e.g. 1.5")
    trunc = check_positive(truncate, "truncate", where=where, fix="pass the window's half-width in sigmas, e.g. 3.5")
    layout = "(X, Y, Z)" if ndim == 3 else "(X, Y, Z, n_times)"
    a = _as_real_array(vol_a, "vol_a", where)
    b = _as_real_array(vol_b, "vol_b", where)
    if a.ndim != ndim:
        raise Eeg2fmriInputError(
            f"{where}: expected vol_a of shape {layout}, got {a.ndim}D with shape {a.shape}; "
            + ("use ssim3d_series for (X, Y, Z, n_times) data." if ndim == 3 else "use ssim3d for one volume.")
        )
    if b.shape != a.shape:
        raise Eeg2fmriInputError(
            f"{where}: expected vol_b with the shape of vol_a {a.shape}, got {b.shape}; "
            f"compare volumes on the same voxel grid."
        )
    if a.size == 0:
        raise Eeg2fmriInputError(f"{where}: expected non-empty volumes, got shape {a.shape}.")
    check_finite(a, "vol_a", where=where)
    check_finite(b, "vol_b", where=where)
    m = None
    if mask is not None:
        m = _as_mask(mask, where)
        if m.shape != a.shape[:3]:
            raise Eeg2fmriInputError(
                f"{where}: expected mask with shape {a.shape[:3]} (the volumes' grid), got "
                f"{m.shape}; build or resample the mask on the data's voxel grid."
            )
    return a, b, dr, m, sig, trunc


def ssim3d(
    vol_a: ArrayLike,
    vol_b: ArrayLike,
    data_range: float,
    mask: ArrayLike | None = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
) -> float:
    """3D structural similarity with a Gaussian window (Wang et al. 2004).

    Local means, variances and covariance are Gaussian-weighted
    (``scipy.ndimage.gaussian_filter``, ``mode="reflect"``), with constants
    ``C1 = (0.01 * data_range)**2`` and ``C2 = (0.03 * data_range)**2``; the
    SSIM map is averaged over the in-mask voxels (the window itself still
    sees neighbouring out-of-mask voxels, as in any windowed SSIM).

    Parameters
    ----------
    vol_a, vol_b : array_like, shape (X, Y, Z)
        The two volumes (symmetric in ``vol_a`` and ``vol_b``).
    data_range : float
        Intensity range used for the constants; required and explicit,
        typically the range of the observed data inside the brain mask.
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels over which the SSIM map is averaged; ``None`` averages all.
    sigma : float, default 1.5
        Standard deviation of the Gaussian window, in voxels.
    truncate : float, default 3.5
        Window half-width in units of ``sigma``.

    Returns
    -------
    ssim : float
        In [-1, 1]; exactly 1 for identical volumes.

    Raises
    ------
    Eeg2fmriInputError
        Not 3D, shape or mask mismatch, ``data_range``/``sigma``/``truncate``
        not positive, non-finite values.
    """
    a, b, dr, m, sig, trunc = _prepare_ssim3d(vol_a, vol_b, data_range, mask, sigma, truncate, 3, "ssim3d")
    return float(_ssim3d_volumes(a[..., None], b[..., None], dr, m, sig, trunc)[0])


def ssim3d_series(
    vol_a: ArrayLike,
    vol_b: ArrayLike,
    data_range: float,
    mask: ArrayLike | None = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
    per_volume: bool = False,
) -> float | np.ndarray:
    """:func:`ssim3d` of every volume of a time series, averaged over time.

    Parameters
    ----------
    vol_a, vol_b : array_like, shape (X, Y, Z, n_times)
    data_range : float
        One explicit range for the whole series (see :func:`ssim3d`).
    mask : array_like of bool, shape (X, Y, Z), optional
    sigma, truncate : float
        As in :func:`ssim3d`.
    per_volume : bool, default False
        Return the ``(n_times,)`` per-volume values instead of their mean.

    Returns
    -------
    ssim : float or ndarray of shape (n_times,)
    """
    a, b, dr, m, sig, trunc = _prepare_ssim3d(
        vol_a, vol_b, data_range, mask, sigma, truncate, 4, "ssim3d_series"
    )
    vals = _ssim3d_volumes(a, b, dr, m, sig, trunc)
    return vals if per_volume else float(vals.mean())
