"""Shared input validation and working-memory budgets of the metrics (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from eeg2fmri.utils.stats import CHUNK_ELEMS
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
    check_positive,
)

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
# variance (a spike left out of the draw) has its r computed again in float64 from
# the data: the float32 sums of the fast path lose ~eps32 / fraction of it.
_REL_VAR_FLOOR = 1e-2


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
