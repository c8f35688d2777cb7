"""Calibrated prediction intervals per voxel: split conformal on the validation windows, coverage on the test windows.

For every output (voxel/ROI), the absolute residuals ``|y - y_hat|`` of the
validation windows give the half-width ``q_level`` of a symmetric interval
``y_hat +/- q_level`` (the ``ceil((n + 1) level) / n`` empirical quantile,
split conformal prediction; Vovk et al. 2005, Lei et al. 2018). The
guarantee assumes exchangeable windows; BOLD windows are autocorrelated and
the test span comes later in time, so :func:`conformal_coverage` *measures*
the coverage the intervals reach on the held-out test windows instead of
assuming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.targets import Split
from eeg2fmri.datasets.windows import run_windows
from eeg2fmri.training.predictor import predict_windows
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["DEFAULT_LEVELS", "conformal_halfwidths", "interval_coverage", "conformal_coverage"]

DEFAULT_LEVELS = (0.5, 0.8, 0.95)


def _check_levels(levels: Any) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in levels)
    except (TypeError, ValueError):
        out = ()
    if not out or any(not 0.0 < v < 1.0 for v in out):
        raise Eeg2fmriInputError(f"conformal: expected coverage levels in (0, 1), got {levels!r}; pass e.g. levels=(0.5, 0.8, 0.95).")
    return out


def conformal_halfwidths(residuals: np.ndarray, levels: Any = DEFAULT_LEVELS) -> np.ndarray:
    """Split-conformal half-widths per output from calibration residuals.

    Parameters
    ----------
    residuals : array, shape (n_calibration, n_outputs)
        ``y - y_hat`` on the calibration (validation) windows.
    levels : sequence of float in (0, 1)

    Returns
    -------
    halfwidths : array, shape (n_levels, n_outputs)
        The ``ceil((n + 1) level)``-th smallest ``|residual|`` per output
        (``inf`` when ``n`` is too small for the level).
    """
    levels = _check_levels(levels)
    r = np.abs(np.asarray(residuals, dtype=np.float64))
    if r.ndim != 2 or len(r) < 1:
        raise Eeg2fmriInputError(f"conformal: expected residuals of shape (n_calibration, n_outputs), got {r.shape}; pass the validation residuals.")
    n = len(r)
    srt = np.sort(r, axis=0)
    out = np.empty((len(levels), r.shape[1]))
    for j, lv in enumerate(levels):
        k = int(np.ceil((n + 1) * lv))
        out[j] = srt[k - 1] if k <= n else np.inf
    return out


def interval_coverage(y: np.ndarray, pred: np.ndarray, halfwidths: np.ndarray) -> np.ndarray:
    """Share of windows inside ``pred +/- halfwidth``, per level and output.

    Parameters
    ----------
    y, pred : array, shape (n_windows, n_outputs)
    halfwidths : array, shape (n_levels, n_outputs)

    Returns
    -------
    coverage : array, shape (n_levels, n_outputs)
    """
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    h = np.asarray(halfwidths, dtype=np.float64)
    if y.shape != pred.shape or y.ndim != 2 or h.ndim != 2 or h.shape[1] != y.shape[1]:
        raise Eeg2fmriInputError(f"conformal: expected y and pred (n_windows, n_outputs) and halfwidths (n_levels, n_outputs), "
                                 f"got {y.shape}, {pred.shape}, {h.shape}.")
    inside = np.abs(y - pred)[None] <= h[:, None, :]
    return inside.mean(1)


def _predict_span(model: Any, ds: PreparedDataset, split: Split, targets: dict, span: str) -> tuple[np.ndarray, np.ndarray]:
    trained = {ds.runs[i].subject for i in split.selections.get("train", {})}
    index = {s: k for k, s in enumerate(ds.subjects)}
    ys, ps = [], []
    for i, vols in split.selections.get(span, {}).items():
        if not len(vols):
            continue
        run = ds.runs[i]
        x = run_windows(run, vols, split.n_frames, split.lag)
        sidx = index.get(run.subject) if run.subject in trained else None
        ps.append(predict_windows(model, x, n_outputs=int(ds.mask.sum()), mask=ds.mask, subject=run.subject, subject_index=sidx))
        ys.append(np.asarray(targets[span][i], dtype=np.float32))
    if not ys:
        raise Eeg2fmriInputError(f"conformal: the split has no {span} windows; intervals are calibrated on validation and checked on test windows.")
    return np.concatenate(ys), np.concatenate(ps)


def conformal_coverage(model: Any, ds: PreparedDataset, split: Split, targets: dict, *, levels: Any = DEFAULT_LEVELS) -> dict[str, Any]:
    """Calibrate per-output conformal intervals on the validation windows and measure their coverage on the test windows.

    Parameters
    ----------
    model : fitted model
    ds : PreparedDataset
    split : Split
    targets : dict
        :func:`~eeg2fmri.datasets.targets.split_targets` output (``"val"`` and ``"test"``).
    levels : sequence of float in (0, 1)

    Returns
    -------
    dict
        ``levels``; ``coverage`` (share of test windows x outputs inside),
        ``coverage_median_voxel`` and ``coverage_q10_voxel`` (10th
        percentile over outputs), ``median_halfwidth`` (target units) per
        level; ``n_calibration``, ``n_test``; ``halfwidths`` (n_levels,
        n_outputs) array (dropped from JSON by the caller if not wanted).
    """
    levels = _check_levels(levels)
    y_va, p_va = _predict_span(model, ds, split, targets, "val")
    y_te, p_te = _predict_span(model, ds, split, targets, "test")
    h = conformal_halfwidths(y_va - p_va, levels)
    cov = interval_coverage(y_te, p_te, h)
    return {
        "method": "split conformal, |residual| quantile per output on the validation windows",
        "levels": list(levels),
        "coverage": [float(c.mean()) for c in cov],
        "coverage_median_voxel": [float(np.median(c)) for c in cov],
        "coverage_q10_voxel": [float(np.percentile(c, 10)) for c in cov],
        "median_halfwidth": [float(np.median(v)) for v in h],
        "n_calibration": int(len(y_va)),
        "n_test": int(len(y_te)),
        "halfwidths": h,
    }
