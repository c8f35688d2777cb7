"""Metrics for synthesised BOLD, with the uncertainty an honest evaluation needs.

Our own metrics (what we report first):

* voxel-wise temporal Pearson r (:func:`pearson_r`, :func:`voxelwise_r`,
  :func:`r_map`, :func:`summarize_r`, :func:`roi_r`), the measure that says
  whether the *fluctuations* of the BOLD signal are predicted, not only the
  mean anatomy;
* intensity errors inside a brain mask with an explicit data range
  (:func:`rmse`, :func:`mae`, :func:`psnr`, :func:`ssim3d`,
  :func:`ssim3d_series`);
* block-bootstrap confidence intervals over time (:func:`block_bootstrap_ci`,
  :func:`bootstrap_median_r`, :func:`paired_bootstrap`) and the fraction of a
  noise ceiling reached (:func:`ceiling_fraction`).

Peer-parity metrics, reproducing the definitions of the published
"EEG-to-fMRI" package (Calhas & Henriques) so that numbers can be compared
with theirs: :func:`calhas_rmse` and :func:`calhas_ssim`. They are *their*
definitions, not ours: they include the background of the grid and rescale
the data range per slice, which rewards reproducing the mean anatomy.

Array conventions: voxel-by-time matrices are ``(n_times, n_voxels)``; 4D
volumes are ``(X, Y, Z, n_times)`` (the NIfTI order), with 3D masks
``(X, Y, Z)``. Everything is computed in float64, in chunks where the data
can be large, so float32 inputs are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, sparse

from eeg2fmri.utils.rng import check_random_state
from eeg2fmri.utils.stats import CHUNK_ELEMS, pearson_columns
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_finite,
    check_positive,
    check_positive_int,
)

__all__ = [
    "block_bootstrap_ci",
    "block_bootstrap_indices",
    "bootstrap_median_r",
    "calhas_rmse",
    "calhas_ssim",
    "ceiling_fraction",
    "mae",
    "median_r",
    "paired_bootstrap",
    "pearson_r",
    "psnr",
    "r_map",
    "rmse",
    "roi_r",
    "ssim3d",
    "ssim3d_series",
    "summarize_r",
    "voxelwise_r",
]

#: Wang et al. (2004) SSIM constants.
K1 = 0.01
K2 = 0.03

# Element budget of one float64 working array in the chunked computations (16 MiB).
_CHUNK_ELEMS = CHUNK_ELEMS
# Element budget of the float32 per-time statistics of one voxel chunk (32 MiB).
_STATS_ELEMS = 1 << 23
# Element budget of the float32 bootstrap draws of r kept at once (256 MiB).
_BOOT_ELEMS = 1 << 26
# A resampled series whose variance is below this fraction of the full series'
# variance is treated as constant (its r is NaN), as pearson_r does for exactly
# constant series; above float32 rounding of the resampled sums.
_REL_VAR_FLOOR = 1e-6


# --------------------------------------------------------------------------- validation


def _as_real_array(x: ArrayLike, name: str, where: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise Eeg2fmriInputError(
            f"{where}: expected {name} to be a real numeric array, got dtype {arr.dtype}; "
            f"pass a float array (e.g. np.asarray({name}, dtype=float))."
        )
    return arr


def _prepare_pair(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    where: str,
    *,
    pred_name: str = "y_pred",
    ndims: tuple[int, ...] | None = None,
    finite: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return both arrays as real numeric ndarrays of the same shape (and finite)."""
    t = _as_real_array(y_true, "y_true", where)
    p = _as_real_array(y_pred, pred_name, where)
    if ndims is not None and t.ndim not in ndims:
        shown = " or ".join(f"{d}D" for d in ndims)
        raise Eeg2fmriInputError(
            f"{where}: expected y_true to be {shown}, got {t.ndim}D with shape {t.shape}; "
            f"see the docstring for the accepted layouts."
        )
    if p.shape != t.shape:
        raise Eeg2fmriInputError(
            f"{where}: expected {pred_name} with the shape of y_true {t.shape}, got {p.shape}; "
            f"pass predictions for the same time points and voxels, in the same layout, "
            f"as the ground truth."
        )
    if t.size == 0:
        raise Eeg2fmriInputError(f"{where}: expected non-empty arrays, got shape {t.shape}.")
    if finite:
        check_finite(t, "y_true", where=where)
        check_finite(p, pred_name, where=where)
    return t, p


def _as_mask(mask: ArrayLike, where: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        if m.dtype.kind not in "fiu" or not np.isin(m, (0, 1)).all():
            raise Eeg2fmriInputError(
                f"{where}: expected a boolean mask (or one holding only 0 and 1), got dtype "
                f"{m.dtype} with other values; threshold it first, e.g. mask > 0.5."
            )
        m = m.astype(bool)
    if not m.any():
        raise Eeg2fmriInputError(
            f"{where}: the mask selects no voxels; pass a mask with at least one True voxel."
        )
    return m


def _mask_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Mask shapes accepted for data of ``shape``: the full shape or the spatial part."""
    out = [shape]
    if len(shape) == 4:
        out.append(shape[:3])
    elif len(shape) == 2:
        out.append(shape[1:])
    return out


def _select(
    y_true: np.ndarray, y_pred: np.ndarray, mask: ArrayLike | None, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """In-mask values of both arrays, selected identically."""
    if mask is None:
        return y_true, y_pred
    m = _as_mask(mask, where)
    shp = y_true.shape
    if m.shape == shp or (y_true.ndim == 4 and m.shape == shp[:3]):
        return y_true[m], y_pred[m]
    if y_true.ndim == 2 and m.shape == shp[1:]:
        return y_true[:, m], y_pred[:, m]
    accepted = " or ".join(str(s) for s in _mask_shapes(shp))
    raise Eeg2fmriInputError(
        f"{where}: expected mask with shape {accepted} for data of shape {shp}, got {m.shape}; "
        f"build or resample the mask on the data's voxel grid."
    )


def _check_data_range(data_range: Any, where: str) -> float:
    return check_positive(
        data_range,
        "data_range",
        where=where,
        fix="pass the intensity range of the data explicitly, e.g. "
        "float(y_true[mask].max() - y_true[mask].min())",
    )


# --------------------------------------------------------------------------- correlation


def pearson_r(y_true: ArrayLike, y_pred: ArrayLike, axis: int = 0) -> np.ndarray | float:
    """Pearson correlation along one axis (voxel-wise temporal r by default).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels) or any shape
        Observed and predicted signals; same shape, finite values. The
        correlation is taken along ``axis`` (time), independently for every
        other index (voxel).
    axis : int, default 0
        The axis holding the samples (time).

    Returns
    -------
    r : ndarray of shape ``y_true.shape`` without ``axis`` (``(n_voxels,)`` for
        the default layout), or float for 1D input
        Pearson r in [-1, 1]. A series that is exactly constant along ``axis``
        (in either array) has no defined correlation and gives NaN, silently:
        summaries such as :func:`summarize_r` ignore NaN.

    Raises
    ------
    Eeg2fmriInputError
        Shapes differ, ``axis`` is out of range, fewer than 2 samples, or
        non-finite values.
    """
    where = "pearson_r"
    t, p = _prepare_pair(y_true, y_pred, where)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -t.ndim <= axis < t.ndim:
        raise Eeg2fmriInputError(
            f"{where}: expected axis to be an integer in [{-t.ndim}, {t.ndim - 1}] for data of "
            f"shape {t.shape}, got {axis!r}; pass the axis that holds time."
        )
    t = np.moveaxis(t, axis, 0)
    p = np.moveaxis(p, axis, 0)
    n = t.shape[0]
    if n < 2:
        raise Eeg2fmriInputError(
            f"{where}: expected at least 2 samples along axis {axis}, got {n}; a correlation "
            f"needs a time series, check which axis holds time."
        )
    rest = t.shape[1:]
    r = pearson_columns(t.reshape(n, -1), p.reshape(n, -1))
    if not rest:
        return float(r[0])
    return r.reshape(rest)


def _voxel_series(
    y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(n_times, n_selected) views of 2D or 4D data, plus the 3D mask used (4D only)."""
    t, p = _prepare_pair(y_true, y_pred, where, ndims=(2, 4), finite=False)
    m = None
    if t.ndim == 4:
        spatial = t.shape[:3]
        if mask is None:
            m = np.ones(spatial, dtype=bool)
        else:
            m = _as_mask(mask, where)
            if m.shape != spatial:
                raise Eeg2fmriInputError(
                    f"{where}: expected mask with shape {spatial} (the spatial grid of the "
                    f"(X, Y, Z, n_times) data {t.shape}), got {m.shape}; build or resample the "
                    f"mask on the data's voxel grid."
                )
        ts, ps = t[m].T, p[m].T
    else:
        if mask is None:
            ts, ps = t, p
        else:
            m2 = _as_mask(mask, where)
            if m2.shape != t.shape[1:]:
                raise Eeg2fmriInputError(
                    f"{where}: expected mask with shape {t.shape[1:]} (one entry per voxel of the "
                    f"(n_times, n_voxels) data {t.shape}), got {m2.shape}; pass a 1D boolean "
                    f"voxel mask."
                )
            ts, ps = t[:, m2], p[:, m2]
    check_finite(ts, "y_true", where=where)
    check_finite(ps, "y_pred", where=where)
    return ts, ps, m


def voxelwise_r(y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Temporal Pearson r of every (in-mask) voxel.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels) or (X, Y, Z, n_times)
        Observed and predicted BOLD, same shape.
    mask : array_like of bool, optional
        Voxels to keep: shape ``(n_voxels,)`` for 2D data, ``(X, Y, Z)`` for 4D
        data (usually the brain mask). ``None`` keeps every voxel.

    Returns
    -------
    r : ndarray, shape (n_selected,)
        r per selected voxel, in the order of ``y[..., mask]`` (C order for
        volumes). NaN where a series is constant.

    Raises
    ------
    Eeg2fmriInputError
        Wrong dimensionality, shape or mask shape mismatch, empty mask,
        non-finite values in the selected voxels.
    """
    ts, ps, _ = _voxel_series(y_true, y_pred, mask, "voxelwise_r")
    if ts.shape[0] < 2:
        raise Eeg2fmriInputError(
            f"voxelwise_r: expected at least 2 time points, got {ts.shape[0]}; time is the first "
            f"axis of 2D data and the last axis of 4D data."
        )
    return pearson_columns(ts, ps)


def r_map(y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """3D map of voxel-wise temporal Pearson r.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (X, Y, Z, n_times)
        Observed and predicted BOLD volumes.
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to compute; ``None`` computes every voxel.

    Returns
    -------
    rmap : ndarray, shape (X, Y, Z)
        r inside the mask, NaN outside it (and where a series is constant).

    Raises
    ------
    Eeg2fmriInputError
        Input not 4D, shape or mask shape mismatch, empty mask, non-finite
        values inside the mask.
    """
    t = np.asarray(y_true)
    if t.ndim != 4:
        raise Eeg2fmriInputError(
            f"r_map: expected y_true of shape (X, Y, Z, n_times), got {t.ndim}D with shape "
            f"{t.shape}; for (n_times, n_voxels) data use voxelwise_r."
        )
    ts, ps, m = _voxel_series(t, y_pred, mask, "r_map")
    if ts.shape[0] < 2:
        raise Eeg2fmriInputError(
            f"r_map: expected at least 2 time points (last axis), got {ts.shape[0]}."
        )
    out = np.full(t.shape[:3], np.nan)
    out[m] = pearson_columns(ts, ps)
    return out


def summarize_r(r: ArrayLike) -> dict[str, float | int]:
    """Distribution summary of voxel-wise correlations, ignoring NaN.

    Parameters
    ----------
    r : array_like, any shape
        Correlations (e.g. from :func:`voxelwise_r`); NaN entries (constant
        voxels, outside-mask entries of :func:`r_map`) are ignored.

    Returns
    -------
    summary : dict
        ``median``, ``mean``, ``q25``, ``q75`` (floats), ``frac_positive``
        (fraction of the finite r that are > 0), ``n`` (number of finite r) and
        ``n_nan`` (number ignored). With no finite value, the statistics are
        NaN and ``n`` is 0.

    Raises
    ------
    Eeg2fmriInputError
        Non-numeric input or infinite values.
    """
    arr = _as_real_array(r, "r", "summarize_r").astype(np.float64, copy=False).ravel()
    if np.isinf(arr).any():
        raise Eeg2fmriInputError(
            "summarize_r: expected correlations in [-1, 1] or NaN, found infinite values; "
            "check how r was computed."
        )
    finite = arr[~np.isnan(arr)]
    n = int(finite.size)
    if n == 0:
        nan = float("nan")
        return {"median": nan, "mean": nan, "q25": nan, "q75": nan, "frac_positive": nan,
                "n": 0, "n_nan": int(arr.size)}
    q25, med, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {
        "median": float(med),
        "mean": float(finite.mean()),
        "q25": float(q25),
        "q75": float(q75),
        "frac_positive": float(np.count_nonzero(finite > 0) / n),
        "n": n,
        "n_nan": int(arr.size - n),
    }


def roi_r(y_true: ArrayLike, y_pred: ArrayLike, labels: ArrayLike) -> dict[int, float]:
    """Correlation of ROI-average time series.

    The voxels' series of each ROI are averaged first (observed and predicted
    separately), then the two ROI series are correlated over time.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels) or (X, Y, Z, n_times)
        Observed and predicted BOLD.
    labels : array_like of int, shape (n_voxels,) or (X, Y, Z)
        ROI label per voxel; 0 is background (ignored). Float arrays holding
        whole numbers (as atlases loaded from NIfTI often are) are accepted.

    Returns
    -------
    r : dict
        ``{label: r}`` for every non-zero label, sorted by label. NaN for an ROI
        whose average series is constant.

    Raises
    ------
    Eeg2fmriInputError
        Shape mismatch, labels not whole non-negative numbers, no ROI,
        non-finite values.
    """
    where = "roi_r"
    t, p = _prepare_pair(y_true, y_pred, where, ndims=(2, 4))
    lab = _as_real_array(labels, "labels", where)
    spatial = t.shape[:3] if t.ndim == 4 else t.shape[1:]
    if lab.shape != spatial:
        raise Eeg2fmriInputError(
            f"{where}: expected labels with shape {spatial} (one label per voxel of the data "
            f"{t.shape}), got {lab.shape}; resample the atlas on the data's voxel grid."
        )
    if (lab < 0).any() or (lab != np.round(lab)).any():
        raise Eeg2fmriInputError(
            f"{where}: expected whole-number labels >= 0 (0 = background), got values such as "
            f"{lab[(lab < 0) | (lab != np.round(lab))].ravel()[:3].tolist()}; resample atlases "
            f"with nearest-neighbour interpolation."
        )
    lab = lab.astype(np.int64).ravel()
    if t.ndim == 4:
        n_times = t.shape[3]
        ts, ps = t.reshape(-1, n_times).T, p.reshape(-1, n_times).T
    else:
        n_times = t.shape[0]
        ts, ps = t, p
    keep = np.flatnonzero(lab)
    if keep.size == 0:
        raise Eeg2fmriInputError(
            f"{where}: labels hold no ROI (all 0 = background); pass an atlas with labels >= 1."
        )
    if n_times < 2:
        raise Eeg2fmriInputError(f"{where}: expected at least 2 time points, got {n_times}.")
    uniq, col = np.unique(lab[keep], return_inverse=True)
    counts = np.bincount(col).astype(np.float64)
    avg = sparse.csr_matrix(
        (1.0 / counts[col], (keep, col)), shape=(lab.size, uniq.size)
    )
    roi_t = np.asarray((avg.T @ ts.T.astype(np.float64)).T)
    roi_p = np.asarray((avg.T @ ps.T.astype(np.float64)).T)
    r = pearson_columns(roi_t, roi_p)
    return {int(k): float(v) for k, v in zip(uniq, r)}


def median_r(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Median voxel-wise temporal r of ``(n_times, n_voxels)`` arrays, ignoring NaN.

    The metric of choice for :func:`block_bootstrap_ci` and
    :func:`paired_bootstrap`: passing this very function as ``metric`` selects
    their fast sufficient-statistics path.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels)

    Returns
    -------
    median : float
        NaN when every voxel is constant.
    """
    r = np.atleast_1d(pearson_r(y_true, y_pred, axis=0)).ravel()
    return _nanmedian_rows(r[None, :])[0]


def _nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN, NaN for an all-NaN row, without warnings."""
    nan = np.isnan(a)
    if not nan.any():
        return np.median(a, axis=1)
    out = np.full(a.shape[0], np.nan)
    ok = ~nan.all(axis=1)
    if ok.any():
        out[ok] = np.nanmedian(a[ok], axis=1)
    return out


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


# --------------------------------------------------------------------------- bootstrap


def _check_block_args(
    n_times: int, n_boot: Any, block_len: Any, ci: Any, method: Any, where: str
) -> tuple[int, int, float, str]:
    nb = check_positive_int(n_boot, "n_boot", where=where, fix="pass e.g. n_boot=1000")
    if block_len is None:
        bl = max(1, int(round(n_times ** (1.0 / 3.0))))
    else:
        bl = check_positive_int(block_len, "block_len", where=where, fix="pass a block length in time points, or None for round(n_times ** (1/3))")
    if bl > n_times:
        raise Eeg2fmriInputError(
            f"{where}: expected block_len <= n_times ({n_times}), got {bl}; use shorter blocks."
        )
    try:
        c = float(ci)
    except (TypeError, ValueError):
        c = float("nan")
    if not 0.0 < c < 1.0:
        raise Eeg2fmriInputError(
            f"{where}: expected ci strictly between 0 and 1, got {ci!r}; e.g. ci=0.95 for a 95% interval."
        )
    m = check_choice(method, "method", ["circular", "moving"], where=where)
    return nb, bl, c, m


def block_bootstrap_indices(
    n_times: int,
    n_boot: int,
    block_len: int,
    method: str = "circular",
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Time indices of block-bootstrap resamples.

    Each resample concatenates ``ceil(n_times / block_len)`` contiguous blocks
    with uniformly drawn starts and keeps the first ``n_times`` indices.
    ``"circular"`` (Politis & Romano): starts anywhere, blocks wrap around the
    end, so every time point is equally likely. ``"moving"`` (Kuensch): starts
    in ``[0, n_times - block_len]``, no wrapping.

    Parameters
    ----------
    n_times, n_boot, block_len : int
    method : {"circular", "moving"}
    random_state : int, Generator or None

    Returns
    -------
    idx : ndarray of int, shape (n_boot, n_times)
    """
    where = "block_bootstrap_indices"
    n = check_positive_int(n_times, "n_times", where=where)
    nb, bl, _, m = _check_block_args(n, n_boot, block_len, 0.5, method, where)
    rng = check_random_state(random_state)
    n_blocks = -(-n // bl)
    high = n if m == "circular" else n - bl + 1
    starts = rng.integers(0, high, size=(nb, n_blocks))
    idx = (starts[:, :, None] + np.arange(bl)).reshape(nb, -1)[:, :n]
    if m == "circular":
        idx %= n
    return idx


def _prepare_boot(
    y_true: ArrayLike, preds: list[ArrayLike], names: list[str], where: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    t = _as_real_array(y_true, "y_true", where)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise Eeg2fmriInputError(
            f"{where}: expected y_true of shape (n_times, n_voxels), got {t.ndim}D with shape "
            f"{t.shape}; flatten volumes first, e.g. y[mask].T for (X, Y, Z, n_times) data."
        )
    out = []
    for pr, name in zip(preds, names):
        p = _as_real_array(pr, name, where)
        if p.ndim == 1:
            p = p[:, None]
        _, p = _prepare_pair(t, p, where, pred_name=name, finite=False)
        check_finite(p, name, where=where)
        out.append(p)
    check_finite(t, "y_true", where=where)
    if t.shape[0] < 2:
        raise Eeg2fmriInputError(f"{where}: expected at least 2 time points, got {t.shape[0]}.")
    return t, out


def _scalar(value: Any, where: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "fiub":
        raise Eeg2fmriInputError(
            f"{where}: expected metric to return one number, got {type(value).__name__} with shape "
            f"{arr.shape}; reduce it, e.g. with np.median."
        )
    return float(arr.reshape(()))


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """How many times each time point appears in each resample, (n_boot, n) float64."""
    nb = idx.shape[0]
    flat = (idx + n * np.arange(nb)[:, None]).ravel()
    return np.bincount(flat, minlength=nb * n).reshape(nb, n).astype(np.float64)


def _boot_median_r(y_true: np.ndarray, preds: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Median voxel r of every resample, from resampled sufficient statistics.

    A resample's sums of x, y, x^2, y^2 and xy are ``weights @ stats`` (the
    (n_boot, n_times) multiplicity of each time point times the per-time
    statistics), BLAS matrix products per chunk of voxels, instead of
    copying the data for every draw. Series are standardised over the full
    recording first, into float32 copies (r is invariant to that; it keeps
    the sums well conditioned), which makes float32 products accurate to
    ~1e-6 in r at twice the float64 speed. Memory: those copies plus at most
    ``_BOOT_ELEMS`` float32 draws of r at once. Returns (n_pred, n_boot).
    """
    n, v = y_true.shape
    nb = weights.shape[0]
    n_pred = len(preds)
    k = 2 + 3 * n_pred
    meds = np.empty((n_pred, nb))
    vstep = max(1, _STATS_ELEMS // (n * k))
    bstep = max(1, _BOOT_ELEMS // (v * n_pred))
    w32 = weights.astype(np.float32)

    def standardise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 z-scores per column (computed in float64, by chunks) and constant flags."""
        out = np.empty(a.shape, dtype=np.float32)
        const = np.empty(a.shape[1], dtype=bool)
        for v0 in range(0, a.shape[1], vstep):
            vs = slice(v0, min(v0 + vstep, a.shape[1]))
            z = np.array(a[:, vs], dtype=np.float64)
            z -= z.mean(axis=0)
            cst = np.ptp(z, axis=0) == 0
            sd = np.sqrt(np.einsum("ij,ij->j", z, z) / n)
            sd[cst] = 1.0
            z /= sd
            out[:, vs] = z
            const[vs] = cst
        return out, const

    zx, cx_all = standardise(y_true)
    zs = [standardise(p) for p in preds]
    for b0 in range(0, nb, bstep):
        bs = slice(b0, min(b0 + bstep, nb))
        w = w32[bs]
        r_all = np.empty((n_pred, w.shape[0], v), dtype=np.float32)
        for v0 in range(0, v, vstep):
            vs = slice(v0, min(v0 + vstep, v))
            c = vs.stop - vs.start
            x, cx = zx[:, vs], cx_all[vs]
            # One product for the x statistics and one per prediction (same shapes, so
            # identical predictions give bitwise identical draws).
            sx = np.empty((n, 2, c), dtype=np.float32)
            sx[:, 0] = x
            np.multiply(x, x, out=sx[:, 1])
            s_x = (w @ sx.reshape(n, 2 * c)).reshape(-1, 2, c)
            s_x *= np.float32(1.0 / n)
            mx = s_x[:, 0]
            vx = s_x[:, 1] - mx * mx
            for j, (zy, cy_all) in enumerate(zs):
                y, cy = zy[:, vs], cy_all[vs]
                sy = np.empty((n, 3, c), dtype=np.float32)
                sy[:, 0] = y
                np.multiply(y, y, out=sy[:, 1])
                np.multiply(x, y, out=sy[:, 2])
                s_y = (w @ sy.reshape(n, 3 * c)).reshape(-1, 3, c)
                s_y *= np.float32(1.0 / n)
                my = s_y[:, 0]
                vy = s_y[:, 1] - my * my
                cov = s_y[:, 2] - mx * my
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = cov / np.sqrt(vx * vy)
                bad = (vx <= _REL_VAR_FLOOR) | (vy <= _REL_VAR_FLOOR) | (cx | cy)[None, :]
                r[bad] = np.nan
                np.clip(r, -1.0, 1.0, out=r)
                r_all[j, :, vs] = r
        for j in range(n_pred):
            meds[j, bs] = _nanmedian_rows(r_all[j])
    return meds


def _interval(draws: np.ndarray, ci: float) -> tuple[float, float, int]:
    ok = draws[np.isfinite(draws)]
    if ok.size == 0:
        return float("nan"), float("nan"), 0
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return float(lo), float(hi), int(ok.size)


def block_bootstrap_ci(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
) -> dict[str, Any]:
    """Block-bootstrap confidence interval of a metric, resampling time.

    BOLD is autocorrelated, so time points are resampled in contiguous blocks
    (see :func:`block_bootstrap_indices`) and the metric is recomputed on
    each resample; the interval is the percentile interval of those draws.
    Run it per subject (or per test span).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels) or (n_times,)
        Observed and predicted series; time on the first axis (for volumes,
        pass e.g. ``y[mask].T``).
    metric : callable
        ``metric(y_true, y_pred) -> float`` on 2D ``(n_times, n_voxels)``
        arrays, e.g. :func:`median_r`. Passing :func:`median_r` itself uses
        the fast sufficient-statistics path (same resamples, the same interval
        as the generic loop to ~1e-6; see :func:`bootstrap_median_r`).
    n_boot : int, default 1000
        Number of resamples.
    block_len : int, optional
        Block length in time points; default ``round(n_times ** (1/3))``, at
        least 1. Use at least the autocorrelation length of the residuals.
    ci : float, default 0.95
        Coverage of the interval.
    random_state : int, Generator or None
    method : {"circular", "moving"}, default "circular"

    Returns
    -------
    result : dict
        ``estimate`` (metric on the original data), ``low``, ``high`` (the
        percentile interval), ``std`` (bootstrap standard deviation),
        ``n_boot``, ``n_valid`` (draws with a finite value, the ones used),
        ``block_len``, ``ci``, ``method``.

    Raises
    ------
    Eeg2fmriInputError
        Shape mismatch, invalid ``n_boot``/``block_len``/``ci``/``method``,
        non-finite data, a metric that does not return one number.
    """
    where = "block_bootstrap_ci"
    if not callable(metric):
        raise Eeg2fmriInputError(
            f"{where}: expected metric to be a callable metric(y_true, y_pred) -> float, got "
            f"{type(metric).__name__}; e.g. metric=median_r."
        )
    t, (p,) = _prepare_boot(y_true, [y_pred], ["y_pred"], where)
    n = t.shape[0]
    nb, bl, c, m = _check_block_args(n, n_boot, block_len, ci, method, where)
    idx = block_bootstrap_indices(n, nb, bl, m, random_state)
    if metric is median_r:
        estimate = median_r(t, p)
        draws = _boot_median_r(t, [p], _weights(idx, n))[0]
    else:
        estimate = _scalar(metric(t, p), where)
        draws = np.array([_scalar(metric(t[i], p[i]), where) for i in idx])
    lo, hi, n_valid = _interval(draws, c)
    return {
        "estimate": float(estimate),
        "low": lo,
        "high": hi,
        "std": float(np.std(draws[np.isfinite(draws)])) if n_valid else float("nan"),
        "n_boot": nb,
        "n_valid": n_valid,
        "block_len": bl,
        "ci": c,
        "method": m,
    }


def bootstrap_median_r(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
) -> dict[str, Any]:
    """Block-bootstrap CI of the median voxel-wise r, fast path.

    Equivalent to ``block_bootstrap_ci(y_true, y_pred, median_r, ...)``: a
    resample's r per voxel comes from resampled sums of x, y, x^2, y^2 and
    xy, obtained as a (n_boot, n_times) count matrix times the per-time
    statistics, a BLAS matrix product over chunks of voxels, instead of
    copying the data for every draw. Cost O(n_boot * n_times * n_voxels)
    flops at matrix-product speed.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n_times, n_voxels)
    n_boot, block_len, ci, random_state, method
        As in :func:`block_bootstrap_ci`.

    Returns
    -------
    result : dict
        As :func:`block_bootstrap_ci`.
    """
    return block_bootstrap_ci(
        y_true, y_pred, median_r, n_boot=n_boot, block_len=block_len, ci=ci,
        random_state=random_state, method=method,
    )


def paired_bootstrap(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    block_len: int | None = None,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    method: str = "circular",
) -> dict[str, Any]:
    """Paired block bootstrap of the difference ``metric(a) - metric(b)``.

    Both models are scored on the very same resampled blocks, so the
    interval reflects the uncertainty of the *difference* (the shared
    difficulty of the time points cancels).

    Parameters
    ----------
    y_true, pred_a, pred_b : array_like, shape (n_times, n_voxels) or (n_times,)
    metric : callable
        As in :func:`block_bootstrap_ci`; :func:`median_r` itself uses the
        fast path. For an error metric (lower is better) a positive
        difference means model A is worse.
    n_boot, block_len, ci, random_state, method
        As in :func:`block_bootstrap_ci`.

    Returns
    -------
    result : dict
        ``estimate`` (difference on the original data), ``estimate_a``,
        ``estimate_b``, ``low``, ``high`` (percentile interval of the
        difference), ``p_value``, ``n_boot``, ``n_valid``, ``block_len``,
        ``ci``, ``method``. The two-sided p-value is
        ``min(1, 2 * min(#(d* <= 0) + 1, #(d* >= 0) + 1) / (n_valid + 1))``
        over the bootstrap differences ``d*`` (the smallest two-sided level
        at which the percentile interval excludes 0); identical predictions
        give 1.
    """
    where = "paired_bootstrap"
    if not callable(metric):
        raise Eeg2fmriInputError(
            f"{where}: expected metric to be a callable metric(y_true, y_pred) -> float, got "
            f"{type(metric).__name__}; e.g. metric=median_r."
        )
    t, (a, b) = _prepare_boot(y_true, [pred_a, pred_b], ["pred_a", "pred_b"], where)
    n = t.shape[0]
    nb, bl, c, m = _check_block_args(n, n_boot, block_len, ci, method, where)
    idx = block_bootstrap_indices(n, nb, bl, m, random_state)
    if metric is median_r:
        est_a, est_b = median_r(t, a), median_r(t, b)
        meds = _boot_median_r(t, [a, b], _weights(idx, n))
        diffs = meds[0] - meds[1]
    else:
        est_a, est_b = _scalar(metric(t, a), where), _scalar(metric(t, b), where)
        diffs = np.array(
            [_scalar(metric(t[i], a[i]), where) - _scalar(metric(t[i], b[i]), where) for i in idx]
        )
    lo, hi, n_valid = _interval(diffs, c)
    ok = diffs[np.isfinite(diffs)]
    if n_valid:
        tail = min(np.count_nonzero(ok <= 0), np.count_nonzero(ok >= 0)) + 1
        p_value = min(1.0, 2.0 * tail / (n_valid + 1))
    else:
        p_value = float("nan")
    return {
        "estimate": float(est_a - est_b),
        "estimate_a": float(est_a),
        "estimate_b": float(est_b),
        "low": lo,
        "high": hi,
        "p_value": float(p_value),
        "n_boot": nb,
        "n_valid": n_valid,
        "block_len": bl,
        "ci": c,
        "method": m,
    }


def ceiling_fraction(model_r: ArrayLike, ceiling_r: ArrayLike) -> float:
    """Fraction of the noise ceiling reached: ``median(model_r) / median(ceiling_r)``.

    ``ceiling_r`` is the voxel-wise r that the data's own reliability allows
    (e.g. between two repeated runs, or split halves, of the same subject):
    no model can be expected to beat it. Both medians ignore NaN, over the
    same voxels. The ratio of medians is a summary, not a per-voxel
    normalisation (which is unstable where the ceiling is near 0).

    Parameters
    ----------
    model_r, ceiling_r : array_like, same shape (n_voxels,) or any shape

    Returns
    -------
    fraction : float
        1 means the model's median r equals the median ceiling.

    Raises
    ------
    Eeg2fmriInputError
        Shapes differ, no finite value, or a median ceiling <= 0 (no
        reliable signal to normalise by).
    """
    where = "ceiling_fraction"
    mr = _as_real_array(model_r, "model_r", where).astype(np.float64, copy=False)
    cr = _as_real_array(ceiling_r, "ceiling_r", where).astype(np.float64, copy=False)
    if mr.shape != cr.shape:
        raise Eeg2fmriInputError(
            f"{where}: expected ceiling_r with the shape of model_r {mr.shape}, got {cr.shape}; "
            f"compute both over the same voxels."
        )
    med_m = _nanmedian_rows(mr.reshape(1, -1))[0]
    med_c = _nanmedian_rows(cr.reshape(1, -1))[0]
    if not (np.isfinite(med_m) and np.isfinite(med_c)):
        raise Eeg2fmriInputError(
            f"{where}: expected finite correlations, got medians model={med_m}, ceiling={med_c}; "
            f"check for all-NaN inputs."
        )
    if med_c <= 0:
        raise Eeg2fmriInputError(
            f"{where}: expected a positive median ceiling r, got {med_c:.4g}; the data show no "
            f"reliable signal to normalise by, report the raw r instead."
        )
    return float(med_m / med_c)
