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
from eeg2fmri.models.base import target_fingerprint
from eeg2fmri.models.calibration import CALIBRATION_NAME, load_calibration, save_calibration
from eeg2fmri.training.predictor import predict_windows, predict_windows_uncertainty
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.stats import validation_r_and_null  # noqa: F401 - defined there (synthesis uses it too), kept importable here
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["DEFAULT_LEVELS", "conformal_halfwidths", "interval_coverage", "conformal_coverage", "gaussian_nll", "laplace_nll",
           "model_uncertainty", "spearman", "calibrate_uncertainty", "save_calibration", "load_calibration", "CALIBRATION_NAME"]

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
    bad = ~np.isfinite(r).all(axis=0)
    if bad.any():  # (a NaN sorts last and the rank would count it: a half-width from the wrong order statistic, or NaN)
        raise Eeg2fmriInputError(f"conformal: expected finite residuals, got NaN/inf in {int(bad.sum())} of {r.shape[1]} output(s) "
                                 f"(first: {np.flatnonzero(bad)[:5].tolist()}); drop the windows or outputs without a finite "
                                 "prediction and target before calibrating.")
    n = len(r)
    srt = np.sort(r, axis=0)
    out = np.empty((len(levels), r.shape[1]))
    for j, lv in enumerate(levels):
        k = int(np.ceil(round((n + 1) * lv, 9)))  # (n + 1) * lv in floats can exceed an exact integer: 25 * 0.28 = 7.000000000000001
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


def laplace_nll(y: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> float:
    """Mean Laplace negative log-likelihood ``log(2 b) + |y - mu| / b`` over all elements.

    Parameters
    ----------
    y, loc : array, shape (n_windows, n_outputs)
    scale : array, broadcastable to y
        Laplace scale ``b`` (> 0).

    Returns
    -------
    float
        Nats per element (equals ``-scipy.stats.laplace.logpdf(y, loc, scale).mean()``).
    """
    y, loc, b = (np.asarray(a, dtype=np.float64) for a in (y, loc, scale))
    b = np.maximum(b, 1e-12)
    return float(np.mean(np.log(2.0 * b) + np.abs(y - loc) / b))


def gaussian_nll(y: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood over all elements (``scale`` = standard deviation).

    Equals ``-scipy.stats.norm.logpdf(y, loc, scale).mean()``.
    """
    y, loc, sd = (np.asarray(a, dtype=np.float64) for a in (y, loc, scale))
    sd = np.maximum(sd, 1e-12)
    return float(np.mean(0.5 * np.log(2.0 * np.pi) + np.log(sd) + 0.5 * ((y - loc) / sd) ** 2))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two flat arrays (average ranks for ties); NaN if either is constant."""
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    if ra.size < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


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
        ps.append(predict_windows(model, x, n_outputs=ds.n_outputs, mask=ds.mask, subject=run.subject, subject_index=sidx))
        ys.append(np.asarray(targets[span][i], dtype=np.float32))
    if not ys:
        raise Eeg2fmriInputError(f"conformal: the split has no {span} windows; intervals are calibrated on validation and checked on test windows.")
    y, p = np.concatenate(ys), np.concatenate(ps)
    if span == "val":
        y = _with_held_out_residuals(model, y, p)
    return y, p


def held_out_residuals_of(model: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation residuals a model kept from before it refitted on its validation windows and a fingerprint of those
    windows' targets (``val_residuals_``, ``val_target_check_`` of the model or of the module a predictor wraps), or None."""
    for m in (model, getattr(model, "module", None), getattr(model, "model", None)):
        r = getattr(m, "val_residuals_", None) if m is not None else None
        if r is not None and getattr(m, "val_target_check_", None) is not None:
            return np.asarray(r), np.asarray(m.val_target_check_, dtype=np.float64)
    return None


def _with_held_out_residuals(model: Any, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Validation targets as the calibration must see them.

    Where the model refitted on these validation windows (``refit=True``, ``linear_refit=True``, ``optimizer.refit``):
    ``pred`` + the residuals it kept from before the refit, so that ``y - pred`` are held-out residuals (the refitted
    model's own are in-sample: under benchmark's LOSO default 80 % conformal intervals covered 0.62 of a held-out
    subject's ROI series, user test 14). Otherwise (no refit, or other windows than those it was fitted with, e.g. a
    second dataset's): ``y`` unchanged.
    """
    r = _kept_residuals(model, y)
    if r is None:
        return y
    return (np.asarray(pred, dtype=np.float32) + r.reshape(np.shape(pred))).astype(np.float32)


def _kept_residuals(model: Any, y: np.ndarray) -> np.ndarray | None:
    """The model's kept validation residuals if they belong to these validation targets (same windows, same order), else None."""
    kept = held_out_residuals_of(model)
    if kept is None:
        return None
    r, check = kept
    y2 = np.asarray(y).reshape(len(y), -1)
    if r.shape == y2.shape and check.shape == (2, y2.shape[1]) and np.allclose(target_fingerprint(y2), check, rtol=1e-6, atol=1e-9):
        return r
    return None


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
        level; ``n_calibration``, ``n_test``; ``nll_laplace`` /
        ``nll_gaussian`` (nats per test element under per-voxel Laplace /
        Gaussian scales from the validation residuals) and
        ``nll_laplace_shared_scale`` (one scale for all voxels);
        ``scale_error_spearman`` (rank correlation over voxels of the
        per-voxel scale with the mean absolute test error); ``halfwidths`` (n_levels,
        n_outputs) array (dropped from JSON by the caller if not wanted).
    """
    levels = _check_levels(levels)
    y_va, p_va = _predict_span(model, ds, split, targets, "val")
    y_te, p_te = _predict_span(model, ds, split, targets, "test")
    h = conformal_halfwidths(y_va - p_va, levels)
    cov = interval_coverage(y_te, p_te, h)
    # per-voxel predictive distributions from the validation residuals: Laplace scale b = mean |r|
    # (its maximum-likelihood estimate), Gaussian sd = RMS r; NLL of the test windows under each,
    # next to one scale shared by all voxels (does the per-voxel scale say more than a constant?)
    res_va = (y_va - p_va).astype(np.float64)
    b_vox = np.maximum(np.abs(res_va).mean(0), 1e-6)
    sd_vox = np.maximum(np.sqrt((res_va**2).mean(0)), 1e-6)
    abs_err = np.abs(y_te - p_te).mean(0)
    return {
        "method": "split conformal, |residual| quantile per output on the validation windows",
        "levels": list(levels),
        "coverage": [float(c.mean()) for c in cov],
        "coverage_median_voxel": [float(np.median(c)) for c in cov],
        "coverage_q10_voxel": [float(np.percentile(c, 10)) for c in cov],
        "median_halfwidth": [float(np.median(v)) for v in h],
        "n_calibration": int(len(y_va)),
        "n_test": int(len(y_te)),
        "nll_laplace": laplace_nll(y_te, p_te, b_vox),
        "nll_gaussian": gaussian_nll(y_te, p_te, sd_vox),
        "nll_laplace_shared_scale": laplace_nll(y_te, p_te, np.full_like(b_vox, np.abs(res_va).mean())),
        "scale_error_spearman": spearman(b_vox, abs_err),
        "halfwidths": h,
    }


def _predict_span_uncertainty(model: Any, ds: PreparedDataset, split: Split, targets: dict, span: str):
    ys, ms, ss, meaning = [], [], [], ""
    for i, vols in split.selections.get(span, {}).items():
        if not len(vols):
            continue
        x = run_windows(ds.runs[i], vols, split.n_frames, split.lag)
        got = predict_windows_uncertainty(model, x, mask=ds.mask)
        if got is None:
            return None
        m, sc, meaning = got
        ms.append(m)
        ss.append(sc)
        ys.append(np.asarray(targets[span][i], dtype=np.float32))
    if not ys:
        raise Eeg2fmriInputError(f"model uncertainty: the split has no {span} windows; the scale is calibrated on validation and checked on test windows.")
    y, m = np.concatenate(ys), np.concatenate(ms)
    if span == "val":
        y = _with_held_out_residuals(model, y, m)
    return y, m, np.concatenate(ss), meaning


def _degenerate_scale(y: np.ndarray, mean: np.ndarray, scale: np.ndarray, meaning: str) -> str | None:
    """Why a model's own predictive scale cannot be used (None when it can).

    An ensemble whose members are given no weight (the flagship with ``ridge_weight`` 1: the linear path alone) or
    agree exactly has a spread of ~0: a temperature fitted on it is astronomically large and every interval and
    likelihood built on it is noise (a user test: temperature 7.8e11, coverage 0 at every level).
    """
    s = np.asarray(scale, dtype=np.float64)
    res = float(np.median(np.abs(np.asarray(y, dtype=np.float64) - mean)))
    med = float(np.median(s)) if s.size else 0.0
    if not np.isfinite(med) or med <= 1e-6 * max(res, 1e-12):
        return (f"the model's own predictive scale ({meaning or 'its spread'}) is ~0 (median {med:.3g} against a median absolute "
                f"validation residual of {res:.3g}): its members agree, or are given no weight (e.g. the flagship's ridge_weight = 1, "
                "the linear path alone). No model uncertainty is reported; the split-conformal intervals do not depend on it.")
    return None


def _linear_path_only(model: Any) -> bool:
    """Whether the model is the flagship with blend weight 1 (its linear path alone: an ensemble spread of 0 is expected,
    the usual case since ``blend_rule="guarded"`` became the default, so it is logged as information, not a warning)."""
    w = getattr(getattr(model, "module", model), "ridge_weight", None)  # (a predictor wrapping the module, or the module)
    try:
        return w is not None and float(w) == 1.0
    except (TypeError, ValueError):
        return False


def _temperature(y: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> float:
    """Maximum-likelihood factor ``T`` on a Laplace scale: ``mean(|y - mu| / s)``."""
    return float(np.mean(np.abs(np.asarray(y, dtype=np.float64) - mean) / np.maximum(np.asarray(scale, dtype=np.float64), 1e-12)))


def model_uncertainty(model: Any, ds: PreparedDataset, split: Split, targets: dict, *, levels: Any = DEFAULT_LEVELS) -> dict[str, Any] | None:
    """Calibrate a model's own predictive scale on the validation windows and measure it on the test windows.

    The model's scale ``s`` (``predict_uncertainty`` or ``predict_mc``, see
    :func:`~eeg2fmri.training.predictor.uncertainty_methods`) is read as a
    Laplace scale and multiplied by one temperature ``T``, the maximum-
    likelihood factor on the validation windows, ``T = mean(|y - mu| / s)``.
    Test intervals ``mu +/- T s log(1 / (1 - level))`` (the Laplace quantiles).

    Returns
    -------
    dict | None
        None when the model gives no uncertainty; ``{"available": False, "reason", "meaning"}`` when its
        scale is ~0 (members that agree or carry no weight). Otherwise ``method``,
        ``meaning``, ``temperature``, ``levels``, ``coverage`` (share of
        test windows x outputs inside), ``nll_laplace`` (nats per test element,
        calibrated), ``nll_laplace_uncalibrated`` (T = 1),
        ``scale_error_spearman`` (rank correlation over all test windows x
        outputs of the calibrated scale with the absolute error),
        ``n_calibration``, ``n_test``.
    """
    levels = _check_levels(levels)
    va = _predict_span_uncertainty(model, ds, split, targets, "val")
    if va is None:
        return None
    te = _predict_span_uncertainty(model, ds, split, targets, "test")
    if te is None:
        return None
    y_va, m_va, s_va, meaning = va
    y_te, m_te, s_te, _ = te
    why = _degenerate_scale(y_va, m_va, s_va, meaning)
    if why is not None:
        (logger.info if _linear_path_only(model) else logger.warning)("model uncertainty: %s", why)
        return {"available": False, "reason": why, "meaning": meaning}
    temp = _temperature(y_va, m_va, s_va)
    scale = np.maximum(temp * np.asarray(s_te, dtype=np.float64), 1e-12)
    err = np.abs(np.asarray(y_te, dtype=np.float64) - m_te)
    cov = [float(np.mean(err <= scale * np.log(1.0 / (1.0 - lv)))) for lv in levels]
    return {
        "method": "the model's own predictive scale read as a Laplace scale, times one temperature fitted on the validation windows",
        "meaning": meaning,
        "temperature": temp,
        "levels": list(levels),
        "coverage": cov,
        "nll_laplace": laplace_nll(y_te, m_te, scale),
        "nll_laplace_uncalibrated": laplace_nll(y_te, m_te, np.maximum(np.asarray(s_te, dtype=np.float64), 1e-12)),
        "scale_error_spearman": spearman(scale, err),
        "n_calibration": int(len(y_va)),
        "n_test": int(len(y_te)),
    }


#: How :func:`validation_r_and_null` sets an output's level (stored with a calibration, so that synthesis can tell a
#: level of the earlier, permissive far-shift null).
VAL_R_NULL = "every circular shift, 5 % test"


#: Validation targets and predictions are kept in a calibration (float16) up to this many values each (20 MB).
VAL_SERIES_MAX_ELEMS = 10_000_000


def calibrate_uncertainty(model: Any, ds: PreparedDataset, split: Split, targets: dict, *, levels: Any = DEFAULT_LEVELS) -> dict[str, Any]:
    """Everything ``synthesize --uncertainty`` needs, from the validation windows only.

    Parameters
    ----------
    model : fitted model
    ds : PreparedDataset
    split : Split
        Its ``"val"`` span calibrates; nothing else is read.
    targets : dict
        :func:`~eeg2fmri.datasets.targets.split_targets` output.
    levels : sequence of float in (0, 1)

    Returns
    -------
    dict
        ``levels``; ``halfwidths`` (n_levels, n_outputs) split-conformal
        half-widths; ``laplace_scale`` (n_outputs,) mean absolute validation
        residual per output; ``scale``: ``"own"`` when the model's own
        predictive scale times one temperature predicts the validation errors
        better than the per-output residual scale (Laplace NLL, each fitted on
        one half of the windows and scored on the other: ``crossfit_nll``),
        else ``"residuals"``; ``temperature`` and ``meaning`` of the own scale
        (None unless ``scale`` is ``"own"``); ``interval_multipliers``: ``{"residuals": [...], "own": [...]}``
        (``own`` where that scale was chosen), one factor per level on that scale which covers that share of the
        validation windows x outputs (:func:`interval_multipliers`); ``n_calibration``; ``val_r`` and
        ``val_r_null95`` (n_outputs,): the validation r of every output's held-out predictions and the 5 % level
        of its circular-shift null (:func:`validation_r_and_null`); ``val_true`` and ``val_pred`` (n_windows, n_outputs),
        float16: the validation targets and held-out predictions (left out above :data:`VAL_SERIES_MAX_ELEMS` values).
    """
    levels = _check_levels(levels)
    y_va, p_va = _predict_span(model, ds, split, targets, "val")
    res = (y_va - p_va).astype(np.float64)
    try:  # the validation targets themselves (y_va holds held-out residuals added to the refitted predictions)
        y_true = np.concatenate([np.asarray(targets["val"][i], dtype=np.float32) for i, v in split.selections["val"].items() if len(v)])
    except (AttributeError, KeyError, TypeError, ValueError):
        y_true = None
    if y_true is None or y_true.shape != y_va.shape:
        y_true = y_va
    out: dict[str, Any] = {"levels": list(levels), "halfwidths": conformal_halfwidths(res, levels).astype(np.float32),
                           "laplace_scale": np.maximum(np.abs(res).mean(0), 1e-6).astype(np.float32), "temperature": None,
                           "meaning": None, "n_calibration": int(len(y_va))}
    # which outputs the model predicts at all: validation r of the held-out predictions and its circular-shift null
    # (user test 18: synthesis wrote an unpredictable region's series with a third of the driven ones' amplitude, unmarked)
    out["val_r"], out["val_r_null95"] = validation_r_and_null(y_true, y_true - res)
    if y_true.size <= VAL_SERIES_MAX_ELEMS:
        # the validation targets and held-out predictions themselves (float16: ROI means of them are tested by synthesize --atlas
        # against their own circular-shift null; user test 44: a voxel count assumed independent voxels and passed a control region)
        out["val_true"] = np.asarray(y_true, dtype=np.float16)
        out["val_pred"] = np.asarray(y_true - res, dtype=np.float16)
    out["val_r_null"] = VAL_R_NULL  # (calibrations of sessions 27-28 before it: far shifts only, a permissive level)
    out["scale"] = "residuals"
    out["interval_multipliers"] = {"residuals": interval_multipliers(np.abs(res) / out["laplace_scale"][None, :].astype(np.float64), levels)}
    if held_out_residuals_of(model) is not None and _kept_residuals(
            model, np.concatenate([targets["val"][i] for i, v in split.selections["val"].items() if len(v)])) is not None:
        out["residuals"] = "held out: kept from the fit before the model refitted on the validation windows"
    own = _predict_span_uncertainty(model, ds, split, targets, "val")
    if own is not None:
        y, m, sc, meaning = own
        why = _degenerate_scale(y, m, sc, meaning)
        if why is None:
            nll_own, nll_res = _crossfit_nll(y, m, sc), _crossfit_nll(y_va, p_va, None)
            out["crossfit_nll"] = {"own": nll_own, "residuals": nll_res}
            # too few validation windows to cross-fit (NaN): the own scale, as before the choice existed
            if nll_own < nll_res or not (np.isfinite(nll_own) and np.isfinite(nll_res)):
                out["temperature"] = _temperature(y, m, sc)
                out["meaning"] = meaning
                out["scale"] = "own"
                own_scale = np.maximum(out["temperature"] * np.asarray(sc, dtype=np.float64), 1e-12)
                out["interval_multipliers"]["own"] = interval_multipliers(np.abs(np.asarray(y, dtype=np.float64) - m) / own_scale, levels)
            else:  # the per-voxel residual scale predicts the validation errors better: synthesize writes it
                logger.info("uncertainty calibration: the per-voxel validation residual scale (cross-fitted Laplace NLL %.4f) beats the "
                            "model's own scale (%s, %.4f); synthesize --uncertainty writes the residual scale", nll_res, meaning, nll_own)
                out["own_scale_not_chosen"] = meaning
        else:  # as a model without a scale of its own: synthesize --uncertainty uses the conformal half-widths
            (logger.info if _linear_path_only(model) else logger.warning)("uncertainty calibration: %s", why)
            out["own_scale_unavailable"] = why
    return out


def interval_multipliers(ratio: np.ndarray, levels: Any) -> list[float | None]:
    """Per level ``p``, the factor ``k_p`` with ``|residual| <= k_p * scale`` for a share ``p`` of the validation windows x
    outputs (split conformal on the pooled ratios ``|residual| / scale``: the ``ceil((n + 1) p)``-th smallest).

    The Laplace reading ``k_p = log(1 / (1 - p))`` is right only for Laplace-shaped errors: for Gaussian errors its 50 %
    interval covers 0.42 and its 95 % 0.98 (user test 15); these factors are calibrated at every level.
    """
    r = np.sort(np.asarray(ratio, dtype=np.float64).ravel())
    r = r[np.isfinite(r)]
    if not len(r):
        return [float(np.log(1.0 / (1.0 - lv))) for lv in levels]
    # past the largest ratio (too few windows for the level): None, as conformal_halfwidths gives inf
    return [float(r[k]) if k < len(r) else None for k in (int(np.ceil((len(r) + 1) * lv)) - 1 for lv in levels)]


def _crossfit_nll(y: np.ndarray, mean: np.ndarray, scale: np.ndarray | None) -> float:
    """Laplace NLL (nats per element) of a scale fitted on one half of the windows (in time order) and scored on the
    other, averaged over both directions: the model's own scale times a temperature (``scale`` given), or a scale per
    output, the mean absolute residual (``scale`` None) -- each with the parameters it would be given on all windows."""
    res = np.abs(np.asarray(y, dtype=np.float64) - np.asarray(mean, dtype=np.float64))
    n = len(res)
    if n < 4:
        return float("nan")
    halves = (slice(0, n // 2), slice(n // 2, n))
    total = 0.0
    for fit, score in (halves, halves[::-1]):
        if scale is None:
            b = np.maximum(res[fit].mean(0), 1e-6)[None, :]
        else:
            s = np.maximum(np.asarray(scale, dtype=np.float64), 1e-12)
            b = np.maximum(float(np.mean(res[fit] / s[fit])) * s[score], 1e-12)
        total += float(np.mean(np.log(2.0 * b) + res[score] / b))
    return total / 2.0
