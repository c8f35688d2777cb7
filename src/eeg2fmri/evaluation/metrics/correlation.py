"""Voxel-wise temporal Pearson r, its maps, summaries and ROI version, and the fraction of a noise ceiling reached."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from eeg2fmri.evaluation.metrics._common import (
    _as_mask,
    _as_real_array,
    _prepare_pair,
)
from eeg2fmri.utils.stats import pearson_columns
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
)

__all__ = ["ceiling_fraction", "median_r", "pearson_r", "r_map", "roi_r", "summarize_r", "voxelwise_r"]


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
    both = ~(np.isnan(mr) | np.isnan(cr))  # the same voxels in both medians
    med_m = _nanmedian_rows(np.where(both, mr, np.nan).reshape(1, -1))[0]
    med_c = _nanmedian_rows(np.where(both, cr, np.nan).reshape(1, -1))[0]
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
